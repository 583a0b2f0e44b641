//! A real Prometheus watches a failover: three instances sharing a real Redis behind a real
//! HAProxy, scraped every second, lose one to SIGKILL while 40 clients ride on them, each
//! reconnecting with its id as the page does. Prometheus's query API must then show the
//! survivors' resumed sessions risen by exactly the clients that moved (as the clients
//! themselves saw it), on the instance each moved to, no session started again, and the
//! alert for a lost instance going off.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures_util::StreamExt as _;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use wstime_cluster::{
    cluster::{node_name, PrometheusSpec},
    paths::workspace,
    Cluster, ClusterSpec, Discovery, HaProxySpec, InstanceSpec, RedisSetup,
};
use wstime_protocol::Tick;

/// Clients riding on the cluster: enough that every instance holds a dozen or so.
const CLIENTS: usize = 40;
/// The bound on anything the cluster or Prometheus must do.
const LIMIT: Duration = Duration::from_secs(30);
/// A connect, or the wait for the next tick, that takes longer than this has failed.
const NETWORK_TIMEOUT: Duration = Duration::from_secs(5);

/// One connection after another's end, as one client saw it.
#[derive(Debug, Clone)]
struct Reconnect {
    /// The server of the last tick before, and its count.
    from: (String, u64),
    /// The server of the first tick after, and its count.
    to: (String, u64),
}

/// What one client has seen so far.
#[derive(Debug, Default)]
struct Ride {
    /// The newest tick: its server and count.
    last: Option<(String, u64)>,
    reconnects: Vec<Reconnect>,
}

type Rides = Arc<Mutex<Vec<Ride>>>;

/// Client `index`: connects through `url` with its own id and reads ticks; whenever its
/// connection ends it connects again with the same id, after a short pause of its own (the
/// page's jitter, shortened), until `stop`.
async fn ride(url: String, index: usize, rides: Rides, stop: CancellationToken) {
    let address = format!("{url}?id=rider-{index}");
    let pause = Duration::from_millis(50 + (index as u64 * 37) % 400);
    while !stop.is_cancelled() {
        let connected = tokio::select! {
            () = stop.cancelled() => return,
            connected = tokio::time::timeout(NETWORK_TIMEOUT, tokio_tungstenite::connect_async(&address)) => connected,
        };
        if let Ok(Ok((mut socket, _))) = connected {
            let mut first = true;
            loop {
                let message = tokio::select! {
                    () = stop.cancelled() => return,
                    message = tokio::time::timeout(NETWORK_TIMEOUT, socket.next()) => message,
                };
                let Ok(Some(Ok(message))) = message else { break };
                let Message::Text(text) = message else { continue };
                let Some(tick) = Tick::parse(&text) else { continue };
                let now = (tick.server.to_owned(), tick.seconds);
                let mut rides = rides.lock().unwrap();
                let ride = &mut rides[index];
                if let (true, Some(from)) = (first, ride.last.clone()) {
                    ride.reconnects.push(Reconnect { from, to: now.clone() });
                }
                ride.last = Some(now);
                first = false;
            }
        }
        tokio::time::sleep(pause).await;
    }
}

/// The reconnects every client made, by the node each landed on (by name in `nodes`); each
/// checked to have continued its count, and not on the `victim`.
fn landed(rides: &[Ride], nodes: &BTreeMap<String, String>, victim: &str) -> BTreeMap<String, f64> {
    let mut landed = BTreeMap::new();
    for reconnect in rides.iter().flat_map(|ride| &ride.reconnects) {
        assert_ne!(reconnect.to.0, victim, "a client reached the killed instance: {reconnect:?}");
        assert!(reconnect.to.1 > reconnect.from.1, "the count went on: {reconnect:?}");
        *landed.entry(nodes[&reconnect.to.0].clone()).or_insert(0.0) += 1.0;
    }
    landed
}

