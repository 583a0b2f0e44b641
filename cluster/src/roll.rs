//! A rolling restart, as an operator runs one: every instance drained and replaced in turn,
//! the next only once the last replacement is up in HAProxy, with how many clients moved and
//! how long the longest of them was away.
//!
//! Every client of a drained instance must move once: that is the floor, one move per
//! client. A client that moves onto an instance drained later moves again, so where the
//! drained clients land decides the count. With a spare slot (`--standby 1`), the
//! replacement starts *before* its old instance drains, as Kubernetes' `maxSurge: 1` does.
//! Without one, each instance is drained and then restarted in its own slot
//! (`maxUnavailable: 1`), and the first one's clients can only go to instances still
//! waiting their turn. Either way, once the first replacement is up, the instances still
//! waiting are cordoned in HAProxy (their agent check off, weight 0: no new client, and
//! their own untouched), so every later client lands on a replaced instance and moves no
//! more; a replacement whose server was cordoned gets its agent check back, and so do the
//! last servers cordoned once the roll is over. A server is found by its instance's
//! address, not its name: with DNS discovery (`deploy/haproxy-dns.cfg`) a new instance's
//! record may be taken by any free server.
//!
//! The moves are counted by the instances themselves: each move is a resumed session on the
//! instance it lands on (`wstime_sessions_opened_total{kind="resumed"}`), and how long the
//! client was away is in `wstime_session_away_seconds`. Every running instance's `/metrics`
//! is read twice a second, so an instance drained later has been read before it went.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, MutexGuard,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};

use crate::{cluster::node_name, haproxy::Server, http, Cluster};

/// How often every instance's metrics are read during a roll.
const READ_EVERY: Duration = Duration::from_millis(500);
/// How long a new instance may take to be up in HAProxy.
const UP_LIMIT: Duration = Duration::from_secs(30);
/// The roll is over once no client has moved for this long after the last drain and the
/// instances hold about the same: the rebalancing that follows a roll (the replacements
/// started earlier hold more than their share) moves clients too, and they are the roll's
/// moves. Longer than the rebalancer's wait for a settled cluster (its total held still
/// over three registry views, 6 s at the default refresh), so a quiet cluster is one the
/// rebalancer has seen too.
const QUIET: Duration = Duration::from_secs(8);
/// The rebalancer's defaults (`REBALANCE_TOLERANCE` 0.05, and its slack of 2 sockets): it
/// moves sockets from an instance holding more than the larger of the mean × 1.05 and the
/// mean + 2, so a cluster whose busiest instance holds no more is balanced.
const TOLERANCE: f64 = 0.05;
const SLACK: f64 = 2.0;
/// Once no client has moved for this long, the roll is over even if the cluster is not
/// balanced (rebalancing off, or a wider tolerance than the default).
const QUIET_UNBALANCED: Duration = Duration::from_secs(20);
/// How long to wait for a reply from an instance's `/metrics`: longer than [`READ_EVERY`],
/// so a busy instance is read late rather than not at all.
const READ_LIMIT: Duration = Duration::from_secs(2);
/// How long every running instance may take to answer the first read.
const FIRST_READ_LIMIT: Duration = Duration::from_secs(10);
/// How long, after the last drain, the cluster may take to be quiet.
const QUIET_LIMIT: Duration = Duration::from_secs(120);

/// What a roll did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RollReport {
    /// Instances drained and replaced.
    pub instances: usize,
    /// Whether each replacement started before its old instance drained.
    pub surge: bool,
    /// Whether the instances waiting their turn were cordoned.
    pub cordon: bool,
    /// Clients connected when the roll began.
    pub clients: u64,
    /// Sessions resumed on another instance while it ran: each one a client moved.
    pub moves: u64,
    /// Moves per client connected at the start (1.0 is the floor).
    pub moves_per_client: f64,
    /// The longest a moved client was away, as the upper bound of its histogram bucket
    /// (seconds); `None` when no client moved.
    pub longest_away_secs: Option<f64>,
}

