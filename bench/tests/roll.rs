//! A rolling restart, end to end at a small scale: three real instances and a standby slot
//! behind a real HAProxy sharing a real Redis, 300 clients that behave like the page, then
//! `roll`. Every client keeps its count, the roll counts its moves as the clients do, and
//! the clients land on replaced instances (cordoned ones take none), so few move twice.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use wstime_bench::{clients::Client, cluster::BenchCluster, generators};
use wstime_cluster::{
    paths::{built_binary, workspace},
    roll,
};

#[test]
fn a_rolling_restart_keeps_every_count_and_moves_most_clients_once() {
    let server_bin = built_binary("wstime-server");
    assert!(server_bin.exists(), "{} is missing: build the workspace first", server_bin.display());
    let dist = tempfile::tempdir().unwrap();
    std::fs::write(dist.path().join("index.html"), "<!doctype html><title>wstime</title>").unwrap();
    let spec = BenchCluster {
        server_bin,
        static_dir: dist.path().to_owned(),
        haproxy_config: workspace().join("deploy/haproxy.cfg"),
        // Short drains, so four of them fit in the test's half minute.
        env: vec![
            ("DRAIN_GRACE_SECS".into(), "1".into()),
            ("DRAIN_WINDOW_SECS".into(), "1".into()),
        ],
    };
    let cluster = Arc::new(Mutex::new(spec.start(3, 1).expect("the cluster")));
    let port = cluster.lock().unwrap().balancer_port().expect("HAProxy");
    let loadgen = Client::Loadgen(env!("CARGO_BIN_EXE_wstime-loadgen").into());
    // The clients hold longer than the roll and the rebalancing after it take (about 40 s
    // here), so every move is made while both sides count.
    let flags = ["--failover", "--warmup-secs", "0", "--hold-secs", "70"];
    let url = format!("ws://127.0.0.1:{port}/");
    let (mut clients, _) = generators::start(&loadgen, &url, 300, "roll", &flags).unwrap();
    let clients_started = std::time::Instant::now();
    std::thread::sleep(Duration::from_secs(5));

    let report = roll::roll(&cluster, true, |step| eprintln!("roll: {step}")).expect("the roll");
    let rolled = clients_started.elapsed();
    let seen = generators::failover_results(&mut clients, Duration::from_secs(90)).unwrap();
    cluster.lock().unwrap().stop();
    eprintln!("roll at 300: {report:?} after {rolled:?}; the clients saw {} resumes", seen.resumed);
    assert!(rolled < Duration::from_secs(62), "the roll ended after the clients' hold");
    assert!(report.surge, "a replacement started before each drain");
    assert_eq!(report.instances, 3);
    assert_eq!(seen.restarted, 0, "no session started again from 0");
    assert_eq!(seen.gave_up, 0);
    assert_eq!(seen.affected, 300, "every client was on a drained instance");
    assert_eq!(report.moves, seen.resumed as u64, "the roll counts the moves the clients made");
    // One move a client is the floor; without the cordon about half of them move twice.
    assert!(report.moves_per_client < 1.6, "{:.2} moves a client", report.moves_per_client);
}
