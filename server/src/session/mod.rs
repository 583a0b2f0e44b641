//! Sessions: where a client's start time lives, so that a reconnect with the same id, to
//! this instance or any other sharing the store, continues the count instead of restarting.
//!
//! One trait, two backends: [`memory::MemoryStore`] (embedded; one instance needs nothing
//! else) and [`redis::RedisStore`] (shared by every instance: one Redis, a Sentinel group's
//! master, or a Redis Cluster). [`fallback::FallbackStore`] puts the two together so that
//! a Redis outage degrades to per-instance sessions rather than refused connections, and
//! [`timed::Timed`] times every operation of whichever store the instance runs with.
//!
//! The store is touched when a socket opens, on a slow keep-alive while it stays open, and
//! once when it closes; never per tick. The last two go through [`touches`], one queue per
//! instance, because a connection cannot wait on the store.

pub mod fallback;
pub mod memory;
pub mod redis;
pub mod timed;
pub mod touches;

use std::{future::Future, time::Duration};

use futures_util::future::BoxFuture;
use wstime_protocol::ClientId;

/// A session as a new connection finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// The session's age, measured on the store's clock (zero for a new session).
    pub age: Duration,
    /// The count the connection's first tick must say: the age rounded up.
    pub first: u64,
    /// For a session that existed before this open, how long it had been since its last
    /// touch (its last socket's close, or, if that socket's instance died, its last
    /// keep-alive): how long the client was away. `None` for a new session.
    pub away: Option<Duration>,
}

impl Opened {
    /// A session of age `age`, opened with the count its age allows: the age rounded up,
    /// so the first tick after a reconnect is at least any regular tick sent before it
    /// (regular ticks are sent once the age reaches their count).
    pub fn at(age: Duration) -> Self {
        Self { age, first: age.as_millis().div_ceil(1000) as u64, away: None }
    }

    /// The same, for a session that existed and was away for `away`.
    pub fn resumed(self, away: Duration) -> Self {
        Self { away: Some(away), ..self }
    }
}

/// One attempt to open a session: either its next count is free, or an earlier open of
/// the same session already sent the count its age allows.
///
/// Every count a client is sent is at most the session's age rounded up, so the start time
/// alone bounds every count ever sent. That is what makes a lost write harmless: a Redis
/// failover can lose the last `claimed` (replication is asynchronous), and then a reopen
/// may say a count again, but never a smaller one. Running ahead of the age instead (the
/// next number after `claimed`, at once) would make the lost `claimed` the only record of
/// a count the client has seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The count is this connection's.
    Opened(Opened),
    /// The count the age allows was sent by an earlier open; the next one is free once the
    /// age passes it, `free_in` from now.
    Taken { free_in: Duration },
}

impl Claim {
    /// The outcome for a session of age `age` whose highest count sent at an open so far is
    /// `claimed`.
    pub fn after(age: Duration, claimed: Option<u64>) -> Self {
        let opened = Opened::at(age);
        match claimed {
            Some(claimed) if claimed >= opened.first => Self::taken(age, claimed),
            _ => Self::Opened(opened),
        }
    }

    /// `claimed` was already sent: the next count is free a millisecond after the age
    /// reaches it.
    pub fn taken(age: Duration, claimed: u64) -> Self {
        let free_at = Duration::from_secs(claimed) + Duration::from_millis(1);
        Self::Taken { free_in: free_at.saturating_sub(age) }
    }
}

/// How long an open may wait for its session's next count. One second covers a reconnect
/// within the same second as the last; more means several connections are opening the
/// same session at once, and the caller is better told to come back.
pub const CLAIM_WAIT_LIMIT: Duration = Duration::from_secs(2);

