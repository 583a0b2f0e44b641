//! Sessions: where a client's start time lives, so that a reconnect with the same id, to
//! this instance or any other sharing the store, continues the count instead of restarting.
//!
//! One trait, two backends: [`memory::MemoryStore`] (embedded; one instance needs nothing
//! else) and [`redis::RedisStore`] (shared by every instance). [`fallback::FallbackStore`]
//! puts the two together so that a Redis outage degrades to per-instance sessions rather
//! than refused connections.
//!
//! The store is touched when a socket opens, on a slow keep-alive while it stays open, and
//! once when it closes; never per tick. The last two go through [`touches`], one queue per
//! instance, because a connection cannot wait on the store.

pub mod fallback;
pub mod memory;
pub mod redis;
pub mod touches;

use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::Serialize;
use wstime_protocol::ClientId;

/// A session as a new connection finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// The session's age, measured on the store's clock (zero for a new session).
    pub age: Duration,
    /// The count the connection's first tick must say. Normally the age rounded up; more if
    /// an earlier connection already sent that count, so that no count is ever sent twice.
    pub first: u64,
}

impl Opened {
    /// The first count for a session of age `age` whose highest count sent at an open so far
    /// is `claimed`. Rounding up makes the first tick after a reconnect larger than any
    /// regular tick sent before it (regular ticks are sent once the age reaches their count).
    pub fn after(age: Duration, claimed: Option<u64>) -> Self {
        let rounded_up = age.as_millis().div_ceil(1000) as u64;
        let first = match claimed {
            Some(claimed) if claimed >= rounded_up => claimed + 1,
            _ => rounded_up,
        };
        Self { age, first }
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
}

/// What the health check reports about the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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

    #[test]
    fn the_first_count_is_the_age_rounded_up() {
        assert_eq!(Opened::after(Duration::ZERO, None).first, 0);
        assert_eq!(Opened::after(Duration::from_millis(1), None).first, 1);
        assert_eq!(Opened::after(Duration::from_millis(12_000), None).first, 12);
        assert_eq!(Opened::after(Duration::from_millis(12_001), None).first, 13);
    }

    #[test]
    fn a_count_already_sent_at_an_open_is_never_sent_again() {
        assert_eq!(Opened::after(Duration::from_millis(12_300), Some(13)).first, 14);
        assert_eq!(Opened::after(Duration::from_millis(12_300), Some(11)).first, 13);
    }

    #[test]
    fn keep_alive_is_slow_but_inside_the_window() {
        assert_eq!(keep_alive_interval(Duration::from_secs(300)), Duration::from_secs(60));
        assert_eq!(keep_alive_interval(Duration::from_secs(3)), Duration::from_secs(1));
    }
}
