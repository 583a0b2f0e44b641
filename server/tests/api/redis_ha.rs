//! Sessions in a Redis that is more than one process: a Sentinel group that loses its master
//! under load and promotes the replica, and a Redis Cluster that spreads sessions over its
//! masters and loses one; two real instances share each, with real Redis processes.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use wstime_cluster::{redis::ask, sentinel::MASTER_NAME, RedisCluster, SentinelGroup};

use crate::helpers::{eventually, Client, TestServer};

/// How long a Sentinel failover may take before the test gives up on it. The group judges
/// a master down after one second; election and promotion take a few more.
const FAILOVER_LIMIT: Duration = Duration::from_secs(30);
/// Between two probes of whether a session resumes.
const PROBE_INTERVAL: Duration = Duration::from_millis(200);
/// The longest wait for a tick that still counts as ticking once a second.
const TICK_GAP_LIMIT: Duration = Duration::from_millis(1500);

fn instance(redis_url: &str, name: &str) -> TestServer {
    TestServer::builder().env("REDIS_URL", redis_url).env("SERVER_NAME", name).start()
}

/// The count of the first tick a connection with `id` gets from `server`.
async fn first_count(server: &TestServer, id: &str) -> u64 {
    server.connect(&format!("/?id={id}")).await.next_tick().await.1
}

/// What a client that kept ticking in the background saw.
#[derive(Debug)]
struct Seen {
    last: u64,
    ticks: usize,
    longest_gap: Duration,
}

/// A client ticking in the background until `stop`, checking each tick says one more.
struct Ticking {
    id: String,
    stop: CancellationToken,
    task: actix_web::rt::task::JoinHandle<Seen>,
}

impl Ticking {
    async fn start(server: &TestServer, id: String) -> Self {
        let mut client: Client = server.connect(&format!("/?id={id}")).await;
        let (_, first) = client.next_tick().await;
        let stop = CancellationToken::new();
        let task = actix_web::rt::spawn({
            let stop = stop.clone();
            async move {
                let mut seen = Seen { last: first, ticks: 1, longest_gap: Duration::ZERO };
                let mut last_at = Instant::now();
                loop {
                    let (_, count) = tokio::select! {
                        () = stop.cancelled() => return seen,
                        tick = client.next_tick() => tick,
                    };
                    assert_eq!(count, seen.last + 1, "ticks go up by one");
                    seen.longest_gap = seen.longest_gap.max(last_at.elapsed());
                    last_at = Instant::now();
                    seen.last = count;
                    seen.ticks += 1;
                }
            }
        });
        Self { id, stop, task }
    }

    /// Stops the client (closing its socket) and returns what it saw.
    async fn finish(self) -> (String, Seen) {
        self.stop.cancel();
        (self.id, self.task.await.expect("the ticking client ran to its end"))
    }
}

/// Whether the instance reports its store as reachable.
async fn store_reachable(server: &TestServer) -> bool {
    server.health().await["store"]["reachable"] == true
}

#[actix_web::test]
async fn a_sentinel_failover_under_load_keeps_ticks_going_and_sessions_resuming() {
    let mut group = SentinelGroup::start(false).expect("start a Sentinel group");
    let url = group.url();
    let a = instance(&url, "sentinel-a");
    let b = instance(&url, "sentinel-b");
    assert_eq!(a.health().await["store"]["kind"], "redis-sentinel");

    // Load: sockets ticking on both instances through the whole failover.
    let mut load = Vec::new();
    for i in 0..20 {
        for (server, name) in [(&a, "a"), (&b, "b")] {
            load.push(Ticking::start(server, format!("load-{name}-{i}")).await);
        }
    }
    // Sessions opened on A before the failover, to be resumed on B after it, with the
    // moments between which each was born.
    let mut parked = Vec::new();
    for i in 0..80 {
        let id = format!("parked-{i}");
        let before = Instant::now();
        assert_eq!(first_count(&a, &id).await, 0);
        parked.push((id, before, Instant::now()));
    }
    let sessions = (load.len() + parked.len()) as u64;
    // Replication is asynchronous: wait until the replica holds every session, so what is
    // measured is the failover, not the replication lag (docs/sessions.md explains that window).
    let replica = &group.servers[1];
    let last_opened = Instant::now();
    eventually("the replica to hold every session", || async {
        replica.ask::<u64>(&redis::cmd("DBSIZE")).is_ok_and(|keys| keys >= sessions)
    })
    .await;
    eprintln!("the replica held every session {:?} after the last open", last_opened.elapsed());
    tokio::time::sleep(Duration::from_millis(1100)).await; // every parked session is 1 s old

    let master = &mut group.servers[0];
    master.process.signal("KILL").expect("kill the master");
    let killed = Instant::now();
    master.process.wait_exit(Duration::from_secs(5)).expect("the master is gone");

    // Probe until a parked session resumes on B: a probe that gets 0 was opened in B's
    // memory, because no master could answer.
    let mut probes = parked.iter();
    let mut fell_back = 0;
    let resumed_after = loop {
        let (id, ..) = probes.next().expect("enough parked sessions to probe the whole failover");
        let count = first_count(&b, id).await;
        if count > 0 {
            break killed.elapsed();
        }
        fell_back += 1;
        assert!(
            killed.elapsed() < FAILOVER_LIMIT,
            "sessions did not resume within {FAILOVER_LIMIT:?} of the master's death"
        );
        tokio::time::sleep(PROBE_INTERVAL).await;
    };
    eprintln!(
        "Sentinel failover: resumes were unavailable for {resumed_after:?} after the master's \
         SIGKILL ({fell_back} probes {PROBE_INTERVAL:?} apart opened locally instead)"
    );
    assert_eq!(group.master_port().expect("the sentinels name a master"), group.servers[1].port);

    // Every session opened before the failover resumes on B with its count.
    for server in [&a, &b] {
        eventually("the instance to follow the new master", || store_reachable(server)).await;
    }
    for (id, before, after) in probes {
        let (youngest, oldest) = (after.elapsed(), before.elapsed());
        let count = first_count(&b, id).await;
        assert!(
            count >= youngest.as_secs() && count <= oldest.as_secs() + 2,
            "{id} resumed at {count}, {youngest:?}..{oldest:?} after it was opened"
        );
    }
    // The sockets never stopped ticking, and their sessions move between instances too.
    for ticking in load {
        let (id, seen) = ticking.finish().await;
        assert!(seen.longest_gap < TICK_GAP_LIMIT, "{id} waited {:?} for a tick", seen.longest_gap);
        assert!(seen.ticks >= 3, "{id} ticked through the failover: {seen:?}");
        let other = if id.starts_with("load-a") { &b } else { &a };
        let count = first_count(other, &id).await;
        assert!(count > seen.last, "{id} resumed at {count} after {seen:?}");
    }
    // New sessions are shared again.
    let last = Ticking::start(&a, "after-failover".into()).await.finish().await.1.last;
    assert!(first_count(&b, "after-failover").await > last);
}

