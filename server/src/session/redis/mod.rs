//! The shared session store: one Redis key per session, `wstime:session:{<id>}`, in one
//! Redis, in the master of a Sentinel group, or in a Redis Cluster ([`target`] says which).
//!
//! The key is a hash holding the session's start (`start`, in milliseconds on Redis's own
//! clock) and the highest count sent as a first tick (`claimed`), with an expiry of the
//! resume window. One script creates it if absent and returns its age measured against
//! Redis's `TIME`, so instances whose clocks disagree still agree on every session's age.
//! The id is the key's hash tag (the part in braces): in a cluster, everything one operation
//! touches then lives in one slot, which scripts and multi-key commands require.
//!
//! The connection is kept by [`RedisStore::maintain`]: it connects, checks the connection
//! once a second, and reconnects by itself after an outage or a failover ([`topology`] says
//! what connecting and checking mean for each kind of target). While it is down, operations
//! fail at once with [`StoreError::Unavailable`] instead of waiting.

pub mod sentinel;
pub mod target;
pub mod topology;

use std::{
    future::Future,
    sync::{Mutex, MutexGuard},
    time::Duration,
};

use futures_util::future::{BoxFuture, FutureExt as _};
use redis::Script;
use tokio::{sync::Notify, time::Instant};
use wstime_protocol::ClientId;

use self::{
    target::RedisTarget,
    topology::{ConnectError, Connection, Live, Topology},
};
use super::{open_when_free, Claim, Opened, SessionStore, StoreError, StoreStatus};

/// How long one Redis operation may take. A session store that answers slower than this
/// is treated as down: a connect must not wait on it.
pub const OPERATION_LIMIT: Duration = Duration::from_millis(500);
/// How often a live connection is checked.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// How often a lost connection is retried: more often than a live one is checked, because
/// each retry saved is time sessions are not shared (after a Sentinel failover, the
/// sentinels name the new master within a few seconds, and the store finds it within this).
const RETRY_INTERVAL: Duration = Duration::from_millis(250);
/// The least time between two checks that failed operations ask for, so a Redis that
/// fails every command cannot keep the store reconnecting back to back.
const RECHECK_SPACING: Duration = Duration::from_millis(100);

/// Opens or resumes a session, atomically. KEYS[1]: the session key. ARGV[1]: the resume
/// window in ms. Returns {age in ms, count, opened, ttl in ms}: with opened = 1 the count is
/// this open's first tick (now claimed); with 0 it is the count an earlier open already
/// sent, and nothing was written. The ttl is what was left of the session's expiry before
/// this open (-2: there was no session), which tells how long it was away. The rule is [`Claim::after`]'s (the contract tests hold both
/// stores to it). An age below zero (a new master whose clock is behind the old one's) is
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
    topology: Topology,
    /// The live connection, or none while Redis is unreachable. Cloned out for each
    /// operation (a connection is a cheap handle), never held across an await.
    held: Mutex<Held>,
    /// Wakes [`Self::maintain`] when an operation fails, so a failover is followed at once
    /// rather than at the next check.
    recheck: Notify,
    resume_window: Duration,
    open_script: Script,
    /// `redis`, `redis-sentinel` or `redis-cluster`, for the health check.
    kind: &'static str,
    /// The target without credentials, for log messages.
    description: String,
}

/// The connection the store holds, if any. Each connection gets the next number, so an
/// operation that failed on an old one does not drop the new one that replaced it meanwhile.
#[derive(Default)]
struct Held {
    live: Option<Live>,
    generation: u64,
}

/// The Redis key of a session. Ids are validated before they get here, so they need no
/// escaping; the braces make the id the key's hash tag.
pub fn session_key(id: &ClientId) -> String {
    format!("wstime:session:{{{id}}}")
}

impl RedisStore {
    /// A store for `target`. Nothing is connected here; that is [`Self::maintain`]'s job,
    /// so a server can start while Redis is down.
    pub fn new(target: &RedisTarget, resume_window: Duration) -> Result<Self, redis::RedisError> {
        Ok(Self {
            topology: Topology::new(target)?,
            held: Mutex::default(),
            recheck: Notify::new(),
            resume_window,
            open_script: Script::new(OPEN_SCRIPT),
            kind: target.kind(),
            description: target.to_string(),
        })
    }

    /// What the store is connected to, without credentials: `redis://host:port/db`, or the
    /// Sentinel group or cluster the URL named.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Tries to connect once; the error says why it could not.
    pub async fn connect(&self) -> Result<(), ConnectError> {
        let live = self.topology.connect().await?;
        self.hold(live);
        Ok(())
    }

