//! HAProxy finding the instances by DNS (`deploy/haproxy-dns.cfg`), as it would behind a
//! Kubernetes headless Service: the instances on loopback addresses of their own, one port
//! for all, and a real dnsmasq answering their A records. A record added for a new instance
//! brings it new clients and, through the rebalancer, its share of the old ones; a record
//! removed as its instance drains takes it out of HAProxy without cutting its sockets, and
//! every client's count goes on through it all.

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures_util::StreamExt as _;
use tokio_tungstenite::tungstenite::Message;
use wstime_cluster::{
    haproxy::Server, process::poll_until, Cluster, ClusterSpec, Discovery, HaProxySpec,
    InstanceSpec, RedisSetup,
};
use wstime_protocol::{
    retry::{Disconnect, Next, RetryPolicy, CONNECT_TIMEOUT, DEAD_PEER_TIMEOUT},
    Tick,
};

/// Clients connected before the scale-out, and after it.
const CLIENTS: usize = 30;
const LATE_CLIENTS: usize = 6;
/// The bound on anything the cluster, HAProxy or the clients must do.
const LIMIT: Duration = Duration::from_secs(30);
/// How long a drained instance's sockets keep ticking: long enough to see HAProxy forget it
/// (its record's hold, a second here, and a resolution) while they still do.
const DRAIN_GRACE_SECS: u64 = 8;
/// How far a count may be from its session's age, as the client measures it: ticks come
/// once a second, and a reconnect takes a moment.
const COUNT_SLACK_SECS: f64 = 2.5;

/// One tick as a client saw it: when, from which instance, and the count.
#[derive(Debug, Clone)]
struct Seen {
    at: Instant,
    server: String,
    seconds: u64,
}

/// Everything one client saw: its ticks, and how each connection ended.
#[derive(Debug, Default)]
struct Ride {
    ticks: Vec<Seen>,
    /// When each connection ended, and the close code the server sent (`None`: it ended
    /// without one).
    closes: Vec<(Instant, Option<u16>)>,
}

impl Ride {
    fn last_server(&self) -> Option<&str> {
        self.ticks.last().map(|seen| seen.server.as_str())
    }
}

type Rides = Arc<Mutex<Vec<Ride>>>;

/// Client `index`: connects through `url` with its own id, reads ticks, and after each end
/// comes back as the page does (the same schedule: 1012 within half a second, 1013 after its
/// retry hint, anything else with backoff), until aborted.
async fn ride(url: String, index: usize, rides: Rides) {
    let address = format!("{url}?id=dns-{index}");
    let policy = RetryPolicy::DEFAULT;
    let mut attempt = 0;
    loop {
        let connected =
            tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(&address)).await;
        let why = match connected {
            Ok(Ok((mut socket, _))) => loop {
                let message = tokio::time::timeout(DEAD_PEER_TIMEOUT, socket.next()).await;
                let mut rides = rides.lock().unwrap();
                let ride = &mut rides[index];
                match message {
                    Ok(Some(Ok(Message::Text(text)))) => {
                        let tick = Tick::parse(&text).unwrap_or_else(|| panic!("{text:?}"));
                        let server = tick.server.to_owned();
                        ride.ticks.push(Seen { at: Instant::now(), server, seconds: tick.seconds });
                        // A healthy connection starts the backoff anew, as the page's does.
                        attempt = 0;
                    }
                    Ok(Some(Ok(Message::Close(frame)))) => {
                        let code = frame.as_ref().map(|frame| u16::from(frame.code));
                        let reason =
                            frame.map(|frame| frame.reason.to_string()).unwrap_or_default();
                        ride.closes.push((Instant::now(), code));
                        break Disconnect::from_close(code, &reason);
                    }
                    Ok(Some(Ok(_))) => {}
                    _ => {
                        ride.closes.push((Instant::now(), None));
                        break Disconnect::Lost;
                    }
                }
            },
            _ => Disconnect::Lost,
        };
        match policy.next(attempt, why, rand::random()) {
            Next::RetryIn(delay) => tokio::time::sleep(delay).await,
            other => panic!("client {index} stopped: {other:?} after {why:?}"),
        }
        attempt += 1;
    }
}

/// The addresses of the servers HAProxy sends new connections to (`UP`).
fn up(cluster: &Cluster) -> BTreeSet<SocketAddr> {
    let servers = cluster.balancer().expect("HAProxy").servers().unwrap_or_default();
    servers.into_iter().filter(|s| s.status.starts_with("UP")).filter_map(|s| s.address).collect()
}

/// The one server of HAProxy's backend that `is` picks.
fn server(cluster: &Cluster, is: impl Fn(&Server) -> bool) -> Server {
    let servers = cluster.balancer().expect("HAProxy").servers().expect("HAProxy's servers");
    servers.into_iter().find(|s| is(s)).unwrap_or_else(|| panic!("no such server"))
}

/// The WebSockets the instance at `address` holds, from its health check.
fn connections(address: SocketAddr) -> u64 {
    wstime_cluster::http::health_report_at(address).map_or(0, |report| report.connections)
}