/// Drains and replaces every running instance of `cluster` in turn, telling `progress`
/// what it does. With `cordon`, the instances waiting their turn take no new client once
/// the first replacement is up (`false` measures what a plain rolling update does).
pub fn roll(
    cluster: &Arc<Mutex<Cluster>>,
    cordon: bool,
    progress: impl Fn(&str),
) -> anyhow::Result<RollReport> {
    let (originals, spare) = {
        let mut cluster = lock(cluster);
        if cluster.balancer().is_none() {
            bail!("a roll waits for HAProxy to see each replacement: start the cluster with it");
        }
        let infos = cluster.instances();
        let running: Vec<usize> = infos.iter().filter(|i| i.running).map(|i| i.index).collect();
        let spare = infos.iter().find(|i| !i.running).map(|i| i.index);
        (running, spare)
    };
    if originals.is_empty() {
        bail!("no instance is running");
    }
    let reader = MetricsReader::start(Arc::clone(cluster))?;
    let clients = reader.connections_at_start;
    // HAProxy's names of the cordoned servers: a server is found by its instance's address,
    // as with DNS discovery any server may take any instance's record.
    let mut cordoned = Vec::new();
    let replaced = replace_each(cluster, &originals, spare, cordon, &mut cordoned, &progress);
    // The last instances drained were cordoned (and, after an error, any still waiting):
    // their servers get their agent check and weight back, or the next instance in one of
    // them would get no client.
    let given_back = cordoned.iter().try_for_each(|server| uncordon(cluster, server));
    replaced?;
    given_back?;
    progress(&format!(
        "waiting until the instances are balanced and no client has moved for {} s",
        QUIET.as_secs()
    ));
    reader.wait_quiet();
    let (moves, longest_away_secs) = reader.finish();
    Ok(RollReport {
        instances: originals.len(),
        surge: spare.is_some(),
        cordon,
        clients,
        moves,
        moves_per_client: if clients == 0 { 0.0 } else { moves as f64 / clients as f64 },
        longest_away_secs,
    })
}

/// The roll's turns: each of `originals` drained and replaced, in the `spare` slot first
/// when there is one, the others cordoned (into `cordoned`) once the first is up.
fn replace_each(
    cluster: &Mutex<Cluster>,
    originals: &[usize],
    mut spare: Option<usize>,
    cordon_waiting: bool,
    cordoned: &mut Vec<String>,
    progress: &impl Fn(&str),
) -> anyhow::Result<()> {
    let waiting = &originals[1..];
    let cordon_once = |cordoned: &mut Vec<String>| -> anyhow::Result<()> {
        if cordon_waiting && !waiting.is_empty() {
            progress(&format!("cordoning {} until their turn", names(waiting)));
            cordon(cluster, cordoned, waiting)?;
        }
        Ok(())
    };
    for (turn, &old) in originals.iter().enumerate() {
        let step = format!("{}/{}", turn + 1, originals.len());
        if let Some(slot) = spare {
            let (new, drained) = (node_name(slot), node_name(old));
            progress(&format!("{step}: starting {new} before draining {drained}"));
            lock(cluster).restart(slot)?;
            wait_up(cluster, cordoned, slot)?;
            spare = Some(old);
            if turn == 0 {
                cordon_once(cordoned)?;
            }
        }
        progress(&format!("{step}: draining {}", node_name(old)));
        lock(cluster).signal(old, "TERM")?;
        Cluster::wait_for_exit(cluster, old)?;
        if spare.is_none() {
            progress(&format!("{step}: restarting {}", node_name(old)));
            lock(cluster).restart(old)?;
            wait_up(cluster, cordoned, old)?;
            if turn == 0 {
                cordon_once(cordoned)?;
            }
        }
    }
    Ok(())
}

fn names(indices: &[usize]) -> String {
    indices.iter().map(|&index| node_name(index)).collect::<Vec<_>>().join(", ")
}

/// HAProxy's server for instance `index` now: the one holding its address (`None` while
/// none does, as before its DNS record is resolved).
fn server_of(cluster: &Mutex<Cluster>, index: usize) -> anyhow::Result<Option<Server>> {
    let mut cluster = lock(cluster);
    let address = cluster.instances().get(index).context("no such instance")?.address();
    let servers = cluster.balancer().context("HAProxy")?.servers()?;
    Ok(servers.into_iter().find(|server| server.address == Some(address)))
}

/// Has HAProxy send no new client to `indices` (their servers' agent check off, so it
/// cannot set the weight back, and weight 0), keeping their clients; remembers the servers
/// in `cordoned`.
fn cordon(
    cluster: &Mutex<Cluster>,
    cordoned: &mut Vec<String>,
    indices: &[usize],
) -> anyhow::Result<()> {
    for &index in indices {
        let server = server_of(cluster, index)?
            .with_context(|| format!("HAProxy has no server for {}", node_name(index)))?;
        let cluster = lock(cluster);
        let haproxy = cluster.balancer().context("HAProxy")?;
        haproxy.runtime(&format!("disable agent wstime/{}", server.name))?;
        haproxy.runtime(&format!("set weight wstime/{} 0", server.name))?;
        cordoned.push(server.name);
    }
    Ok(())
}