#[actix_web::test]
async fn a_master_demoted_while_still_running_is_left_for_the_new_one() {
    // A manual failover turns the master into a replica without stopping it: the
    // instances' connections to it stay open, and every write on them fails with READONLY.
    let group = SentinelGroup::start(false).expect("start a Sentinel group");
    let url = group.url();
    let a = instance(&url, "demoted-a");
    let b = instance(&url, "demoted-b");
    assert_eq!(first_count(&a, "before").await, 0, "both instances hold the first master");
    assert_eq!(first_count(&b, "before-too").await, 0);
    let first_master = group.servers[0].port;
    let failover = redis::cmd("SENTINEL").arg("FAILOVER").arg(MASTER_NAME).clone();
    ask::<String>(group.sentinels[0].port, &failover).expect("a manual failover");
    eventually("the sentinels to name the replica", || async {
        group.master_port().is_ok_and(|port| port != first_master)
    })
    .await;
    // The sentinels reconfigure the old master once they next read its INFO (every ten
    // seconds, faster during a failover).
    let demoting = Instant::now();
    while !ask::<String>(first_master, redis::cmd("INFO").arg("replication"))
        .is_ok_and(|info| info.contains("role:slave"))
    {
        assert!(demoting.elapsed() < FAILOVER_LIMIT, "the first master was never demoted");
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
    eprintln!(
        "the first master was a replica {:?} after the new one was named",
        demoting.elapsed()
    );

    // Sessions are shared again: one opened on A resumes on B, so both write to the new
    // master (a session opened while an instance still wrote to the old one stays local).
    let mut attempt = 0;
    eventually("a session opened on A to resume on B", || {
        attempt += 1;
        let id = format!("after-demotion-{attempt}");
        let (a, b) = (&a, &b);
        async move {
            assert_eq!(first_count(a, &id).await, 0);
            tokio::time::sleep(Duration::from_millis(1100)).await;
            first_count(b, &id).await > 0
        }
    })
    .await;
}

#[actix_web::test]
async fn a_redis_cluster_spreads_sessions_over_its_masters_and_shares_them() {
    let mut cluster = RedisCluster::start(3, false).expect("start a Redis Cluster");
    let a = instance(&cluster.url(), "cluster-a");
    let b = instance(&cluster.url(), "cluster-b");
    assert_eq!(
        a.health().await["store"],
        serde_json::json!({"kind": "redis-cluster", "reachable": true})
    );

    let ids: Vec<String> = (0..30).map(|i| format!("spread-{i}")).collect();
    for id in &ids {
        assert_eq!(first_count(&a, id).await, 0);
    }
    // Session keys only: the cluster registry keeps a key of its own.
    let mut sessions_here = redis::cmd("KEYS");
    sessions_here.arg("wstime:session:*");
    let per_master: Vec<u64> = cluster
        .nodes
        .iter()
        .map(|node| node.ask::<Vec<String>>(&sessions_here).expect("a master's keys").len() as u64)
        .collect();
    assert_eq!(per_master.iter().sum::<u64>(), ids.len() as u64, "{per_master:?}");
    assert!(per_master.iter().all(|&keys| keys > 0), "every master holds sessions: {per_master:?}");

    tokio::time::sleep(Duration::from_millis(1100)).await;
    for id in &ids {
        let count = first_count(&b, id).await;
        assert!((2..=4).contains(&count), "{id} resumed on B at {count}");
    }
    let (_, seen) = Ticking::start(&a, "moving".into()).await.finish().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(first_count(&b, "moving").await > seen.last);

    // A master's death is noticed (the cluster has no replica to promote, so a third of its
    // slots have no master), and new sessions still open, in the instance's memory.
    cluster.nodes[0].process.signal("KILL").expect("kill a master");
    eventually("A to see the cluster down", || async { !store_reachable(&a).await }).await;
    assert_eq!(first_count(&a, "during-the-outage").await, 0);
}
