//! A roll leaves HAProxy as it found it, whichever way HAProxy finds the instances: every
//! instance replaced, and no server left cordoned, so an instance started after the roll
//! in the slot drained last gets clients. With DNS discovery the servers are found by
//! address, since a record may be taken by any free server: the DNS test first has an
//! instance's record taken by the server named for another slot. (The roll under clients,
//! with its moves, is the bench's test.)

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use wstime_cluster::{
    haproxy::Server, paths::built_binary, process::poll_until, roll, Cluster, ClusterSpec,
    Discovery, HaProxySpec, InstanceSpec,
};

/// How long HAProxy may take to give a started instance its weight.
const LIMIT: Duration = Duration::from_secs(30);

fn rolled_then_restarted(discovery: Discovery) {
    let server_bin = built_binary("wstime-server");
    assert!(server_bin.exists(), "{} is missing: build the workspace first", server_bin.display());
    let dist = tempfile::tempdir().unwrap();
    std::fs::write(dist.path().join("index.html"), "<!doctype html><title>wstime</title>").unwrap();
    let spec = ClusterSpec {
        instance: InstanceSpec {
            binary: server_bin,
            static_dir: dist.path().to_owned(),
            env: vec![
                ("DRAIN_GRACE_SECS".into(), "1".into()),
                ("DRAIN_WINDOW_SECS".into(), "0".into()),
            ],
            echo: false,
        },
        instances: 2,
        standby: 1,
        redis: None,
        haproxy: Some(HaProxySpec {
            // A server whose record went is free for another a second later.
            env: vec![("WSTIME_DNS_HOLD_OBSOLETE".into(), "1s".into())],
            ..HaProxySpec::deploy(discovery)
        }),
        prometheus: None,
    };
    let cluster = Arc::new(Mutex::new(Cluster::start(spec).expect("the cluster")));
    if discovery == Discovery::Dns {
        // The first instance goes and the standby slot's comes: HAProxy hands the records
        // to its servers afresh, and their names no longer follow the slots (node3's
        // instance is not in node3), as after any scaling.
        let (first, standby) = {
            let mut cluster = cluster.lock().unwrap();
            let first = cluster.signal(0, "KILL").expect("a kill").address();
            (first, cluster.instances()[2].address())
        };
        wait_for(&cluster, "the first's server to let its address go", |servers| {
            servers.iter().all(|server| server.address != Some(first))
        });
        cluster.lock().unwrap().restart(2).expect("the standby slot's instance");
        wait_for(&cluster, "the standby slot's instance up", |servers| {
            servers.iter().any(|s| s.address == Some(standby) && s.status == "UP")
        });
        let servers = cluster.lock().unwrap().balancer().expect("HAProxy").servers().unwrap();
        let standby_in = servers.iter().find(|s| s.address == Some(standby)).unwrap();
        assert_ne!(standby_in.name, "node3", "the slots' names no longer match: {servers:?}");
    }
    let before: Vec<u32> = running_pids(&cluster);

    let report = roll::roll(&cluster, true, |step| eprintln!("{discovery:?} roll: {step}"))
        .expect("the roll");
    assert_eq!(report.instances, 2);
    assert!(report.surge);
    let after = running_pids(&cluster);
    assert_eq!(after.len(), 2, "two instances run after the roll");
    assert!(after.iter().all(|pid| !before.contains(pid)), "each one replaced");
    let running: BTreeSet<SocketAddr> = {
        let mut cluster = cluster.lock().unwrap();
        cluster.instances().iter().filter(|i| i.running).map(|i| i.address()).collect()
    };
    wait_for(&cluster, "every replacement weighed", |_| weighed(&cluster) == running);

    // The slot drained last, started again: HAProxy must give it a weight (its agent's).
    let spare = {
        let mut cluster = cluster.lock().unwrap();
        let spare = cluster.instances().into_iter().find(|i| !i.running).expect("a free slot");
        cluster.restart(spare.index).expect("a restart").address()
    };
    poll_until("HAProxy to weigh the instance started after the roll", LIMIT, || {
        let weighed = weighed(&cluster);
        if weighed.contains(&spare) {
            Ok(())
        } else {
            Err(format!("{discovery:?}: {spare} has no weight; weighed: {weighed:?}"))
        }
    })
    .unwrap();
    cluster.lock().unwrap().stop();
}

/// Waits until HAProxy's servers are as `done` wants them.
fn wait_for(cluster: &Mutex<Cluster>, what: &str, done: impl Fn(&[Server]) -> bool) {
    poll_until(what, LIMIT, || {
        let servers = cluster.lock().unwrap().balancer().expect("HAProxy").servers();
        let servers = servers.unwrap_or_default();
        if done(&servers) {
            Ok(())
        } else {
            Err(servers)
        }
    })
    .unwrap();
}

fn running_pids(cluster: &Mutex<Cluster>) -> Vec<u32> {
    cluster.lock().unwrap().instances().iter().filter_map(|i| i.pid).collect()
}

/// The addresses of the servers HAProxy holds UP with a weight above 0.
fn weighed(cluster: &Mutex<Cluster>) -> BTreeSet<SocketAddr> {
    let cluster = cluster.lock().unwrap();
    let haproxy = cluster.balancer().expect("HAProxy");
    let weights = haproxy.weights().unwrap_or_default();
    let servers = haproxy.servers().unwrap_or_default();
    servers
        .into_iter()
        .filter(|server| server.status == "UP")
        .filter(|server| {
            weights.iter().any(|(name, weight, _)| *name == server.name && *weight > 0)
        })
        .filter_map(|server| server.address)
        .collect()
}

#[test]
fn a_roll_with_servers_listed_by_address_leaves_none_cordoned() {
    rolled_then_restarted(Discovery::Static);
}

#[test]
fn a_roll_with_servers_found_by_dns_leaves_none_cordoned() {
    rolled_then_restarted(Discovery::Dns);
}
