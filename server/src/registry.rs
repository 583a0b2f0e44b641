//! The cluster registry: which instances exist right now, for `GET /cluster`, the page's
//! cluster panel and `wstime-cluster status`.
//!
//! With Redis, every instance keeps an entry in one Redis hash (name, advertised address,
//! connections, load, health, draining, version, start) and refreshes it every
//! [`REFRESH`], each entry carrying its own expiry: an instance that dies stops refreshing
//! and its entry is dropped [`ENTRY_TTL`] later, by whichever instance writes next; a
//! draining one says so at once; one that stops cleanly removes its entry. The same write
//! reads every live entry back, so each instance holds the whole cluster as of its last
//! refresh and answers `/cluster` from that, the same answer everywhere, without a Redis
//! round trip per request. One hash, one key: it works the same in a Redis Cluster.
//! Without Redis (or while it is down), the cluster is the instance itself.

use std::{
    collections::VecDeque,
    future::Future,
    pin::pin,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use redis::Script;
use tokio::time::Instant;
use wstime_protocol::{ClusterView, InstanceEntry};

use crate::{
    lifecycle::Stage, metrics::StoreOperation, session::redis::RedisStore, state::AppState,
};

/// How often an instance refreshes its entry.
pub const REFRESH: Duration = Duration::from_secs(2);

/// How long an entry outlives its last refresh: three missed refreshes.
pub const ENTRY_TTL: Duration = Duration::from_secs(6);

/// Views in a row whose totals must agree before the cluster counts as settled: three
/// refreshes span two, so every live instance has refreshed its entry among them.
const SETTLE_VIEWS: usize = 3;

/// How far the cluster's total may move among those views and still be settled: more than
/// rebalancing takes out of it in flight (at its default pace 5% of an instance's sockets a
/// second, away for about a second each), less than a ramp of arriving clients or the
/// clients of a lost instance.
const SETTLE_BAND: f64 = 0.1;

/// The hash holding every instance's entry (the braces: one slot in a Redis Cluster).
const KEY: &str = "wstime:{cluster}:instances";

/// Writes this instance's entry and returns Redis's time (ms) then every live value.
/// `KEYS[1]`: the hash. `ARGV[1]`: the instance's name; `ARGV[2]`: its entry (JSON);
/// `ARGV[3]`: the entry's time to live in ms. Each value is `<expiry in ms on Redis's clock>
/// <entry>`; expired ones are removed. The Redis access check runs it once at start-up, so
/// an ACL user without a command it calls is found then.
pub const REGISTER_SCRIPT: &str = r"
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local ttl = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], (now_ms + ttl) .. ' ' .. ARGV[2])
local live = {tostring(now_ms)}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local expires = string.match(all[i + 1], '^(%d+) ')
  if expires == nil or tonumber(expires) < now_ms then
    redis.call('HDEL', KEYS[1], all[i])
  else
    table.insert(live, all[i + 1])
  end
end
redis.call('PEXPIRE', KEYS[1], ttl * 10)
return live
";

/// Whether `entry` has missed a refresh: its instance has likely died, its figures are old.
pub fn is_stale(entry: &InstanceEntry) -> bool {
    entry.refreshed_ms_ago > (REFRESH * 5 / 4).as_millis() as u64
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
    pub(crate) fn replace(&self, shared: bool, mut instances: Vec<InstanceEntry>) {
        instances.sort_by(|a, b| a.name.cmp(&b.name));
        let mut seen = self.lock();
        if seen.totals.len() == SETTLE_VIEWS {
            seen.totals.pop_front();
        }
        seen.totals.push_back(instances.iter().map(|instance| instance.connections).sum());
        seen.shared = shared;
        seen.instances = instances;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// This instance's entry now.
pub fn own_entry(state: &AppState) -> InstanceEntry {
    let connections = state.live_connections();
    let started = SystemTime::now() - state.started.elapsed();
    InstanceEntry {
        name: state.name.to_string(),
        address: state.address.to_string(),
        connections: connections as u64,
        max_connections: state.capacity.limits.max_connections,
        load: state.capacity.load(connections),
        health: state.health().into(),
        draining: state.lifecycle.is_draining(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        started_unix_ms: started
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as u64),
        refreshed_ms_ago: 0,
    }
}

/// Keeps this instance in the registry and the view fresh until `stop`: every
/// [`REFRESH`], and at once when the drain begins. At `stop` the entry is removed.
pub async fn maintain(
    state: Arc<AppState>,
    redis: Option<Arc<RedisStore>>,
    stop: impl Future<Output = ()>,
) {
    let mut stop = pin!(stop);
    let mut draining = pin!(state.lifecycle.reached(Stage::Draining));
    let mut drain_seen = false;
    let script = Script::new(REGISTER_SCRIPT);
    loop {
        refresh(&state, redis.as_deref(), &script).await;
        tokio::select! {
            () = &mut stop => break,
            () = tokio::time::sleep(REFRESH) => {}
            () = &mut draining, if !drain_seen => drain_seen = true,
        }
    }
    if let Some(redis) = redis {
        let _ = redis.remove_field(KEY, &state.name).await;
    }
}

/// The entries in what the register script returned: Redis's time, then each live value.
fn entries(values: &[String]) -> Vec<InstanceEntry> {
    let Some((now, values)) = values.split_first() else { return Vec::new() };
    let now: u64 = now.parse().unwrap_or(0);
    let ttl = ENTRY_TTL.as_millis() as u64;
    values
        .iter()
        .filter_map(|value| {
            let (expires, json) = value.split_once(' ')?;
            let refreshed = expires.parse::<u64>().ok()?.saturating_sub(ttl);
            let entry: InstanceEntry = serde_json::from_str(json).ok()?;
            Some(InstanceEntry { refreshed_ms_ago: now.saturating_sub(refreshed), ..entry })
        })
        .collect()
}

/// A serving instance's entry, just refreshed, for the tests of what reads the registry.
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
    }
}

/// Writes this instance's entry (with Redis) and takes the cluster's back.
async fn refresh(state: &AppState, redis: Option<&RedisStore>, script: &Script) {
    let own = own_entry(state);
    let Some(redis) = redis else {
        state.cluster.replace(false, vec![own]);
        return;
    };
    let entry = serde_json::to_string(&own).expect("an entry serialises");
    let started = Instant::now();
    let ttl_ms = ENTRY_TTL.as_millis().to_string();
    let written: Result<Vec<String>, _> =
        redis.eval(script, KEY, &[own.name.as_str(), &entry, &ttl_ms]).await;
    state.metrics.store_operation(StoreOperation::REGISTER, started.elapsed());
    match written {
        Ok(values) => state.cluster.replace(true, entries(&values)),
        // Redis is down: the store says so; the cluster is this instance until it is back.
        Err(_) => {
            state.metrics.store_failed(StoreOperation::REGISTER);
            state.cluster.replace(false, vec![own]);
        }
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
    fn entries_say_how_long_ago_each_instance_refreshed() {
        let entry = |name: &str| serde_json::to_string(&test_entry(name, 1)).unwrap();
        // Redis's time is 100,000 ms; one entry refreshed just now, one 4 s ago.
        let values = [
            "100000".to_owned(),
            format!("106000 {}", entry("fresh")),
            format!("102000 {}", entry("dead")),
            "not an entry".to_owned(),
        ];
        let read = entries(&values);
        let ages: Vec<_> =
            read.iter().map(|e| (e.name.as_str(), e.refreshed_ms_ago, is_stale(e))).collect();
        assert_eq!(ages, [("fresh", 0, false), ("dead", 4000, true)]);
    }
}
