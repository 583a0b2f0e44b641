//! At the first connection, whether the REDIS_URL user may do everything wstime will do in
//! Redis: load and run each script (and so every command the scripts call) and send each
//! command, once, on a key of its own. An ACL user short of a permission then stops the
//! server at start-up, naming the command, instead of failing sessions one by one later.

use redis::{aio::ConnectionLike, Script, Value};

use super::topology::{bounded, ConnectError};

/// The key the check works on: in wstime's namespace (an ACL user may be confined to
/// `~wstime:*`), and no session's or registry's. Its braces keep it to one cluster slot.
const KEY: &str = "wstime:{access-check}";
/// The expiry the check gives its key, in milliseconds: if it stops half-way, the key is
/// gone a second later.
const TTL_MS: &str = "1000";
/// The field the registry's script writes.
const FIELD: &str = "access-check";

/// Runs the check on `connection` (to `address`, for errors). `session_script` is the
/// store's open script; the registry's comes from [`crate::registry`].
pub async fn check(
    address: &str,
    connection: &mut impl ConnectionLike,
    session_script: &Script,
) -> Result<(), ConnectError> {
    let registry_script = Script::new(crate::registry::REGISTER_SCRIPT);
    for script in [session_script, &registry_script] {
        // Loaded here whether or not Redis has it already: after a restart of Redis the
        // store will have to load it again (EVALSHA, then SCRIPT LOAD on NOSCRIPT).
        bounded(address, script.load_async(connection)).await?;
    }
    // The session script leaves its two fields in the key; the registry's script then takes
    // them for expired entries and removes them: between them, every command either calls.
    let _: Value =
        bounded(address, session_script.key(KEY).arg(TTL_MS).invoke_async(connection)).await?;
    let mut register = registry_script.key(KEY);
    register.arg(FIELD).arg("{}").arg(TTL_MS);
    let _: Value = bounded(address, register.invoke_async(connection)).await?;
    // What the store sends outside scripts: a touch, and the registry's removal of its entry.
    let touch = redis::cmd("PEXPIRE").arg(KEY).arg(TTL_MS).clone();
    let _: Value = bounded(address, touch.query_async(connection)).await?;
    let remove = redis::cmd("HDEL").arg(KEY).arg(FIELD).clone();
    let _: Value = bounded(address, remove.query_async(connection)).await?;
    Ok(())
}
