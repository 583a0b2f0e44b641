//! Capacity: how loaded this instance is, whether the load balancer should send it new
//! connections, and the hard limit beyond which it refuses them.
//!
//! Load is the largest of the measured ratios: open connections over the connection limit
//! and, when a network capacity is configured, outbound bytes per second over it. The
//! health check fails once load reaches `healthy_below` and recovers only below the lower
//! `recover_below`, so an instance hovering at the threshold does not flap in and out of
//! the load balancer. Failing well before 100% leaves the buffer the post asks for: the
//! sockets already open keep their instance and may keep growing their traffic.

use std::{
    future::Future,
    pin::pin,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wstime_protocol::Health;

use crate::traffic::{Traffic, TrafficTotals};

/// Files the process needs besides its WebSockets and the connections in their HTTP phase
/// (listener, Redis, page files, logs, …).
const RESERVED_FILES: u64 = 64;

/// The thresholds and limits, as configured.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: u64,
    pub healthy_below: f64,
    pub recover_below: f64,
    pub network_capacity_bps: Option<u64>,
}

/// This instance's capacity and how much of it is in use.
#[derive(Debug)]
pub struct Capacity {
    pub limits: Limits,
    /// One permit per connection the instance may hold; a connection keeps its permit for
    /// its whole life, so admission is exact even when upgrades race.
    slots: Arc<Semaphore>,
    /// Each worker's traffic, summed once a second by [`Capacity::sample`].
    workers: Mutex<Vec<Arc<Traffic>>>,
    /// Outbound bytes in the last whole second, updated by [`Capacity::sample`].
    sent_per_second: AtomicU64,
    /// The hysteresis state: true from reaching `healthy_below` until below `recover_below`.
    overloaded: AtomicBool,
}

impl Capacity {
    /// Capacity under `limits`, with nothing in use yet.
    pub fn new(limits: Limits) -> Self {
        let permits = usize::try_from(limits.max_connections).unwrap_or(Semaphore::MAX_PERMITS);
        Self {
            limits,
            slots: Arc::new(Semaphore::new(permits.min(Semaphore::MAX_PERMITS))),
            workers: Mutex::new(Vec::new()),
            sent_per_second: AtomicU64::new(0),
            overloaded: AtomicBool::new(false),
        }
    }

    /// A slot for one more connection, or `None` at the hard limit.
    pub fn admit(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.slots).try_acquire_owned().ok()
    }

    /// Traffic counters for one more worker, to be summed with the others'.
    pub fn traffic(&self) -> Arc<Traffic> {
        let traffic = Arc::new(Traffic::default());
        self.workers.lock().unwrap_or_else(|e| e.into_inner()).push(Arc::clone(&traffic));
        traffic
    }

    /// Every worker's traffic so far, summed.
    pub fn traffic_totals(&self) -> TrafficTotals {
        let mut totals = TrafficTotals::default();
        for traffic in self.workers.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            traffic.add_to(&mut totals);
        }
        totals
    }

    /// Bytes of ticks sent since start, by every worker.
    fn sent_bytes(&self) -> u64 {
        let workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        workers.iter().map(|traffic| traffic.bytes()).sum()
    }

    /// Outbound bytes per second, over the last whole second.
    pub fn outbound_bps(&self) -> u64 {
        self.sent_per_second.load(Ordering::Relaxed)
    }

    /// Once a second until `stop`: measures the outbound rate, and judges the health
    /// with the `connections` open then, so the hysteresis follows the load as it changes
    /// (and logs its turns) whether or not anyone reads the health check.
    pub async fn sample(&self, connections: impl Fn() -> usize, stop: impl Future<Output = ()>) {
        let mut stop = pin!(stop);
        let mut every_second = tokio::time::interval(Duration::from_secs(1));
        let mut last = self.sent_bytes();
        loop {
            tokio::select! {
                () = &mut stop => return,
                _ = every_second.tick() => {}
            }
            let now = self.sent_bytes();
            self.sent_per_second.store(now - last, Ordering::Relaxed);
            last = now;
            self.assess(connections());
        }
    }

    /// The load with `connections` open: the largest of the measured ratios.
    pub fn load(&self, connections: usize) -> f64 {
        let by_connections = connections as f64 / self.limits.max_connections as f64;
        let by_network = self
            .limits
            .network_capacity_bps
            .map_or(0.0, |capacity| self.outbound_bps() as f64 / capacity as f64);
        by_connections.max(by_network)
    }

    /// Whether the instance should take new connections with `connections` open, applying
    /// the hysteresis; returns the health and the load it was judged on.
    pub fn assess(&self, connections: usize) -> (Health, f64) {
        let load = self.load(connections);
        let was_overloaded = self.overloaded.load(Ordering::Relaxed);
        let overloaded = if was_overloaded {
            load >= self.limits.recover_below
        } else {
            load >= self.limits.healthy_below
        };
        if overloaded != was_overloaded {
            self.overloaded.store(overloaded, Ordering::Relaxed);
            if overloaded {
                tracing::warn!(
                    load,
                    "load reached {}: health check now 503",
                    self.limits.healthy_below
                );
            } else {
                tracing::info!(
                    load,
                    "load fell below {}: health check now 200",
                    self.limits.recover_below
                );
            }
        }
        (if overloaded { Health::Overloaded } else { Health::Ok }, load)
    }
}

