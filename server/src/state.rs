//! What every request handler and connection shares.

use std::{sync::Arc, time::Duration};

use tokio::time::Instant;

use crate::{
    capacity::{Capacity, Health},
    lifecycle::Lifecycle,
    metrics::Metrics,
    rebalance::Quota,
    registry::KnownCluster,
    session::{touches::Touches, SessionStore},
    shutdown::DrainTiming,
};

/// The state shared by all workers; there is one per instance, shared as `web::Data`.
pub struct AppState {
    /// This instance's name, as it appears in every tick.
    pub name: Arc<str>,
    /// Where this instance can be reached, as the cluster registry shows it.
    pub address: Arc<str>,
    /// The start of every tick's text (`<name>: you have been connected for `), built once.
    pub tick_prefix: Arc<str>,
    /// Where sessions live (memory, or Redis with a memory fallback).
    pub sessions: Arc<dyn SessionStore>,
    /// Where connections ask for their session's expiry to be restarted.
    pub touches: Touches,
    /// The connection timers.
    pub timing: Timing,
    /// The drain's grace period and window.
    pub drain: DrainTiming,
    /// Limits, load and admission.
    pub capacity: Arc<Capacity>,
    /// Where the instance is in its life (serving, draining, …), and its live connections.
    pub lifecycle: Lifecycle,
    /// What `/metrics` reports (the session store, made first, counts Redis's failures into
    /// it too).
    pub metrics: Arc<Metrics>,
    /// The cluster, as the registry last showed it (`/cluster`).
    pub cluster: KnownCluster,
    /// Sockets the workers are to move to other instances (see [`crate::rebalance`]).
    pub rebalance: Quota,
    /// When this instance started: the health check's uptime, and the tick wheels' epoch.
    pub started: Instant,
}

/// The timers every connection runs.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Between the server's pings; idleness is checked at each. Pings go out with ticks, so
    /// at most once a second.
    pub ping_interval: Duration,
    /// Silence after which a peer is dropped (noticed at the next ping, so within
    /// `idle_timeout + ping_interval`).
    pub idle_timeout: Duration,
    /// Between refreshes of the session's expiry while the socket holds it.
    pub keep_alive: Duration,
}

impl AppState {
    /// State for a server called `name`, reached at `address`.
    pub fn new(
        name: &str,
        address: &str,
        sessions: Arc<dyn SessionStore>,
        touches: Touches,
        timing: Timing,
        drain: DrainTiming,
        capacity: Capacity,
    ) -> Self {
        Self {
            name: name.into(),
            address: address.into(),
            tick_prefix: wstime_protocol::tick::prefix(name).into(),
            sessions,
            touches,
            timing,
            drain,
            capacity: Arc::new(capacity),
            lifecycle: Lifecycle::default(),
            metrics: Arc::default(),
            cluster: KnownCluster::new(name),
            rebalance: Quota::default(),
            started: Instant::now(),
        }
    }

    /// What the health check says now: judged on the connections open now (see
    /// [`Capacity::assess`]), and draining whatever the load.
    pub fn health(&self) -> Health {
        let (health, _) = self.capacity.assess(self.live_connections());
        match self.lifecycle.is_draining() {
            true => Health::Draining,
            false => health,
        }
    }

    /// WebSocket connections open right now.
    pub fn live_connections(&self) -> usize {
        self.lifecycle.live_connections()
    }
}
