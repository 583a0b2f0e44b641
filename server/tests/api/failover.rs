//! Transparent failover: a client that loses its instance reconnects with the same id and
//! its count goes on, across instances sharing a real Redis, through a Redis outage, and
//! with instances whose clocks disagree.

use std::{collections::HashMap, time::Instant};

use wstime_cluster::Redis;

use crate::helpers::{eventually, Client, Event, TestServer};

/// Where faketime's preload library lives on Debian.
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

fn instance(redis: &Redis, name: &str) -> TestServer {
    TestServer::builder().env("REDIS_URL", redis.url()).env("SERVER_NAME", name).start()
}

/// The same, as a process (for SIGKILL, logs, faketime).
fn instance_process(redis: &Redis, name: &str) -> TestServer {
    TestServer::builder().env("REDIS_URL", redis.url()).env("SERVER_NAME", name).start_process()
}

/// Reads `n` ticks and returns the last count.
async fn ticks(client: &mut Client, n: usize) -> u64 {
    let mut last = None;
    for _ in 0..n {
        let (_, seconds) = client.next_tick().await;
        if let Some(previous) = last {
            assert_eq!(seconds, previous + 1, "ticks go up by one");
        }
        last = Some(seconds);
    }
    last.expect("n > 0")
}

/// The store section of an instance's health report: (kind, reachable).
async fn store_of(server: &TestServer) -> (String, bool) {
    let store = server.health().await["store"].clone();
    (store["kind"].as_str().unwrap_or_default().to_owned(), store["reachable"] == true)
}

#[actix_web::test]
async fn after_sigkill_another_instance_continues_the_count() {
    let redis = Redis::start(false).expect("start redis-server");
    let mut a = instance_process(&redis, "instance-a");
    let b = instance(&redis, "instance-b");

    let mut client = a.connect("/?id=failover").await;
    let last = ticks(&mut client, 3).await;
    let last_seen = Instant::now();
    a.signal("KILL");
    assert!(matches!(client.next_event().await, Event::Closed(_)), "A's socket ends");

    let mut client = b.connect("/?id=failover").await;
    let (server, first) = client.next_tick().await;
    let gap = last_seen.elapsed();
    assert_eq!(server, "instance-b");
    assert!(first > last, "B's first tick {first} must exceed A's last {last}");
    assert!(first <= last + 3, "B's first tick {first} is at most a few seconds after {last}");
    assert_eq!(ticks(&mut client, 1).await, first + 1);
    eprintln!("failover after SIGKILL: {gap:?} without ticks (A's last {last}, B's first {first})");
}

#[actix_web::test]
async fn one_instance_with_the_memory_store_resumes_a_dropped_connection() {
    let server = TestServer::start("memory-only");
    let mut client = server.connect("/?id=dropped").await;
    let last = ticks(&mut client, 3).await;
    drop(client);

    let mut client = server.connect("/?id=dropped").await;
    let first = ticks(&mut client, 1).await;
    assert!(first > last && first <= last + 3, "{first} after {last}");
    assert_eq!(server.connect("/?id=someone-else").await.next_tick().await.1, 0);
    assert_eq!(store_of(&server).await, ("memory".to_owned(), true));
}

#[actix_web::test]
async fn instances_whose_clocks_disagree_agree_on_the_count() {
    assert!(
        std::path::Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} is missing: install Debian's faketime (make packages)"
    );
    let redis = Redis::start(false).expect("start redis-server");
    let mut honest = instance_process(&redis, "honest-clock");
    let mut skewed = TestServer::builder()
        .env("REDIS_URL", redis.url())
        .env("SERVER_NAME", "skewed-clock")
        .env("LD_PRELOAD", LIBFAKETIME)
        .env("FAKETIME", "+1h")
        .start_process();
    // The skew is real: the skewed instance stamps its log an hour ahead.
    let stamp_hour = |server: &mut TestServer| -> u32 {
        let line = server.wait_for_log("This server is named");
        line.get(11..13).and_then(|h| h.parse().ok()).expect("a timestamped log")
    };
    let (honest_hour, skewed_hour) = (stamp_hour(&mut honest), stamp_hour(&mut skewed));
    assert_eq!((honest_hour + 1) % 24, skewed_hour, "faketime took effect");

    // A session born on the skewed instance, resumed on the honest one, and back.
    let mut client = skewed.connect("/?id=skew").await;
    let last = ticks(&mut client, 3).await;
    drop(client);
    let mut client = honest.connect("/?id=skew").await;
    let first = ticks(&mut client, 2).await - 1;
    assert!(first > last && first <= last + 3, "honest resumed at {first} after {last}");
    drop(client);
    let mut client = skewed.connect("/?id=skew").await;
    let again = ticks(&mut client, 1).await;
    assert!(again > first + 1 && again <= first + 5, "skewed resumed at {again} after {first}");
}

