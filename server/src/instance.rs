//! This instance as the rest of the cluster and its operators see it: its name, where it is
//! reached, when it started, where it is in its life and how loaded it is. What the health
//! check, the registry entry, the agent's weight, rebalancing and `/metrics` are judged on,
//! in one small type, so none of them needs the edge's whole bundle ([`crate::state`]).

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, SystemTime},
};

use tokio::time::Instant;
use wstime_protocol::{Health, InstanceEntry};

use crate::{capacity::Capacity, lifecycle::Lifecycle};

/// One wstime instance.
#[derive(Debug)]
pub struct Instance {
    /// Its name, as it appears in every tick.
    pub name: Arc<str>,
    /// Where it can be reached, as the cluster registry shows it.
    pub address: String,
    /// When it started: the health check's uptime, and the tick wheels' epoch.
    pub started: Instant,
    /// Where it is in its life (serving, draining, …), and its live connections.
    pub lifecycle: Lifecycle,
    /// Its limits, load and admission.
    pub capacity: Capacity,
    /// When a load balancer's health check last reached it, in ms since `started`, plus
    /// one (0: never). Its registry entry says how long ago, so that the others do not
    /// move clients towards an instance its balancer can no longer reach.
    last_checked: AtomicU64,
}

impl Instance {
    /// The instance called `name`, reached at `address`, starting now.
    pub fn new(name: &str, address: &str, capacity: Capacity) -> Self {
        Self {
            name: name.into(),
            address: address.to_owned(),
            started: Instant::now(),
            lifecycle: Lifecycle::default(),
            capacity,
            last_checked: AtomicU64::new(0),
        }
    }

    /// Notes that a load balancer's health check reached it now.
    pub fn note_health_check(&self) {
        let since_start = self.started.elapsed().as_millis() as u64;
        self.last_checked.store(since_start + 1, Ordering::Relaxed);
    }

    /// How long ago a load balancer's health check last reached it; `None` if none has.
    pub fn checked_ago(&self) -> Option<Duration> {
        let at = self.last_checked.load(Ordering::Relaxed).checked_sub(1)?;
        Some(self.started.elapsed().saturating_sub(Duration::from_millis(at)))
    }

    /// WebSocket connections open right now.
    pub fn live_connections(&self) -> usize {
        self.lifecycle.live_connections()
    }

    /// What the health check says now and the load it was judged on: judged on the
    /// connections open now (see [`Capacity::assess`]), and draining whatever the load.
    pub fn assess(&self) -> (Health, f64) {
        let (health, load) = self.capacity.assess(self.live_connections());
        match self.lifecycle.is_draining() {
            true => (Health::Draining, load),
            false => (health, load),
        }
    }

    /// What the health check says now.
    pub fn health(&self) -> Health {
        self.assess().0
    }

    /// Its entry in the cluster registry now.
    pub fn entry(&self) -> InstanceEntry {
        let connections = self.live_connections();
        let started = SystemTime::now() - self.started.elapsed();
        InstanceEntry {
            name: self.name.to_string(),
            address: self.address.clone(),
            connections: connections as u64,
            max_connections: self.capacity.limits.max_connections,
            load: self.capacity.load(connections),
            health: self.health(),
            draining: self.lifecycle.is_draining(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_unix_ms: started
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |since| since.as_millis() as u64),
            refreshed_ms_ago: 0,
            checked_ms_ago: self.checked_ago().map(|ago| ago.as_millis() as u64),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{capacity::Limits, lifecycle::Stage};

    /// An instance called `name` that takes at most `max_connections`, for tests.
    pub(crate) fn instance(name: &str, max_connections: u64) -> Instance {
        let limits = Limits {
            max_connections,
            healthy_below: 0.6,
            recover_below: 0.5,
            network_capacity_bps: None,
        };
        Instance::new(name, "local", Capacity::new(limits))
    }

    #[test]
    fn draining_overrides_the_load_in_the_health_and_the_entry() {
        let instance = instance("one", 10);
        let open: Vec<_> = (0..7).map(|_| instance.lifecycle.connection()).collect();
        assert_eq!(instance.assess(), (Health::Overloaded, 0.7));
        instance.lifecycle.advance(Stage::Draining);
        assert_eq!(instance.health(), Health::Draining);
        let entry = instance.entry();
        assert_eq!((entry.connections, entry.health, entry.draining), (7, Health::Draining, true));
        drop(open);
    }
}
