//! What every request handler and connection task shares.

use std::{sync::Arc, time::Duration, time::Instant};

use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::session::SessionStore;

/// The state shared by all workers. Cloning is cheap: every field is reference-counted or
/// small.
#[derive(Clone)]
pub struct AppState {
    /// This instance's name, as it appears in every tick.
    pub name: Arc<str>,
    /// The start of every tick's text (`<name>: you have been connected for `), built once.
    pub tick_prefix: Arc<str>,
    /// Where sessions live (memory, or Redis with a memory fallback).
    pub sessions: Arc<dyn SessionStore>,
    /// The connection timers.
    pub timing: Timing,
    /// One tracked task per open WebSocket: its length is the live-connection count, and
    /// waiting on it after `close()` is how shutdown knows every socket has ended.
    pub connections: TaskTracker,
    /// Cancelled when the server starts shutting down; every connection task listens.
    pub shutdown: CancellationToken,
    /// When this instance started, for the health check's uptime.
    pub started: Instant,
}

/// The timers every connection runs.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Between the server's pings.
    pub ping_interval: Duration,
    /// Silence after which a peer is dropped.
    pub idle_timeout: Duration,
    /// Between refreshes of the session's expiry while the socket holds it.
    pub keep_alive: Duration,
}

impl AppState {
    /// State for a server called `name`.
    pub fn new(name: &str, sessions: Arc<dyn SessionStore>, timing: Timing) -> Self {
        Self {
            name: name.into(),
            tick_prefix: wstime_protocol::tick::prefix(name).into(),
            sessions,
            timing,
            connections: TaskTracker::new(),
            shutdown: CancellationToken::new(),
            started: Instant::now(),
        }
    }

    /// WebSocket connections open right now.
    pub fn live_connections(&self) -> usize {
        self.connections.len()
    }
}
