//! The Sentinel group's master silently cut (both ways, packets dropped) from the three
//! sentinels and the three instances, under load; the replica still reaches it.
//!
//! What the settings say: a sentinel judges the master down after 1 s without an answer
//! (`down-after-milliseconds 1000`), two agree (quorum 2), one is elected leader and promotes
//! the replica (docs/sessions.md measured 2.2 s for a killed master). The instances' store
//! asks the sentinels for the master at every 1 s check and at once when an operation fails
//! (500 ms limit, retried every 250 ms), so each follows the new master within about 1.75 s
//! of its election; meanwhile new sessions open in the instance's memory and every socket
//! goes on ticking from the instance's clock.
//!
//! The split-brain window is read from the old master itself, asked from its own host (the
//! cut is between hosts): the last command each instance's connection sent it (`CLIENT LIST`'s
//! `idle`), against the moment the sentinels named the new master.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use wstime_cluster::lab::Direction;

use super::{all_connected, counts_went_on, ticks_chart, time_until, took};
use crate::{
    clients::{self, Riders},
    deployment::{Deployment, Store, INSTANCES},
    outcome::Check,
    Outcome, Size,
};

pub const NAME: &str = "Sentinel master silently cut";

const PROMISE: &str = "Under load, the master cut from the sentinels and the instances: the \
    sentinels promote the replica within 5 s of the cut (1 s down-after, the quorum's vote, \
    a leader's promotion); every instance follows it within 3 s of the election (the \
    store's 1 s check, 500 ms operation limit and 250 ms retry, and the probe's own 1.1 s): \
    a session opened on any instance resumes on the next with its count; no instance's \
    command reaches the old master after the election (the split-brain window, read from \
    the old master, at its 1 s resolution); no client goes 5 s without a tick; no count \
    ever goes backwards.";

const ELECTED_LIMIT: Duration = Duration::from_secs(5);
const FOLLOW_LIMIT: Duration = Duration::from_secs(3);

pub fn run(size: Size) -> anyhow::Result<Outcome> {
    let clients = size.pick(60, 3000);
    let cut_for = size.pick(Duration::from_secs(15), Duration::from_secs(30));
    let before = Duration::from_secs(4);
    let deployment = Deployment::start_sentinel(&[])?;
    let Store::Sentinel(group) = &deployment.store else {
        anyhow::bail!("the deployment started without its Sentinel group");
    };
    let (master_host, replica_host) = (&deployment.redis_host, &deployment.sentinel_hosts[0]);
    let riders = Riders::start(&deployment, &deployment.url(), clients, "sc", before + cut_for)?;
    std::thread::sleep(before);

    let peers = deployment.sentinel_hosts[1..].iter().chain(&deployment.nodes);
    let cuts =
        peers.map(|peer| master_host.cut(peer, Direction::Both)).collect::<Result<Vec<_>, _>>()?;
    let (cut_at, cut_started) = (riders.now(), Instant::now());
    let replica_ip = replica_host.address().to_string();
    let elected = time_until(cut_for, || {
        group.sentinels.iter().any(|s| s.master().is_ok_and(|(host, _)| host == replica_ip))
    });
    let elected_at = Instant::now();
    let mut probes = 0;
    let followed = elected.and_then(|_| {
        time_until(cut_for, || {
            probes += 1;
            sessions_shared(&deployment, &format!("sc-shared-{probes}"))
        })
    });
    std::thread::sleep(cut_for.saturating_sub(cut_started.elapsed()));
    let talked = last_commands(&deployment, &group.servers[0])?;
    let asked_at = Instant::now();
    let healed_at = riders.now();
    let result = riders.finish()?;
    drop(cuts);

    // The last command each instance sent the old master, in seconds after the election
    // (negative: before it).
    let after_election: Vec<f64> = talked
        .values()
        .map(|idle| {
            let since_election = asked_at.duration_since(elected_at).as_secs_f64();
            since_election - idle.as_secs_f64()
        })
        .collect();
    let latest = after_election.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let checks = [
        all_connected(&result, "clients"),
        Check::new(
            elected.is_some_and(|t| t <= ELECTED_LIMIT),
            took("the replica promoted", elected, cut_for),
        ),
        Check::new(
            followed.is_some_and(|t| t <= FOLLOW_LIMIT),
            took("every instance sharing sessions through it", followed, cut_for)
                + " after the election",
        ),
        Check::new(
            talked.len() == INSTANCES && latest <= 1.0,
            format!(
                "the instances' last commands reached the old master {} before the election \
                 ({} of {INSTANCES} instances had a connection to it)",
                after_election
                    .iter()
                    .map(|s| format!("{:.0} s", -s))
                    .collect::<Vec<_>>()
                    .join(", "),
                talked.len(),
            ),
        ),
        Check::new(
            result.affected == 0,
            format!("{} of {clients} clients went 5 s without a tick", result.affected),
        ),
        counts_went_on(&result),
    ];
    let chart = ticks_chart(
        "sentinel-cut-ticks",
        "Ticks per second, the Sentinel master cut",
        &result,
        (cut_at, healed_at),
    );
    Ok(Outcome::from_checks(NAME, PROMISE, &checks, vec![chart]))
}

/// Whether a session opened on each instance resumes, with its count, on the next one: then
/// every instance reaches the same master.
fn sessions_shared(deployment: &Deployment, id: &str) -> bool {
    let ids: Vec<String> = (0..INSTANCES).map(|n| format!("{id}-{n}")).collect();
    let first: Vec<_> = (0..INSTANCES)
        .map(|n| clients::first_count(&deployment.clients, deployment.instance(n), &ids[n]))
        .collect();
    // Past a second, so a resumed count is larger than the first.
    std::thread::sleep(Duration::from_millis(1100));
    (0..INSTANCES).all(|n| {
        let next = deployment.instance((n + 1) % INSTANCES);
        let second = clients::first_count(&deployment.clients, next, &ids[n]);
        matches!((&first[n], second), (Ok(first), Ok(second)) if second > *first)
    })
}

/// How long ago each instance's most recent command reached the Redis server `old` (by the
/// instance's address), from `CLIENT LIST`, asked from the server's own host.
fn last_commands(
    deployment: &Deployment,
    old: &wstime_cluster::Redis,
) -> anyhow::Result<BTreeMap<String, Duration>> {
    let listed: String = old.ask(redis::cmd("CLIENT").arg("LIST"))?;
    let nodes: Vec<String> = deployment.nodes.iter().map(|n| n.address().to_string()).collect();
    let mut idle_by_node = BTreeMap::new();
    for line in listed.lines() {
        let field = |name: &str| {
            line.split_whitespace().find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
        };
        let (Some(addr), Some(idle)) = (field("addr"), field("idle")) else { continue };
        let ip = addr.rsplit_once(':').map_or(addr, |(ip, _)| ip);
        let Ok(idle) = idle.parse::<u64>() else { continue };
        if nodes.iter().any(|node| node == ip) {
            let idle = Duration::from_secs(idle);
            idle_by_node
                .entry(ip.to_owned())
                .and_modify(|least: &mut Duration| *least = (*least).min(idle))
                .or_insert(idle);
        }
    }
    Ok(idle_by_node)
}
