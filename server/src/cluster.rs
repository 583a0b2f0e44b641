//! The cluster as this instance last saw it: the view the registry ([`crate::registry`])
//! refreshes, and how to read it (which entries have gone stale, whether the cluster's total
//! has settled, its mean). `GET /cluster`, the agent check, rebalancing and `/metrics` read
//! it; only the registry writes it.

use std::{
    collections::VecDeque,
    sync::Mutex,
    time::{Duration, Instant},
};

use wstime_protocol::{ClusterView, InstanceEntry};

/// How often every instance refreshes its registry entry.
pub const REFRESH: Duration = Duration::from_secs(2);

/// Views in a row whose totals must agree before the cluster counts as settled: three
/// refreshes span two, so every live instance has refreshed its entry among them.
const SETTLE_VIEWS: usize = 3;

/// How far the cluster's total may move among those views and still be settled: more than
/// rebalancing takes out of it in flight (at its default pace 5% of an instance's sockets a
/// second, away for about a second each), less than a ramp of arriving clients or the
/// clients of a lost instance.
pub const SETTLE_BAND: f64 = 0.1;

/// Whether `entry` has missed a refresh: its instance has likely died, its figures are old.
pub fn is_stale(entry: &InstanceEntry) -> bool {
    entry.refreshed_ms_ago > (REFRESH * 5 / 4).as_millis() as u64
}

/// How long an instance that its load balancer used to check may go unchecked before it
/// counts as out of rotation: several of HAProxy's 1 s checks (and its 500 ms retries), and
/// two periods of deploy/kubernetes/'s 2 s readiness probe, plus a refresh's age.
pub const UNCHECKED_LIMIT: Duration = Duration::from_secs(5);

/// Whether `entry`'s instance was checked by its load balancer and no longer is: the
/// balancer cannot reach it (a network split, a firewall), so it gets no new clients.
pub fn is_out_of_rotation(entry: &InstanceEntry) -> bool {
    entry
        .checked_ms_ago
        .is_some_and(|ago| ago + entry.refreshed_ms_ago > UNCHECKED_LIMIT.as_millis() as u64)
}

/// The mean of `view`'s connection counts, the answering instance's counted as `own`
/// (fresher than its registry entry); `None` unless the cluster is shared by at least two
/// instances.
pub fn mean(own: usize, view: &ClusterView) -> Option<f64> {
    if !view.shared || view.instances.len() < 2 {
        return None;
    }
    let others: u64 = view
        .instances
        .iter()
        .filter(|instance| instance.name != view.answered_by)
        .map(|instance| instance.connections)
        .sum();
    let count = view.instances.len() as f64;
    Some((others + own as u64) as f64 / count)
}

/// The cluster as this instance last saw it.
#[derive(Debug)]
pub struct KnownCluster {
    name: String,
    seen: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    shared: bool,
    instances: Vec<InstanceEntry>,
    /// When `instances` was read: their ages grow from there.
    read_at: Option<Instant>,
    /// The cluster's total connection count in the last [`SETTLE_VIEWS`] views.
    totals: VecDeque<u64>,
}

impl KnownCluster {
    /// The view of the instance called `name`, empty until the first refresh.
    pub fn new(name: &str) -> Self {
        Self { name: name.to_owned(), seen: Mutex::default() }
    }

    /// What `/cluster` answers now.
    pub fn report(&self) -> ClusterView {
        let seen = self.lock();
        ClusterView {
            answered_by: self.name.clone(),
            shared: seen.shared,
            instances: seen.instances.clone(),
        }
    }

    /// What `/cluster` answers: the view, with `own` (this instance's live entry) in place
    /// of its registry entry, since the view is up to a refresh old and a page that has
    /// just connected here would see itself missing from the count; and every other entry's
    /// age counted to now, not to when the view was read.
    pub fn answer(&self, own: InstanceEntry) -> ClusterView {
        let seen = self.lock();
        let since_read = seen.read_at.map_or(0, |at| at.elapsed().as_millis() as u64);
        let mut instances: Vec<InstanceEntry> = seen
            .instances
            .iter()
            .filter(|entry| entry.name != own.name)
            .map(|entry| InstanceEntry {
                refreshed_ms_ago: entry.refreshed_ms_ago + since_read,
                ..entry.clone()
            })
            .collect();
        // Before its first refresh the view may not hold this instance yet: it is live.
        instances.push(own);
        instances.sort_by(|a, b| a.name.cmp(&b.name));
        ClusterView { answered_by: self.name.clone(), shared: seen.shared, instances }
    }

