//! At the first connection, whether the REDIS_URL user may do everything wstime will do in
//! Redis: load and run each script (and so every command the scripts call) and send each
//! command, once, on a key of its own. An ACL user short of a permission then stops the
//! server at start-up, naming the command, instead of failing sessions one by one later.
//!
//! The client does not know what its users do: each (the session store, the registry) says
//! so as a list of [`Probe`]s, and start-up passes them all.

use redis::{aio::ConnectionLike, Script, Value};

use super::topology::{bounded, ConnectError};

/// The key the check works on: in wstime's namespace (an ACL user may be confined to
/// `~wstime:*`), and no session's or registry's. Its braces keep it to one cluster slot.
const KEY: &str = "wstime:{access-check}";

/// The expiry a probe should give the key, in milliseconds: if the check stops half-way,
/// the key is gone a second later.
pub const PROBE_TTL_MS: &str = "1000";

/// One thing a user of the client will do in Redis, tried on the check's own key.
pub enum Probe {
    /// Runs `script` with the key and `args`.
    Script { script: Script, args: Vec<String> },
    /// Sends `name` with the key and `args`: `PEXPIRE <key> 1000`.
    Command { name: &'static str, args: Vec<String> },
}

/// Runs every probe on `connection` (to `address`, for errors), in order, after loading
/// every script.
pub async fn check(
    address: &str,
    connection: &mut impl ConnectionLike,
    probes: &[Probe],
) -> Result<(), ConnectError> {
    for probe in probes {
        if let Probe::Script { script, .. } = probe {
            // Loaded here whether or not Redis has it already: after a restart of Redis the
            // client will have to load it again (EVALSHA, then SCRIPT LOAD on NOSCRIPT).
            bounded(address, script.load_async(connection)).await?;
        }
    }
    for probe in probes {
        let _: Value = match probe {
            Probe::Script { script, args } => {
                let mut invocation = script.key(KEY);
                invocation.arg(args);
                bounded(address, invocation.invoke_async(connection)).await?
            }
            Probe::Command { name, args } => {
                let command = redis::cmd(name).arg(KEY).arg(args).clone();
                bounded(address, command.query_async(connection)).await?
            }
        };
    }
    Ok(())
}
