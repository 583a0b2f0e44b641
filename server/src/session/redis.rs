//! The shared session store: one Redis key per session, `wstime:session:<id>`.
//!
//! The key is a hash holding the session's start (`start`, in milliseconds on Redis's own
//! clock) and the highest count sent as a first tick (`claimed`), with an expiry of the
//! resume window. One script creates it if absent and returns its age measured against
//! Redis's `TIME`, so instances whose clocks disagree still agree on every session's age.
//!
//! The connection is kept by [`RedisStore::maintain`]: it connects, pings once a second,
//! and reconnects by itself after an outage. While it is down, operations fail at once
//! with [`StoreError::Unavailable`] instead of waiting.

use std::{sync::Mutex, time::Duration};

use futures_util::future::{BoxFuture, FutureExt as _};
use redis::{aio::MultiplexedConnection, AsyncConnectionConfig, Client, Script};
use tokio_util::sync::CancellationToken;
use wstime_protocol::ClientId;

use super::{open_when_free, Claim, Opened, SessionStore, StoreError, StoreStatus};

/// How long one Redis operation may take. A session store that answers slower than this
/// is treated as down: a connect must not wait on it.
pub const OPERATION_LIMIT: Duration = Duration::from_millis(500);
/// How often the connection is checked (and, when down, retried).
const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Opens or resumes a session, atomically. KEYS[1]: the session key. ARGV[1]: the resume
/// window in ms. Returns {age in ms, count, opened}: with opened = 1 the count is this
/// open's first tick (now claimed); with 0 it is the count an earlier open already sent,
/// and nothing was written. The rule is [`Claim::after`]'s (the contract tests hold both
/// stores to it). An age below zero (a new master whose clock is behind the old one's) is
/// taken as zero.
const OPEN_SCRIPT: &str = r"
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
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
  return {age, claimed, 0}
end
redis.call('HSET', KEYS[1], 'start', start, 'claimed', first)
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return {age, first, 1}
";

/// Sessions in Redis.
pub struct RedisStore {
    client: Client,
    /// The live connection, or `None` while Redis is unreachable. Cloned out for each
    /// operation (a multiplexed connection is a cheap handle), never held across an await.
    connection: Mutex<Option<MultiplexedConnection>>,
    resume_window: Duration,
    open_script: Script,
    /// Where Redis is, without credentials, for log messages.
    address: String,
}

/// The Redis key of a session. Ids are validated before they get here, so they need no
/// escaping.
pub fn session_key(id: &ClientId) -> String {
    format!("wstime:session:{id}")
}

impl RedisStore {
    /// A store for the Redis at `url`. Only the URL is checked here; connecting is
    /// [`Self::maintain`]'s job, so a server can start while Redis is down.
    pub fn new(url: &str, resume_window: Duration) -> Result<Self, redis::RedisError> {
        let client = Client::open(url)?;
        let info = client.get_connection_info();
        let address = info.addr().to_string();
        Ok(Self {
            client,
            connection: Mutex::new(None),
            resume_window,
            open_script: Script::new(OPEN_SCRIPT),
            address,
        })
    }

    /// Where Redis is (host and port, never credentials).
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Tries to connect once; true on success.
    pub async fn connect(&self) -> bool {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(OPERATION_LIMIT))
            .set_response_timeout(Some(OPERATION_LIMIT));
        match self.client.get_multiplexed_async_connection_with_config(&config).await {
            Ok(mut connection) => {
                let pong: Result<String, _> = redis::cmd("PING").query_async(&mut connection).await;
                if pong.is_ok() {
                    *self.lock() = Some(connection);
                    return true;
                }
                false
            }
            Err(_) => false,
        }
    }

    /// Keeps the connection alive until `shutdown`: checks it every second and reconnects
    /// after an outage. Logs each change of state once, not each failed attempt.
    pub async fn maintain(&self, shutdown: CancellationToken) {
        let mut was_up = self.lock().is_some();
        if !was_up {
            tracing::warn!(
                "Redis at {} is unreachable: serving sessions from this instance's memory \
                 until it is back (sessions will not survive a move to another instance)",
                self.address
            );
        }
        let mut checks = tokio::time::interval(CHECK_INTERVAL);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = checks.tick() => {}
            }
            let up = match self.current() {
                Some(mut connection) => {
                    let pong: Result<String, _> =
                        redis::cmd("PING").query_async(&mut connection).await;
                    pong.is_ok() || self.connect().await
                }
                None => self.connect().await,
            };
            if !up {
                self.lock().take();
            }
            match (was_up, up) {
                (true, false) => tracing::warn!(
                    "lost Redis at {}: open sockets keep ticking; new sessions are kept in \
                     this instance's memory until it is back",
                    self.address
                ),
                (false, true) => tracing::info!(
                    "connected to Redis at {}: new sessions are shared again",
                    self.address
                ),
                _ => {}
            }
            was_up = up;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<MultiplexedConnection>> {
        self.connection.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn current(&self) -> Option<MultiplexedConnection> {
        self.lock().clone()
    }

    /// Runs one operation on the current connection, bounded by [`OPERATION_LIMIT`]. A
    /// failure drops the connection, so later operations fail fast until `maintain`
    /// reconnects.
    async fn run<T>(
        &self,
        operation: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(OPERATION_LIMIT, operation).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => {
                self.lock().take();
                Err(StoreError::Backend(error.to_string()))
            }
            Err(_) => {
                self.lock().take();
                Err(StoreError::Timeout(OPERATION_LIMIT))
            }
        }
    }

    async fn claim(&self, id: &ClientId) -> Result<Claim, StoreError> {
        let mut connection = self.current().ok_or(StoreError::Unavailable)?;
        let key = session_key(id);
        let window_ms = self.resume_window.as_millis() as u64;
        let (age_ms, count, opened): (u64, u64, bool) = self
            .run(self.open_script.key(&key).arg(window_ms).invoke_async(&mut connection))
            .await?;
        let age = Duration::from_millis(age_ms);
        Ok(match opened {
            true => Claim::Opened(Opened { age, first: count }),
            false => Claim::taken(age, count),
        })
    }

    async fn touch_session(&self, id: &ClientId) -> Result<(), StoreError> {
        let mut connection = self.current().ok_or(StoreError::Unavailable)?;
        let window_ms = self.resume_window.as_millis() as u64;
        let _: i64 = self
            .run(
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
        StoreStatus { kind: "redis", reachable: self.lock().is_some() }
    }
}