/// Gives cordoned `server` its agent check and a full weight back.
fn uncordon(cluster: &Mutex<Cluster>, server: &str) -> anyhow::Result<()> {
    let cluster = lock(cluster);
    let haproxy = cluster.balancer().context("HAProxy")?;
    haproxy.runtime(&format!("set weight wstime/{server} 100"))?;
    haproxy.runtime(&format!("enable agent wstime/{server}"))?;
    Ok(())
}

fn lock(cluster: &Mutex<Cluster>) -> MutexGuard<'_, Cluster> {
    cluster.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits until HAProxy says the new process of instance `index` is up, uncordoning the
/// server that took its address if it was cordoned.
fn wait_up(
    cluster: &Mutex<Cluster>,
    cordoned: &mut Vec<String>,
    index: usize,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + UP_LIMIT;
    loop {
        if let Some(server) = server_of(cluster, index)? {
            if let Some(at) = cordoned.iter().position(|name| *name == server.name) {
                uncordon(cluster, &cordoned.swap_remove(at))?;
            } else if server.status == "UP" {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("HAProxy did not see {} up within {UP_LIMIT:?}", node_name(index));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Reads every running instance's metrics in the background for the length of a roll.
struct MetricsReader {
    /// Tells the reading thread to stop.
    stop: Arc<AtomicBool>,
    /// The reading thread, joined when the reader goes.
    thread: Option<std::thread::JoinHandle<()>>,
    /// Each process's counts as last read, by process id (a process that has exited keeps
    /// its last).
    seen: Arc<Mutex<HashMap<u32, Counts>>>,
    /// The running processes' counts as last read with every one of them answering.
    latest: Arc<Mutex<HashMap<u32, Counts>>>,
    /// Each process's counts when the roll began (new processes start from nothing).
    before: HashMap<u32, Counts>,
    /// The clients connected when the roll began.
    connections_at_start: u64,
}

/// What one process's metrics said last.
#[derive(Debug, Clone, Default, PartialEq)]
struct Counts {
    connections: u64,
    resumed: u64,
    /// `wstime_session_away_seconds_bucket`: (upper bound, cumulative count).
    away: Vec<(f64, u64)>,
}

impl MetricsReader {
    /// Reads every running instance once (each must answer: the moves are counted from
    /// there), then keeps reading in the background.
    fn start(cluster: Arc<Mutex<Cluster>>) -> anyhow::Result<Self> {
        let deadline = Instant::now() + FIRST_READ_LIMIT;
        let before = loop {
            match read_all(&cluster) {
                (counts, true) => break counts,
                _ if Instant::now() > deadline => {
                    bail!("not every instance answered /metrics within {FIRST_READ_LIMIT:?}")
                }
                _ => std::thread::sleep(READ_EVERY),
            }
        };
        let connections_at_start = before.values().map(|counts| counts.connections).sum();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(before.clone()));
        let latest = Arc::new(Mutex::new(before.clone()));
        let thread = {
            let (stop, seen, latest) = (Arc::clone(&stop), Arc::clone(&seen), Arc::clone(&latest));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let (read, everyone) = read_all(&cluster);
                    seen.lock().unwrap_or_else(|e| e.into_inner()).extend(read.clone());
                    if everyone {
                        *latest.lock().unwrap_or_else(|e| e.into_inner()) = read;
                    }
                    std::thread::sleep(READ_EVERY);
                }
            })
        };
        Ok(Self { stop, thread: Some(thread), seen, latest, before, connections_at_start })
    }

    /// Every move so far.
    fn moves(&self) -> u64 {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.iter()
            .map(|(pid, counts)| {
                let earlier = self.before.get(pid).map_or(0, |counts| counts.resumed);
                counts.resumed.saturating_sub(earlier)
            })
            .sum()
    }

    /// Whether the busiest running instance holds no more than the rebalancer lets it.
    fn balanced(&self) -> bool {
        let latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        balanced(latest.values().map(|counts| counts.connections))
    }

    /// Waits until no client has moved for [`QUIET`] and the cluster is balanced, or for
    /// [`QUIET_UNBALANCED`] (at most [`QUIET_LIMIT`] in all).
    fn wait_quiet(&self) {
        let deadline = Instant::now() + QUIET_LIMIT;
        let (mut moves, mut since) = (self.moves(), Instant::now());
        loop {
            let quiet = since.elapsed();
            if (quiet >= QUIET && self.balanced()) || quiet >= QUIET_UNBALANCED {
                return;
            }
            if Instant::now() >= deadline {
                return;
            }
            std::thread::sleep(READ_EVERY);
            let now = self.moves();
            if now != moves {
                (moves, since) = (now, Instant::now());
            }
        }
    }

    /// Stops reading; returns the moves and the longest time away they show.
    fn finish(mut self) -> (u64, Option<f64>) {
        self.stop_reading();
        let moves = self.moves();
        let last = std::mem::take(&mut *self.seen.lock().unwrap_or_else(|e| e.into_inner()));
        let mut away: Vec<(f64, u64)> = Vec::new();
        for (pid, counts) in &last {
            let earlier = self.before.get(pid).cloned().unwrap_or_default();
            for (index, &(bound, count)) in counts.away.iter().enumerate() {
                let was = earlier.away.get(index).map_or(0, |&(_, count)| count);
                match away.get_mut(index) {
                    Some((_, total)) => *total += count.saturating_sub(was),
                    None => away.push((bound, count.saturating_sub(was))),
                }
            }
        }
        // Buckets are cumulative: the longest is within the first bound that holds them all.
        let everyone = away.last().map_or(0, |&(_, count)| count);
        let longest = (everyone > 0)
            .then(|| away.iter().find(|&&(_, count)| count == everyone).map(|&(bound, _)| bound))
            .flatten();
        (moves, longest)
    }

    fn stop_reading(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A roll that fails part way stops reading too.
impl Drop for MetricsReader {
    fn drop(&mut self) {
        self.stop_reading();
    }
}

/// Whether the largest of `connections` is within the rebalancer's default ceiling: the
/// larger of their mean × (1 + [`TOLERANCE`]) and their mean + [`SLACK`], rounded up.
fn balanced(connections: impl Iterator<Item = u64>) -> bool {
    let (mut total, mut count, mut busiest) = (0, 0, 0);
    for each in connections {
        (total, count, busiest) = (total + each, count + 1, busiest.max(each));
    }
    if count == 0 {
        return true;
    }
    let mean = total as f64 / count as f64;
    busiest as f64 <= (mean * (1.0 + TOLERANCE)).max(mean + SLACK).ceil()
}

/// Every running instance's counts, by process id, and whether every one answered.
fn read_all(cluster: &Mutex<Cluster>) -> (HashMap<u32, Counts>, bool) {
    let running: Vec<(u32, SocketAddr)> = lock(cluster)
        .instances()
        .into_iter()
        .filter_map(|info| Some((info.pid?, info.address())))
        .collect();
    let read: HashMap<u32, Counts> = running
        .iter()
        .filter_map(|&(pid, address)| {
            let metrics =
                http::request_at("GET", address, "/metrics", "text/plain", READ_LIMIT).ok()?;
            Some((pid, parse(&metrics.body)))
        })
        .collect();
    let everyone = read.len() == running.len();
    (read, everyone)
}

/// The counts in an OpenMetrics exposition.
fn parse(text: &str) -> Counts {
    let mut counts = Counts::default();
    for line in text.lines() {
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let Ok(value) = value.parse::<f64>() else { continue };
        if series == "wstime_connections" {
            counts.connections = value as u64;
        } else if series == "wstime_sessions_opened_total{kind=\"resumed\"}" {
            counts.resumed = value as u64;
        } else if let Some(bound) = series
            .strip_prefix("wstime_session_away_seconds_bucket{le=\"")
            .and_then(|rest| rest.strip_suffix("\"}"))
        {
            let bound = if bound == "+Inf" { f64::INFINITY } else { bound.parse().unwrap_or(0.0) };
            counts.away.push((bound, value as u64));
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exposition_gives_the_counts() {
        let text = "wstime_connections 12\n\
            wstime_sessions_opened_total{kind=\"new\"} 40\n\
            wstime_sessions_opened_total{kind=\"resumed\"} 7\n\
            wstime_session_away_seconds_bucket{le=\"0.5\"} 3\n\
            wstime_session_away_seconds_bucket{le=\"1.0\"} 6\n\
            wstime_session_away_seconds_bucket{le=\"+Inf\"} 7\n";
        let counts = parse(text);
        assert_eq!((counts.connections, counts.resumed), (12, 7));
        assert_eq!(counts.away, [(0.5, 3), (1.0, 6), (f64::INFINITY, 7)]);
    }

    #[test]
    fn a_cluster_is_balanced_when_its_busiest_instance_is_near_the_mean() {
        assert!(balanced([100, 100, 105].into_iter()), "the mean × 1.05 rounded up");
        assert!(!balanced([97, 97, 106].into_iter()), "106 is above 100 × 1.05");
        assert!(balanced([10, 10, 12].into_iter()), "a small cluster has a slack of 2");
        assert!(!balanced([80, 100, 120].into_iter()), "120 is 20% above a mean of 100");
        assert!(!balanced([0, 150, 150].into_iter()), "a new instance holds nothing yet");
        assert!(balanced(std::iter::empty()));
    }
}
