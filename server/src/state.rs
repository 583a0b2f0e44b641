//! What every request handler and connection shares.

use std::{sync::Arc, time::Duration};

use tokio::time::Instant;

use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    capacity::Capacity,
    session::{touches::Touches, SessionStore},
    trigger::Trigger,
};

/// The state shared by all workers; there is one per instance, shared as `web::Data`.
pub struct AppState {
    /// This instance's name, as it appears in every tick.
    pub name: Arc<str>,
    /// The start of every tick's text (`<name>: you have been connected for `), built once.
    pub tick_prefix: Arc<str>,
    /// Where sessions live (memory, or Redis with a memory fallback).
    pub sessions: Arc<dyn SessionStore>,
    /// Where connections ask for their session's expiry to be restarted.
    pub touches: Touches,
    /// The connection timers.
    pub timing: Timing,
    /// Limits, load and admission.
    pub capacity: Arc<Capacity>,
    /// One token per open WebSocket: its length is the live-connection count, and waiting
    /// on it after `close()` is how shutdown knows every socket has ended.
    pub connections: TaskTracker,
    /// Cancelled on the first SIGTERM/SIGINT: the health check turns 503 and new upgrades
    /// are refused, while open sockets keep ticking.
    pub draining: CancellationToken,
    /// Fired once the drain's grace period is over: every connection closes its socket
    /// (1012) at a random moment within the drain window.
    pub shutdown: Trigger,
    /// When this instance started: the health check's uptime, and the tick wheels' epoch.
    pub started: Instant,
}

/// The timers every connection runs.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Between the server's pings; idleness is checked at each.
    pub ping_interval: Duration,
    /// Silence after which a peer is dropped (noticed at the next ping, so within
    /// `idle_timeout + ping_interval`).
    pub idle_timeout: Duration,
    /// Between refreshes of the session's expiry while the socket holds it.
    pub keep_alive: Duration,
    /// The window over which sockets are closed at shutdown.
    pub drain_window: Duration,
}

impl AppState {
    /// State for a server called `name`.
    pub fn new(
        name: &str,
        sessions: Arc<dyn SessionStore>,
        touches: Touches,
        timing: Timing,
        capacity: Capacity,
    ) -> Self {
        Self {
            name: name.into(),
            tick_prefix: wstime_protocol::tick::prefix(name).into(),
            sessions,
            touches,
            timing,
            capacity: Arc::new(capacity),
            connections: TaskTracker::new(),
            draining: CancellationToken::new(),
            shutdown: Trigger::default(),
            started: Instant::now(),
        }
    }

    /// WebSocket connections open right now.
    pub fn live_connections(&self) -> usize {
        self.connections.len()
    }
}