/// Whether every client of `indices` has had a tick within the last two seconds.
fn all_ticking(rides: &Rides, indices: std::ops::Range<usize>) -> Result<(), String> {
    let rides = rides.lock().unwrap();
    let quiet: Vec<usize> = indices
        .filter(|&i| rides[i].ticks.last().is_none_or(|t| t.at.elapsed() > Duration::from_secs(2)))
        .collect();
    if quiet.is_empty() {
        Ok(())
    } else {
        Err(format!("clients without a recent tick: {quiet:?}"))
    }
}

#[test]
fn haproxy_finds_instances_by_dns_and_forgets_a_drained_one_without_cutting_its_sockets() {
    let dist = tempfile::tempdir().unwrap();
    crate::helpers::fake_dist(dist.path());
    let spec = ClusterSpec {
        instance: InstanceSpec {
            binary: env!("CARGO_BIN_EXE_wstime-server").into(),
            static_dir: dist.path().to_owned(),
            env: vec![
                // A small limit, so the agent's weights tell the instances' loads apart and
                // HAProxy sends the moved clients to the emptier instance.
                ("MAX_CONNECTIONS".into(), "100".into()),
                ("DRAIN_GRACE_SECS".into(), DRAIN_GRACE_SECS.to_string()),
                ("DRAIN_WINDOW_SECS".into(), "2".into()),
                ("RUST_LOG".into(), "warn".into()),
            ],
            echo: false,
        },
        instances: 2,
        standby: 1,
        redis: Some(RedisSetup::Single),
        haproxy: Some(HaProxySpec {
            // The record's hold, short enough that HAProxy forgets the drained instance
            // while its sockets still tick: what must not cut them.
            env: vec![("WSTIME_DNS_HOLD_OBSOLETE".into(), "1s".into())],
            ..HaProxySpec::deploy(Discovery::Dns)
        }),
        prometheus: None,
    };
    let mut cluster = Cluster::start(spec).expect("two instances found by DNS behind HAProxy");
    let slots = cluster.instances();
    let addresses: Vec<SocketAddr> = slots.iter().map(|slot| slot.address()).collect();
    assert!(
        addresses.iter().all(|a| a.port() == addresses[0].port()),
        "one port for all, as an A record carries none: {addresses:?}"
    );
    assert_eq!(addresses.iter().map(SocketAddr::ip).collect::<BTreeSet<_>>().len(), 3);
    assert_eq!(up(&cluster), BTreeSet::from([addresses[0], addresses[1]]), "the two in DNS");
    let lb = format!("ws://127.0.0.1:{}/", cluster.balancer_port().expect("HAProxy"));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime for the clients");
    let rides: Rides =
        Arc::new(Mutex::new((0..CLIENTS + LATE_CLIENTS).map(|_| Ride::default()).collect()));
    let mut tasks: Vec<_> =
        (0..CLIENTS).map(|i| runtime.spawn(ride(lb.clone(), i, Arc::clone(&rides)))).collect();
    poll_until("every client's first tick", LIMIT, || all_ticking(&rides, 0..CLIENTS)).unwrap();
    let sockets =
        || -> Vec<u64> { addresses.iter().map(|&address| connections(address)).collect() };
    let before = sockets();
    assert_eq!(before[0] + before[1], CLIENTS as u64, "{before:?}");
    assert!(before[0] > 0 && before[1] > 0, "HAProxy spreads them: {before:?}");

    // Scale out: the third instance starts, and its record is added once it listens.
    let third = cluster.restart(2).expect("the third instance");
    let third_name = third.name.clone().expect("running");
    let listed = Instant::now();
    poll_until("HAProxy to send to the third instance", LIMIT, || {
        let up = up(&cluster);
        if up.contains(&addresses[2]) {
            Ok(())
        } else {
            Err(up)
        }
    })
    .unwrap();
    let found_after = listed.elapsed();
    assert!(found_after < Duration::from_secs(5), "found {found_after:?} after its record");

    // New clients reach it through HAProxy.
    tasks.extend(
        (CLIENTS..CLIENTS + LATE_CLIENTS)
            .map(|i| runtime.spawn(ride(lb.clone(), i, Arc::clone(&rides)))),
    );
    poll_until("the late clients' first ticks", LIMIT, || {
        all_ticking(&rides, CLIENTS..CLIENTS + LATE_CLIENTS)
    })
    .unwrap();
    let late_on_third = {
        let rides = rides.lock().unwrap();
        let firsts = rides[CLIENTS..].iter().filter_map(|ride| ride.ticks.first());
        firsts.filter(|seen| seen.server == third_name).count()
    };
    assert!(late_on_third > 0, "no new client of {LATE_CLIENTS} reached the new instance");

    // The rebalancer moves the old instances' excess there: each closes some of its sockets
    // with 1013, and their clients come back through HAProxy to the emptier instance.
    let all = (CLIENTS + LATE_CLIENTS) as u64;
    // What is left once the others hold no more than the rebalancer lets them keep: the
    // mean and its slack of 2 sockets (more than the 5% tolerance, at this size).
    let share = all - 2 * (all / 3 + 2);
    poll_until("the third instance's share", LIMIT, || {
        let now = sockets();
        if now[2] >= share {
            Ok(())
        } else {
            Err(now)
        }
    })
    .unwrap();
    let moved = {
        let rides = rides.lock().unwrap();
        rides[..CLIENTS].iter().filter(|ride| ride.last_server() == Some(&third_name)).count()
    };
    assert!(moved > 0, "the third instance's share came from new clients alone");

    // Drain the first once the moves are over (none for three seconds), so that the clients
    // it holds stay there until it closes them: its record goes and it gets SIGTERM, as a
    // terminating pod leaves its Service.
    poll_until("the rebalancing to end", LIMIT, || {
        let rides = rides.lock().unwrap();
        let recent = rides
            .iter()
            .flat_map(|ride| &ride.closes)
            .filter(|(at, _)| at.elapsed() < Duration::from_secs(3))
            .count();
        if recent == 0 {
            Ok(())
        } else {
            Err(format!("{recent} moves in the last 3 s"))
        }
    })
    .unwrap();
    let first_name = slots[0].name.clone().expect("running");
    let on_first: Vec<usize> = {
        let rides = rides.lock().unwrap();
        (0..rides.len()).filter(|&i| rides[i].last_server() == Some(&first_name)).collect()
    };
    assert!(!on_first.is_empty(), "nobody on the first instance to drain");
    // HAProxy's name for it: whichever server took its record.
    let first_server = server(&cluster, |s| s.address == Some(addresses[0])).name;
    cluster.signal(0, "TERM").expect("SIGTERM the first instance");
    let drained = Instant::now();
    poll_until("HAProxy to forget the drained instance", LIMIT, || {
        let held = server(&cluster, |s| s.name == first_server);
        if held.address.is_none() {
            Ok(())
        } else {
            Err(held)
        }
    })
    .unwrap();
    let forgotten = Instant::now();
    let forgotten_after = forgotten - drained;
    assert!(
        forgotten_after < Duration::from_secs(DRAIN_GRACE_SECS - 2),
        "forgotten {forgotten_after:?} after the drain began: too late to see its sockets tick"
    );
    let held = server(&cluster, |s| s.name == first_server);
    assert!(held.status.contains("MAINT"), "it waits in maintenance for an address: {held:?}");
    assert!(!up(&cluster).contains(&addresses[0]), "no other server took its address");
    // Its sockets still tick, from it, after HAProxy has let it go.
    std::thread::sleep(Duration::from_millis(2500));
    {
        let rides = rides.lock().unwrap();
        for &i in &on_first {
            let after: Vec<&Seen> = rides[i]
                .ticks
                .iter()
                .filter(|seen| seen.at > forgotten && seen.server == first_name)
                .collect();
            assert!(
                after.len() >= 2,
                "client {i} stopped ticking once HAProxy forgot its instance: {:?}",
                rides[i]
            );
        }
    }
    let exit = cluster.wait_exit(0).expect("the drained instance exits");
    assert!(exit.last_exit.as_deref().is_some_and(|e| e.contains("exit status: 0")), "{exit:?}");
    poll_until("every client ticking again, from the others", LIMIT, || {
        all_ticking(&rides, 0..CLIENTS + LATE_CLIENTS)?;
        let rides = rides.lock().unwrap();
        let left: Vec<usize> = on_first
            .iter()
            .copied()
            .filter(|&i| rides[i].last_server() == Some(&first_name))
            .collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("still on the drained one: {left:?}"))
        }
    })
    .unwrap();
    assert_eq!(up(&cluster), BTreeSet::from([addresses[1], addresses[2]]), "the first stays gone");

    for task in &tasks {
        task.abort();
    }
    runtime.shutdown_timeout(Duration::from_secs(5));
    let rides = rides.lock().unwrap();
    for (i, ride) in rides.iter().enumerate() {
        // Every count is its session's age: never reset by a reconnect, never backwards.
        let first = &ride.ticks[0];
        for seen in &ride.ticks {
            let age = (seen.at - first.at).as_secs_f64() + first.seconds as f64;
            assert!(
                (seen.seconds as f64 - age).abs() <= COUNT_SLACK_SECS,
                "client {i} said {} at {age:.1} s into its session: {ride:?}",
                seen.seconds
            );
        }
        assert!(
            ride.ticks.windows(2).all(|w| w[0].seconds <= w[1].seconds),
            "client {i}: {ride:?}"
        );
        if on_first.contains(&i) {
            assert!(
                ride.closes.iter().any(|(_, code)| *code == Some(1012)),
                "client {i} was drained with 1012: {ride:?}"
            );
            assert_ne!(ride.last_server(), Some(first_name.as_str()), "client {i}");
        }
    }
    eprintln!(
        "discovery: a new instance in HAProxy's pool {found_after:?} after its record came, \
         a drained one out of it {forgotten_after:?} after its record went (held 1 s)"
    );
    cluster.stop();
}
