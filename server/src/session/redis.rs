//! Sessions in Redis: one key per session, `wstime:session:{<id>}`, in one Redis, in the
//! master of a Sentinel group, or in a Redis Cluster, reached through the shared client
//! ([`crate::redis`]).
//!
//! The key is a hash holding the session's start (`start`, in milliseconds on Redis's own
//! clock) and the highest count sent as a first tick (`claimed`), with an expiry of the
//! resume window. One script creates it if absent and returns its age measured against
//! Redis's `TIME`, so instances whose clocks disagree still agree on every session's age.
//! The id is the key's hash tag (the part in braces): in a cluster, everything one operation
//! touches then lives in one slot, which scripts and multi-key commands require.

use std::{sync::Arc, time::Duration};

use futures_util::future::{BoxFuture, FutureExt as _};
use redis::Script;
use wstime_protocol::ClientId;

use super::{open_when_free, Claim, Opened, SessionStore, StoreError, StoreStatus};
use crate::redis::{
    access::{Probe, PROBE_TTL_MS},
    OperationError, Redis,
};

/// Opens or resumes a session, atomically. KEYS[1]: the session key. ARGV[1]: the resume
/// window in ms. Returns {age in ms, count, opened, ttl in ms}: with opened = 1 the count is
/// this open's first tick (now claimed); with 0 it is the count an earlier open already
/// sent, and nothing was written. The ttl is what was left of the session's expiry before
/// this open (-2: there was no session), which tells how long it was away. The rule is
/// [`Claim::after`]'s (the contract tests hold both stores to it). An age below zero (a new master whose clock is behind the old one's) is
/// taken as zero.
const OPEN_SCRIPT: &str = r"
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local ttl = redis.call('PTTL', KEYS[1])
local fields = redis.call('HMGET', KEYS[1], 'start', 'claimed')
local start = tonumber(fields[1])
local claimed = tonumber(fields[2])
if start == nil then
  start = now_ms
  claimed = nil
end
local age = math.max(now_ms - start, 0)
local first = math.floor((age + 999) / 1000)
if claimed ~= nil and claimed >= first then
  return {age, claimed, 0, ttl}
end
redis.call('HSET', KEYS[1], 'start', start, 'claimed', first)
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return {age, first, 1, ttl}
";

/// Sessions in Redis.
pub struct RedisStore {
    redis: Arc<Redis>,
    resume_window: Duration,
    open_script: Script,
}

/// The Redis key of a session. Ids are validated before they get here, so they need no
/// escaping; the braces make the id the key's hash tag.
pub fn session_key(id: &ClientId) -> String {
    format!("wstime:session:{{{id}}}")
}

impl From<OperationError> for StoreError {
    fn from(error: OperationError) -> Self {
        match error {
            OperationError::Unavailable => Self::Unavailable,
            OperationError::Timeout(limit) => Self::Timeout(limit),
            OperationError::Failed(why) => Self::Backend(why),
        }
    }
}

impl RedisStore {
    /// Sessions kept in `redis`, expiring `resume_window` after their last touch.
    pub fn new(redis: Arc<Redis>, resume_window: Duration) -> Self {
        Self { redis, resume_window, open_script: Script::new(OPEN_SCRIPT) }
    }

    /// What the store does in Redis, for the start-up access check: the open script and a
    /// touch's `PEXPIRE`.
    pub fn access_probes(&self) -> Vec<Probe> {
        vec![
            Probe::Script { script: self.open_script.clone(), args: vec![PROBE_TTL_MS.into()] },
            Probe::Command { name: "PEXPIRE", args: vec![PROBE_TTL_MS.into()] },
        ]
    }

    async fn claim(&self, id: &ClientId) -> Result<Claim, StoreError> {
        let window_ms = self.resume_window.as_millis().to_string();
        let (age_ms, count, opened, ttl_ms): (u64, u64, bool, i64) =
            self.redis.eval(&self.open_script, &session_key(id), &[&window_ms]).await?;
        let age = Duration::from_millis(age_ms);
        let opened_now = Opened { age, first: count, away: None };
        Ok(match (opened, u64::try_from(ttl_ms)) {
            // The expiry was set a resume window after the session's last touch.
            (true, Ok(ttl_ms)) => Claim::Opened(
                opened_now
                    .resumed(self.resume_window.saturating_sub(Duration::from_millis(ttl_ms))),
            ),
            (true, Err(_)) => Claim::Opened(opened_now),
            (false, _) => Claim::taken(age, count),
        })
    }

    async fn touch_session(&self, id: &ClientId) -> Result<(), StoreError> {
        let window_ms = self.resume_window.as_millis() as u64;
        let touch = redis::cmd("PEXPIRE").arg(session_key(id)).arg(window_ms).clone();
        let _: i64 = self.redis.query(&touch).await?;
        Ok(())
    }
}

impl SessionStore for RedisStore {
    fn open<'a>(&'a self, id: &'a ClientId) -> BoxFuture<'a, Result<Opened, StoreError>> {
        open_when_free(move || self.claim(id)).boxed()
    }

    fn touch<'a>(&'a self, id: &'a ClientId) -> BoxFuture<'a, Result<(), StoreError>> {
        self.touch_session(id).boxed()
    }

    fn status(&self) -> StoreStatus {
        StoreStatus { kind: self.redis.kind(), reachable: self.redis.is_connected() }
    }
}