#[actix_web::test]
async fn a_redis_outage_degrades_to_local_sessions_and_heals_by_itself() {
    let redis = Redis::start(false).expect("start redis-server");
    let port = redis.port;
    let mut a = instance_process(&redis, "outage-a");
    let b = instance(&redis, "outage-b");
    let mut open = a.connect("/?id=during-outage").await;
    ticks(&mut open, 1).await;

    drop(redis);
    ticks(&mut open, 3).await; // open sockets keep ticking
    eventually("A to notice Redis is gone", || async {
        store_of(&a).await == ("redis".to_owned(), false)
    })
    .await;
    a.wait_for_log("lost Redis");
    let mut local = a.connect("/?id=new-during-outage").await;
    assert_eq!(ticks(&mut local, 1).await, 0, "new sessions still work, locally");

    let _redis = Redis::start_on(port, false).expect("restart redis-server on the same port");
    for server in [&a, &b] {
        eventually("the instances to reconnect", || async {
            store_of(server).await == ("redis".to_owned(), true)
        })
        .await;
    }
    a.wait_for_log("new sessions are shared again");
    let mut client = a.connect("/?id=after-outage").await;
    let last = ticks(&mut client, 2).await;
    drop(client);
    let mut client = b.connect("/?id=after-outage").await;
    let first = ticks(&mut client, 1).await;
    assert!(first > last, "shared again: B resumed at {first} after A's {last}");
    ticks(&mut open, 1).await; // and the socket that lived through it all still ticks
}

#[actix_web::test]
async fn a_server_starts_while_redis_is_down_and_joins_it_later() {
    let port = wstime_cluster::free_port().unwrap();
    let mut server = TestServer::builder()
        .env("REDIS_URL", format!("redis://127.0.0.1:{port}/0"))
        .env("SERVER_NAME", "early-riser")
        .start_process();
    server.wait_for_log("is unreachable");
    assert_eq!(store_of(&server).await, ("redis".to_owned(), false));
    assert_eq!(server.connect("/?id=early").await.next_tick().await.1, 0);

    let _redis = Redis::start_on(port, false).expect("start redis-server late");
    eventually("the server to connect", || async {
        store_of(&server).await == ("redis".to_owned(), true)
    })
    .await;
}

/// Calls per command since the Redis server started, from `INFO commandstats`.
async fn command_calls(redis: &Redis) -> HashMap<String, u64> {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let info: String =
        redis::cmd("INFO").arg("commandstats").query_async(&mut connection).await.unwrap();
    info.lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(":calls=")?;
            Some((name.to_owned(), rest.split(',').next()?.parse().ok()?))
        })
        .collect()
}

/// Commands other than the health pings and our own INFO, between two snapshots.
fn commands_between(
    before: &HashMap<String, u64>,
    after: &HashMap<String, u64>,
) -> HashMap<String, u64> {
    after
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "ping" | "info" | "hello" | "client|setinfo"))
        .map(|(name, calls)| (name.clone(), calls - before.get(name).copied().unwrap_or(0)))
        .filter(|(_, delta)| *delta > 0)
        .collect()
}

#[actix_web::test]
async fn redis_traffic_grows_with_connects_not_ticks() {
    let redis = Redis::start(false).expect("start redis-server");
    let server = instance(&redis, "frugal");
    let before = command_calls(&redis).await;
    let mut clients = Vec::new();
    for i in 0..20 {
        let mut client = server.connect(&format!("/?id=frugal-{i}")).await;
        ticks(&mut client, 1).await;
        clients.push(client);
    }
    let connected = command_calls(&redis).await;
    let opens = commands_between(&before, &connected);
    // One script per connect: HMGET runs only in the session script. (Redis also counts
    // the commands a script runs; the cluster registry's refresh, every 2 s, runs a script
    // of its own, with HSET, PEXPIRE and TIME too.)
    assert_eq!(opens.get("hmget"), Some(&20), "{opens:?}");
    assert!(opens.values().all(|&calls| calls <= 20 + 5), "one of each per connect: {opens:?}");

    // Three seconds of 20 sockets ticking: 60 ticks, and no session command; only the
    // registry's refreshes (at most two in three seconds, and their first NOSCRIPT).
    for client in &mut clients {
        ticks(client, 3).await;
    }
    let steady = commands_between(&connected, &command_calls(&redis).await);
    assert!(!steady.contains_key("hmget"), "no session script while ticking: {steady:?}");
    assert!(steady.values().all(|&calls| calls <= 3), "no per-tick Redis traffic: {steady:?}");
}