/// Polls `look` every 200 ms until it returns something, failing after [`LIMIT`] with
/// `what` and the last thing it said.
async fn eventually<T, F: std::future::Future<Output = Result<T, String>>>(
    what: &str,
    mut look: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + LIMIT;
    loop {
        match look().await {
            Ok(found) => return found,
            Err(seen) if Instant::now() >= deadline => {
                panic!("no {what} within {LIMIT:?}; last seen: {seen}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Asks the cluster's Prometheus `promql` (off the runtime: the client is blocking) and
/// returns each series' `by` label with its value.
async fn query(cluster: &Arc<Mutex<Cluster>>, promql: &str, by: &str) -> BTreeMap<String, f64> {
    let (cluster, promql, by) = (Arc::clone(cluster), promql.to_owned(), by.to_owned());
    tokio::task::spawn_blocking(move || {
        let cluster = cluster.lock().unwrap();
        let prometheus = cluster.prometheus().expect("the cluster runs Prometheus");
        let samples = prometheus.query(&promql).unwrap_or_else(|e| panic!("{promql}: {e:#}"));
        samples
            .into_iter()
            .map(|sample| (sample.labels.get(&by).cloned().unwrap_or_default(), sample.value))
            .collect()
    })
    .await
    .unwrap()
}

/// The resumed sessions Prometheus last scraped from each instance, by node.
const RESUMED_BY_NODE: &str =
    r#"sum by (node) (wstime_sessions_opened_total{job="wstime", kind="resumed"})"#;
/// The new sessions, by node.
const NEW_BY_NODE: &str =
    r#"sum by (node) (wstime_sessions_opened_total{job="wstime", kind="new"})"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_sees_the_survivors_resume_the_sessions_of_a_killed_instance() {
    let page = tempfile::tempdir().unwrap();
    std::fs::write(page.path().join("index.html"), "<!doctype html><title>wstime</title>").unwrap();
    let spec = ClusterSpec {
        instance: InstanceSpec {
            binary: env!("CARGO_BIN_EXE_wstime-server").into(),
            static_dir: page.path().to_owned(),
            // Rebalancing off: a client it moved before the kill (40 clients need not
            // split evenly) would be a resume Prometheus sees before the one under test,
            // and could land on the instance about to die. The scale-out test and bench
            // measure rebalancing.
            env: vec![("RUST_LOG".into(), "warn".into()), ("REBALANCE".into(), "off".into())],
            echo: false,
        },
        instances: 3,
        standby: 0,
        redis: Some(RedisSetup::Single),
        haproxy: Some(HaProxySpec::deploy(Discovery::Static)),
        prometheus: Some(PrometheusSpec {
            rules: Some(workspace().join("deploy/prometheus-alerts.yml")),
        }),
    };
    let cluster = tokio::task::spawn_blocking(move || Cluster::start(spec))
        .await
        .unwrap()
        .expect("the cluster, with Prometheus");
    let url = format!("ws://127.0.0.1:{}/", cluster.balancer_port().expect("HAProxy"));
    let cluster = Arc::new(Mutex::new(cluster));
    // Which node each server name is (Prometheus labels series by node).
    let nodes: BTreeMap<String, String> = {
        let mut cluster = cluster.lock().unwrap();
        let instances = cluster.instances();
        instances.into_iter().map(|i| (i.name.expect("running"), node_name(i.index))).collect()
    };
    eventually("every instance scraped", || async {
        let up = query(&cluster, r#"up{job="wstime"} == 1"#, "node").await;
        if up.len() == 3 {
            Ok(())
        } else {
            Err(format!("{up:?}"))
        }
    })
    .await;

    let rides: Rides = Arc::new(Mutex::new((0..CLIENTS).map(|_| Ride::default()).collect()));
    let stop = CancellationToken::new();
    let riders: Vec<_> = (0..CLIENTS)
        .map(|i| tokio::spawn(ride(url.clone(), i, Arc::clone(&rides), stop.clone())))
        .collect();
    eventually("every client ticking", || async {
        let ticking = rides.lock().unwrap().iter().filter(|r| r.last.is_some()).count();
        if ticking == CLIENTS {
            Ok(())
        } else {
            Err(format!("{ticking} of {CLIENTS}"))
        }
    })
    .await;
    // Prometheus has scraped them all: every session new, none resumed yet.
    let new_before = eventually("the clients' sessions scraped", || async {
        let new = query(&cluster, NEW_BY_NODE, "node").await;
        if new.values().sum::<f64>() == CLIENTS as f64 {
            Ok(new)
        } else {
            Err(format!("{new:?}"))
        }
    })
    .await;
    let resumed_before = query(&cluster, RESUMED_BY_NODE, "node").await;
    assert!(resumed_before.values().all(|&n| n == 0.0), "{resumed_before:?}");

    // Kill the instance holding the most clients.
    let (victim, moved) = {
        let rides = rides.lock().unwrap();
        let mut held: BTreeMap<String, usize> = BTreeMap::new();
        for ride in rides.iter() {
            *held.entry(ride.last.clone().unwrap().0).or_default() += 1;
        }
        held.into_iter().max_by_key(|&(_, clients)| clients).unwrap()
    };
    let victim_node = nodes[&victim].clone();
    let index: usize = victim_node.trim_start_matches("node").parse::<usize>().unwrap() - 1;
    {
        let cluster = Arc::clone(&cluster);
        tokio::task::spawn_blocking(move || cluster.lock().unwrap().signal(index, "KILL"))
            .await
            .unwrap()
            .expect("SIGKILL the instance");
    }
    eprintln!("killed {victim} ({victim_node}), which held {moved} of {CLIENTS} clients");

    // The clients' own view: every client of the victim came back elsewhere, its count
    // going on.
    let victims: Vec<usize> = {
        let rides = rides.lock().unwrap();
        let on_victim =
            |ride: &Ride| ride.last.as_ref().is_some_and(|(server, _)| *server == victim);
        (0..CLIENTS).filter(|&i| on_victim(&rides[i])).collect()
    };
    assert_eq!(victims.len(), moved);
    eventually("every client of the victim back elsewhere", || async {
        let rides = rides.lock().unwrap();
        let back = victims.iter().filter(|&&i| !rides[i].reconnects.is_empty()).count();
        if back == moved {
            Ok(())
        } else {
            Err(format!("{back} of {moved}"))
        }
    })
    .await;

    // Prometheus's view, all from one look: each survivor's resumed counter equals the
    // reconnects that landed on it, each resume recorded how long it was away, and no
    // survivor opened a new session.
    let survivors = format!(r#"node!="{victim_node}""#);
    let resumed = RESUMED_BY_NODE.replace("kind=", &format!("{survivors}, kind="));
    let new = NEW_BY_NODE.replace("kind=", &format!("{survivors}, kind="));
    let away = format!(r#"sum(wstime_session_away_seconds_count{{job="wstime", {survivors}}})"#);
    let new_before: BTreeMap<_, _> =
        new_before.into_iter().filter(|(node, _)| *node != victim_node).collect();
    let landed = eventually("the resumes scraped", || async {
        let landed = landed(&rides.lock().unwrap(), &nodes, &victim);
        let seen = query(&cluster, &resumed, "node").await;
        let away = query(&cluster, &away, "").await.values().sum::<f64>();
        let new = query(&cluster, &new, "node").await;
        let moves = landed.values().sum::<f64>();
        if seen == landed && away == moves && new == new_before {
            Ok(landed)
        } else {
            Err(format!(
                "resumed {seen:?} for {landed:?} moved; away {away}; new {new:?}, before {new_before:?}"
            ))
        }
    })
    .await;
    eprintln!("the clients that moved, by the node they landed on: {landed:?}");

    // The alert rules loaded from deploy/ see the instance gone (pending for its 30 s).
    let alert = format!(r#"ALERTS{{alertname="WstimeInstanceDown", node="{victim_node}"}}"#);
    eventually("the instance-down alert", || async {
        let alerts = query(&cluster, &alert, "alertstate").await;
        if alerts.is_empty() {
            Err("none".to_owned())
        } else {
            Ok(())
        }
    })
    .await;

    stop.cancel();
    for rider in riders {
        tokio::time::timeout(NETWORK_TIMEOUT, rider).await.expect("a client stops").unwrap();
    }
    let mut cluster = cluster.lock().unwrap();
    cluster.stop();
}