/// The default connection limit: the open-file limit (raised to its hard maximum first)
/// less a reserve for the `pending` connections in their HTTP phase and the files that are
/// not sockets (at least a twentieth of the limit), so a full instance can still answer
/// its health check.
pub fn default_max_connections(pending: u64) -> u64 {
    let soft = rlimit::increase_nofile_limit(u64::MAX)
        .unwrap_or_else(|_| rlimit::Resource::NOFILE.get().map_or(1024, |(soft, _)| soft));
    with_reserve(soft, pending)
}

/// `files` less the reserve for `pending` connections and everything else.
fn with_reserve(files: u64, pending: u64) -> u64 {
    let reserve = pending.saturating_add(RESERVED_FILES).max(files / 20);
    files.saturating_sub(reserve).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capacity(max: u64) -> Capacity {
        Capacity::new(Limits {
            max_connections: max,
            healthy_below: 0.6,
            recover_below: 0.5,
            network_capacity_bps: Some(1000),
        })
    }

    #[test]
    fn health_fails_at_the_threshold_and_recovers_below_the_lower_one() {
        let capacity = capacity(10);
        let seen: Vec<Health> =
            [0, 5, 6, 7, 6, 5, 4, 5, 6].iter().map(|&c| capacity.assess(c).0).collect();
        use Health::{Ok as Up, Overloaded as Over};
        assert_eq!(seen, [Up, Up, Over, Over, Over, Over, Up, Up, Over]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_hysteresis_follows_the_load_between_reads_of_the_health_check() {
        // Six of ten open for a few seconds, then five: nobody read the health check at six.
        let sampled = capacity(10);
        sampled.sample(|| 6, tokio::time::sleep(Duration::from_millis(2500))).await;
        assert_eq!(sampled.assess(5).0, Health::Overloaded, "it saw six: 5 is not below 0.5");
        let unsampled = capacity(10);
        assert_eq!(unsampled.assess(5).0, Health::Ok, "judged at the read alone, 5 is fine");
    }

    #[test]
    fn network_use_counts_as_load() {
        let capacity = capacity(1000);
        capacity.sent_per_second.store(700, Ordering::Relaxed);
        assert_eq!(capacity.load(1), 0.7);
        assert_eq!(capacity.assess(1).0, Health::Overloaded);
    }

    #[test]
    fn admission_stops_at_the_limit_and_resumes_when_a_slot_frees() {
        let capacity = capacity(2);
        let first = capacity.admit().expect("slot 1");
        let _second = capacity.admit().expect("slot 2");
        assert!(capacity.admit().is_none());
        drop(first);
        assert!(capacity.admit().is_some());
    }

    #[test]
    fn the_default_limit_leaves_a_reserve_that_covers_the_pending_pool() {
        let limit = default_max_connections(1024);
        let (soft, _) = rlimit::Resource::NOFILE.get().unwrap();
        assert!(limit < soft, "{limit} of {soft}");
        // 20,000 files: a twentieth (1,000) would not cover 1,024 pending.
        assert_eq!(with_reserve(20_000, 1024), 20_000 - 1024 - 64);
        assert_eq!(with_reserve(1_000_000, 1024), 950_000, "a twentieth, when larger");
        assert_eq!(with_reserve(1_000, 1024), 1, "never zero");
    }
}
