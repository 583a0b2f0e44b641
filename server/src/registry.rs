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

use std::{future::Future, pin::pin, sync::Arc, time::Duration};

use redis::Script;
use tokio::time::Instant;
use wstime_protocol::InstanceEntry;

use crate::{
    cluster::{KnownCluster, REFRESH},
    instance::Instance,
    lifecycle::Stage,
    metrics::{Metrics, StoreOperation},
    redis::{
        access::{Probe, PROBE_TTL_MS},
        Redis,
    },
};

/// How long an entry outlives its last refresh: three missed refreshes.
pub const ENTRY_TTL: Duration = Duration::from_secs(6);

/// The hash holding every instance's entry (the braces: one slot in a Redis Cluster).
const KEY: &str = "wstime:{cluster}:instances";

/// Writes this instance's entry and returns Redis's time (ms) then every live value.
/// `KEYS[1]`: the hash. `ARGV[1]`: the instance's name; `ARGV[2]`: its entry (JSON);
/// `ARGV[3]`: the entry's time to live in ms. Each value is `<expiry in ms on Redis's clock>
/// <entry>`; expired ones are removed.
const REGISTER_SCRIPT: &str = r"
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

/// What the registry does in Redis, for the start-up access check: its script (whose
/// removal of expired entries the session script's fields exercise, when the check runs it
/// after the store's probes) and the removal of its entry at a clean stop.
pub fn access_probes() -> Vec<Probe> {
    const FIELD: &str = "access-check";
    let script = Script::new(REGISTER_SCRIPT);
    vec![
        Probe::Script { script, args: vec![FIELD.into(), "{}".into(), PROBE_TTL_MS.into()] },
        Probe::Command { name: "HDEL", args: vec![FIELD.into()] },
    ]
}

/// Where the registry's refreshes go, and what they are counted in.
pub struct Registry {
    /// This instance, whose entry is written.
    pub instance: Arc<Instance>,
    /// The view each refresh replaces.
    pub cluster: Arc<KnownCluster>,
    /// The registry's Redis; without one the cluster is this instance alone.
    pub redis: Option<Arc<Redis>>,
    /// Where each refresh's time and failures are counted.
    pub metrics: Arc<Metrics>,
}

/// Keeps this instance in the registry and the view fresh until `stop`: every
/// [`REFRESH`], and at once when the drain begins. At `stop` the entry is removed (within
/// the Redis client's operation limit), and only then does this return: the caller awaits
/// it on the way out, so a cleanly stopped instance leaves no entry behind.
pub async fn maintain(registry: Registry, stop: impl Future<Output = ()>) {
    let mut stop = pin!(stop);
    let mut draining = pin!(registry.instance.lifecycle.reached(Stage::Draining));
    let mut drain_seen = false;
    let script = Script::new(REGISTER_SCRIPT);
    loop {
        refresh(&registry, &script).await;
        tokio::select! {
            () = &mut stop => break,
            () = tokio::time::sleep(REFRESH) => {}
            () = &mut draining, if !drain_seen => drain_seen = true,
        }
    }
    if let Some(redis) = &registry.redis {
        let remove = redis::cmd("HDEL").arg(KEY).arg(&*registry.instance.name).clone();
        let _: Result<i64, _> = redis.query(&remove).await;
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

/// Writes this instance's entry (with Redis) and takes the cluster's back.
async fn refresh(registry: &Registry, script: &Script) {
    let Registry { instance, cluster, redis, metrics } = registry;
    let own = instance.entry();
    let Some(redis) = redis else {
        cluster.replace(false, vec![own]);
        return;
    };
    let entry = serde_json::to_string(&own).expect("an entry serialises");
    let started = Instant::now();
    let ttl_ms = ENTRY_TTL.as_millis().to_string();
    let written: Result<Vec<String>, _> =
        redis.eval(script, KEY, &[own.name.as_str(), &entry, &ttl_ms]).await;
    metrics.store_operation(StoreOperation::REGISTER, started.elapsed());
    match written {
        Ok(values) => cluster.replace(true, entries(&values)),
        // Redis is down: the store says so; the cluster is this instance until it is back.
        Err(_) => {
            metrics.store_failed(StoreOperation::REGISTER);
            cluster.replace(false, vec![own]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{is_stale, test_entry};

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