    /// How many instances are live.
    pub fn instances(&self) -> usize {
        self.lock().instances.len()
    }

    /// Whether the cluster's total connection count has held still over the last
    /// [`SETTLE_VIEWS`] views, within [`SETTLE_BAND`].
    ///
    /// While clients arrive in numbers (a ramp of new ones, the clients of a lost or drained
    /// instance), an instance's own live count runs ahead of the others' entries, which are up
    /// to a refresh old, and every instance sees itself above a mean that is only behind. The
    /// agent would turn its weight down and the rebalancer would move its sockets, both for
    /// nothing: the failover benchmark once saw 3,600 of 6,000 arriving clients land on one
    /// of three instances that way, and 1,000 more moved back and forth. So both compare an
    /// instance with the cluster's mean only once the cluster has settled.
    pub fn settled(&self) -> bool {
        let seen = self.lock();
        let low = seen.totals.iter().copied().min().unwrap_or(0);
        let high = seen.totals.iter().copied().max().unwrap_or(0);
        seen.totals.len() == SETTLE_VIEWS && (high - low) as f64 <= SETTLE_BAND * high as f64
    }

    /// Takes a new view of the cluster (from the registry, or this instance alone).
    pub fn replace(&self, shared: bool, mut instances: Vec<InstanceEntry>) {
        instances.sort_by(|a, b| a.name.cmp(&b.name));
        let mut seen = self.lock();
        if seen.totals.len() == SETTLE_VIEWS {
            seen.totals.pop_front();
        }
        seen.totals.push_back(instances.iter().map(|instance| instance.connections).sum());
        seen.shared = shared;
        seen.instances = instances;
        seen.read_at = Some(Instant::now());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A serving instance's entry, just refreshed, for the tests of what reads the view.
#[cfg(test)]
pub(crate) fn test_entry(name: &str, connections: u64) -> InstanceEntry {
    InstanceEntry {
        name: name.into(),
        address: String::new(),
        connections,
        max_connections: 10,
        load: 0.1,
        health: wstime_protocol::Health::Ok,
        draining: false,
        version: "0".into(),
        started_unix_ms: 0,
        refreshed_ms_ago: 0,
        checked_ms_ago: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cluster_is_settled_once_its_total_holds_still() {
        let cluster = KnownCluster::new("a");
        let see = |a, b| cluster.replace(true, vec![test_entry("a", a), test_entry("b", b)]);
        // Clients arriving in numbers: the total grows view after view.
        for (a, b) in [(0, 0), (700, 0), (1400, 700), (2100, 1400)] {
            see(a, b);
            assert!(!cluster.settled(), "{a} + {b} while the total grows");
        }
        // Arrivals over: settled once the last SETTLE_VIEWS totals lie within the band.
        see(2100, 2000);
        assert!(!cluster.settled(), "3,500 still among the last three");
        see(2050, 2050);
        assert!(!cluster.settled(), "3,500 still among the last three");
        see(2000, 2010);
        assert!(cluster.settled(), "4,100, 4,100, 4,010");
        // A rebalancing's moves in flight (a few percent of the total) keep it settled.
        see(1900, 1950);
        assert!(cluster.settled());
    }

    #[test]
    fn the_mean_counts_this_instance_as_it_is_now() {
        let view = |shared, names: &[(&str, u64)]| ClusterView {
            answered_by: "a".into(),
            shared,
            instances: names.iter().map(|&(name, count)| test_entry(name, count)).collect(),
        };
        assert_eq!(mean(30, &view(true, &[("a", 10), ("b", 10)])), Some(20.0), "own: 30, not 10");
        assert_eq!(mean(30, &view(true, &[("a", 10)])), None, "alone");
        assert_eq!(mean(30, &view(false, &[("a", 10), ("b", 10)])), None, "no shared registry");
    }
}
