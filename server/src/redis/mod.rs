//! The Redis client every part that uses Redis shares: the session store and the cluster
//! registry each send their own commands through one [`Redis`], which keeps its connection.
//!
//! [`target`] reads `REDIS_URL` (one Redis, a Sentinel group, a Redis Cluster) and [`tls`]
//! its certificate authority; [`topology`] says what connecting and checking mean for each
//! kind of target, with [`sentinel`] asking a Sentinel group for its master. The connection
//! is kept by [`Redis::maintain`]: it connects, checks the connection once a second, and
//! reconnects by itself after an outage or a failover. While it is down, operations fail at
//! once with [`OperationError::Unavailable`] instead of waiting.
//!
//! The first connection, at start-up, also runs [`access`]'s check that the credentials may
//! do everything its users will do (each user says what, as [`access::Probe`]s); [`refusal`]
//! tells such a refusal (or a TLS failure) from an outage, which only the latter is worth
//! waiting out.

pub mod access;
pub mod refusal;
pub mod sentinel;
pub mod target;
pub mod tls;
pub mod topology;

use std::{
    future::Future,
    sync::{Mutex, MutexGuard},
    time::Duration,
};

use redis::{FromRedisValue, Script};
use tokio::{sync::Notify, time::Instant};

use self::{
    access::Probe,
    target::RedisTarget,
    topology::{ConnectError, Connection, Live, Topology},
};

/// How long one Redis operation may take. A Redis that answers slower than this is treated
/// as down: a WebSocket's open must not wait on it.
pub const OPERATION_LIMIT: Duration = Duration::from_millis(500);
/// How often a live connection is checked.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// How often a lost connection is retried: more often than a live one is checked, because
/// each retry saved is time sessions are not shared (after a Sentinel failover, the
/// sentinels name the new master within a few seconds, and the client finds it within this).
const RETRY_INTERVAL: Duration = Duration::from_millis(250);
/// The least time between two checks that failed operations ask for, so a Redis that
/// fails every command cannot keep the client reconnecting back to back.
const RECHECK_SPACING: Duration = Duration::from_millis(100);

/// Why one operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OperationError {
    #[error("Redis is unreachable")]
    Unavailable,
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("Redis failed: {0}")]
    Failed(String),
}

/// A connection to the Redis `REDIS_URL` names, kept alive, shared by its users.
pub struct Redis {
    topology: Topology,
    /// The live connection, or none while Redis is unreachable. Cloned out for each
    /// operation (a connection is a cheap handle), never held across an await.
    held: Mutex<Held>,
    /// Wakes [`Self::maintain`] when an operation fails, so a failover is followed at once
    /// rather than at the next check.
    recheck: Notify,
    /// `redis`, `redis-sentinel` or `redis-cluster`, for the health check.
    kind: &'static str,
    /// The target without credentials, for log messages.
    description: String,
}

/// The connection the client holds, if any. Each connection gets the next number, so an
/// operation that failed on an old one does not drop the new one that replaced it meanwhile.
#[derive(Default)]
struct Held {
    live: Option<Live>,
    generation: u64,
}

impl Redis {
    /// A client for `target`. Nothing is connected here; that is [`Self::connect`]'s and
    /// [`Self::maintain`]'s job, so a server can start while Redis is down.
    pub fn new(target: &RedisTarget) -> Result<Self, redis::RedisError> {
        Ok(Self {
            topology: Topology::new(target)?,
            held: Mutex::default(),
            recheck: Notify::new(),
            kind: target.kind(),
            description: target.to_string(),
        })
    }

    /// What the client is connected to, without credentials: `redis://host:port/db`, or the
    /// Sentinel group or cluster the URL named.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// `redis`, `redis-sentinel` or `redis-cluster`.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Whether a connection is held now.
    pub fn is_connected(&self) -> bool {
        self.lock().live.is_some()
    }

    /// Tries to connect once, and checks that the REDIS_URL user may do each of `probes`
    /// ([`access`]); the error says why it could not. A [`ConnectError::Refused`] is for the
    /// operator to mend, not for a retry.
    pub async fn connect(&self, probes: &[Probe]) -> Result<(), ConnectError> {
        let mut live = self.topology.connect().await?;
        access::check(&live.address, &mut live.connection, probes).await?;
        self.hold(live);
        Ok(())
    }

    /// Keeps the connection alive until `stop`: checks it every second (and at once
    /// after a failed operation), retries four times a second while it is lost, and follows
    /// a Sentinel failover. Logs each change of state once, not each failed attempt.
    pub async fn maintain(&self, stop: impl Future<Output = ()>) {
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

    /// Runs `script` on `key` with `args`, bounded in time; a failure makes the client look
    /// for Redis again. One key: in a Redis Cluster a script must keep to one slot.
    pub async fn eval<T: FromRedisValue>(
        &self,
        script: &Script,
        key: &str,
        args: &[&str],
    ) -> Result<T, OperationError> {
        let (generation, mut connection) = self.connection()?;
        let mut invocation = script.key(key);
        for arg in args {
            invocation.arg(*arg);
        }
        self.run(generation, invocation.invoke_async(&mut connection)).await
    }

    /// Sends `command`, under the same rules as [`Self::eval`].
    pub async fn query<T: FromRedisValue>(
        &self,
        command: &redis::Cmd,
    ) -> Result<T, OperationError> {
        let (generation, mut connection) = self.connection()?;
        self.run(generation, command.query_async(&mut connection)).await
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

    fn connection(&self) -> Result<(u64, Connection), OperationError> {
        let (generation, live) = self.current().ok_or(OperationError::Unavailable)?;
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
    ) -> Result<T, OperationError> {
        let outcome = match tokio::time::timeout(OPERATION_LIMIT, operation).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => Err(OperationError::Failed(error.to_string())),
            Err(_) => Err(OperationError::Timeout(OPERATION_LIMIT)),
        };
        self.drop_connection(generation);
        self.recheck.notify_one();
        outcome
    }
}