/// Opens a session by calling `attempt` until the session's next count is free, waiting
/// for it in between (at most [`CLAIM_WAIT_LIMIT`] in all).
pub async fn open_when_free<F, Fut>(mut attempt: F) -> Result<Opened, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Claim, StoreError>>,
{
    let mut waited = Duration::ZERO;
    loop {
        match attempt().await? {
            Claim::Opened(opened) => return Ok(opened),
            Claim::Taken { free_in } if waited + free_in <= CLAIM_WAIT_LIMIT => {
                tokio::time::sleep(free_in).await;
                waited += free_in;
            }
            Claim::Taken { .. } => return Err(StoreError::Busy),
        }
    }
}

/// Why a store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the session store is unreachable")]
    Unavailable,
    #[error("the session store did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the session store failed: {0}")]
    Backend(String),
    #[error("other connections with this id are opening the session at the same moment")]
    Busy,
}

/// What the health check reports about the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreStatus {
    /// `memory` or `redis`.
    pub kind: &'static str,
    /// Whether the store is answering (always true for memory).
    pub reachable: bool,
}

/// A place to keep sessions.
pub trait SessionStore: Send + Sync {
    /// Opens the session `id`, creating it if it does not exist (or has expired), and
    /// (re)starts its expiry: it lives for the resume window after the last touch.
    fn open<'a>(&'a self, id: &'a ClientId) -> BoxFuture<'a, Result<Opened, StoreError>>;

    /// Restarts the session's expiry, if it still exists. Called on the keep-alive while a
    /// socket holds the session, and once when the socket closes.
    fn touch<'a>(&'a self, id: &'a ClientId) -> BoxFuture<'a, Result<(), StoreError>>;

    /// What kind of store this is and whether it answers.
    fn status(&self) -> StoreStatus;
}

/// The keep-alive interval for a resume window: often enough that a held session never
/// expires, rarely enough that store traffic stays per connection, not per tick.
pub fn keep_alive_interval(resume_window: Duration) -> Duration {
    (resume_window / 3).clamp(Duration::from_millis(200), Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opened(age_ms: u64, claimed: Option<u64>) -> u64 {
        match Claim::after(Duration::from_millis(age_ms), claimed) {
            Claim::Opened(opened) => opened.first,
            taken => panic!("expected an open, got {taken:?}"),
        }
    }

    #[test]
    fn the_first_count_is_the_age_rounded_up() {
        assert_eq!(opened(0, None), 0);
        assert_eq!(opened(1, None), 1);
        assert_eq!(opened(12_000, None), 12);
        assert_eq!(opened(12_001, None), 13);
        assert_eq!(opened(12_300, Some(12)), 13, "a count claimed in an earlier second");
    }

    #[test]
    fn a_count_already_sent_is_free_again_only_once_the_age_passes_it() {
        let taken = Claim::after(Duration::from_millis(12_300), Some(13));
        assert_eq!(taken, Claim::Taken { free_in: Duration::from_millis(701) });
        assert_eq!(opened(13_001, Some(13)), 14);
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_waits_for_the_next_count_but_not_forever() {
        let mut attempts = vec![
            Claim::Opened(Opened::at(Duration::from_secs(2))),
            Claim::Taken { free_in: Duration::from_millis(600) },
        ];
        let started = tokio::time::Instant::now();
        let opened = open_when_free(|| std::future::ready(Ok(attempts.pop().unwrap()))).await;
        assert_eq!(opened.unwrap().first, 2);
        assert_eq!(started.elapsed(), Duration::from_millis(600));

        let busy = Claim::Taken { free_in: Duration::from_millis(900) };
        let outcome = open_when_free(|| std::future::ready(Ok(busy))).await;
        assert!(matches!(outcome, Err(StoreError::Busy)), "{outcome:?}");
    }

    #[test]
    fn keep_alive_is_slow_but_inside_the_window() {
        assert_eq!(keep_alive_interval(Duration::from_secs(300)), Duration::from_secs(60));
        assert_eq!(keep_alive_interval(Duration::from_secs(3)), Duration::from_secs(1));
    }
}