    /// Keeps the connection alive until `stop`: checks it every second (and at once
    /// after a failed operation), retries four times a second while it is lost, and follows
    /// a Sentinel failover. Logs each change of state once, not each failed attempt.
    pub async fn maintain(&self, stop: impl std::future::Future<Output = ()>) {
        let mut stop = std::pin::pin!(stop);
        let mut was = self.current().map(|(_, live)| live.address);
        let mut last_check = Instant::now();
        loop {
            let wait = if was.is_some() { CHECK_INTERVAL } else { RETRY_INTERVAL };
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(wait) => {}
                () = self.recheck.notified() => {
                    tokio::time::sleep_until(last_check + RECHECK_SPACING).await;
                }
            }
            last_check = Instant::now();
            let outcome = match self.current() {
                Some((generation, live)) => match self.topology.check(&live).await {
                    Ok(()) => Ok(live.address),
                    Err(lost) => {
                        self.drop_connection(generation);
                        tracing::debug!("the Redis connection failed its check: {lost}");
                        self.reconnect().await
                    }
                },
                None => self.reconnect().await,
            };
            was = self.log_change(was, outcome);
        }
    }

    async fn reconnect(&self) -> Result<String, ConnectError> {
        let live = self.topology.connect().await?;
        let address = live.address.clone();
        self.hold(live);
        Ok(address)
    }

    /// Logs how the connection changed since the last check, and returns where it goes now.
    fn log_change(&self, was: Option<String>, now: Result<String, ConnectError>) -> Option<String> {
        let description = &self.description;
        match (was, now) {
            (Some(_), Err(error)) => {
                tracing::warn!(
                    "lost Redis at {description} ({error}): open sockets keep ticking; new \
                     sessions are kept in this instance's memory until it is back"
                );
                None
            }
            (None, Ok(address)) => {
                tracing::info!(
                    "connected to Redis at {description} ({address}): new sessions are \
                     shared again"
                );
                Some(address)
            }
            (Some(before), Ok(address)) if before != address => {
                let master = self.topology.master_name().unwrap_or("the store");
                tracing::info!("the master of {master} moved from {before} to {address}");
                Some(address)
            }
            (_, now) => now.ok(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn hold(&self, live: Live) {
        let mut held = self.lock();
        held.generation += 1;
        held.live = Some(live);
    }

    fn current(&self) -> Option<(u64, Live)> {
        let held = self.lock();
        held.live.clone().map(|live| (held.generation, live))
    }

    fn connection(&self) -> Result<(u64, Connection), StoreError> {
        let (generation, live) = self.current().ok_or(StoreError::Unavailable)?;
        Ok((generation, live.connection))
    }

    /// Forgets connection `generation`, if it is still the one held.
    fn drop_connection(&self, generation: u64) {
        let mut held = self.lock();
        if held.generation == generation {
            held.live = None;
        }
    }

    /// Runs one operation on connection `generation`, bounded by [`OPERATION_LIMIT`]. A
    /// failure (a refused or dropped connection, a timeout, a `READONLY` from a demoted
    /// master) drops the connection, so later operations fail fast, and wakes `maintain` to
    /// find Redis again.
    async fn run<T>(
        &self,
        generation: u64,
        operation: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        let outcome = match tokio::time::timeout(OPERATION_LIMIT, operation).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => Err(StoreError::Backend(error.to_string())),
            Err(_) => Err(StoreError::Timeout(OPERATION_LIMIT)),
        };
        self.drop_connection(generation);
        self.recheck.notify_one();
        outcome
    }

    async fn claim(&self, id: &ClientId) -> Result<Claim, StoreError> {
        let (generation, mut connection) = self.connection()?;
        let key = session_key(id);
        let window_ms = self.resume_window.as_millis() as u64;
        let mut invocation = self.open_script.key(&key);
        invocation.arg(window_ms);
        let (age_ms, count, opened, ttl_ms): (u64, u64, bool, i64) =
            self.run(generation, invocation.invoke_async(&mut connection)).await?;
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

    /// Runs `script` on `key` with `args`, on the store's connection and under its rules
    /// (bounded in time; a failure makes the store look for Redis again). One key: in a
    /// Redis Cluster a script must keep to one slot.
    pub async fn eval<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        key: &str,
        args: &[&str],
    ) -> Result<T, StoreError> {
        let (generation, mut connection) = self.connection()?;
        let mut invocation = script.key(key);
        for arg in args {
            invocation.arg(*arg);
        }
        self.run(generation, invocation.invoke_async(&mut connection)).await
    }

    /// Removes `field` from the hash at `key`.
    pub async fn remove_field(&self, key: &str, field: &str) -> Result<(), StoreError> {
        let (generation, mut connection) = self.connection()?;
        let mut remove = redis::cmd("HDEL");
        remove.arg(key).arg(field);
        let _: i64 = self.run(generation, remove.query_async(&mut connection)).await?;
        Ok(())
    }

    async fn touch_session(&self, id: &ClientId) -> Result<(), StoreError> {
        let (generation, mut connection) = self.connection()?;
        let window_ms = self.resume_window.as_millis() as u64;
        let _: i64 = self
            .run(
                generation,
                redis::cmd("PEXPIRE")
                    .arg(session_key(id))
                    .arg(window_ms)
                    .query_async(&mut connection),
            )
            .await?;
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
        StoreStatus { kind: self.kind, reachable: self.lock().live.is_some() }
    }
}
