//! What HAProxy learns from the instances' agent checks: each one's headroom as a weight,
//! which steers new connections to the emptier instances, `drain` during shutdown, and
//! `ready` again from the process that replaces a drained one.

use wstime_cluster::{Cluster, ClusterSpec, Discovery, HaProxySpec, InstanceSpec};

use crate::helpers::{eventually, within};

/// Three instances of at most 100 sockets behind HAProxy (`deploy/haproxy.cfg`).
async fn cluster(dist: &std::path::Path) -> Cluster {
    let spec = ClusterSpec {
        instance: InstanceSpec {
            binary: env!("CARGO_BIN_EXE_wstime-server").into(),
            static_dir: dist.to_owned(),
            env: vec![
                ("MAX_CONNECTIONS".into(), "100".into()),
                ("DRAIN_GRACE_SECS".into(), "30".into()),
            ],
            echo: false,
        },
        instances: 3,
        standby: 0,
        redis: None,
        haproxy: Some(HaProxySpec::deploy(Discovery::Static)),
        prometheus: None,
    };
    actix_web::rt::task::spawn_blocking(move || Cluster::start(spec))
        .await
        .unwrap()
        .expect("HAProxy in front of three instances")
}

/// Opens `n` WebSockets to `port` and keeps them.
async fn open(port: u16, n: usize, prefix: &str) -> Vec<impl Sized> {
    let mut sockets = Vec::new();
    for i in 0..n {
        let url = format!("ws://127.0.0.1:{port}/?id={prefix}-{i}");
        let (socket, _) = within("a WebSocket", tokio_tungstenite::connect_async(url))
            .await
            .expect("a WebSocket");
        sockets.push(socket);
    }
    sockets
}

/// The connections instance `port` holds, from its health check.
fn connections(port: u16) -> u64 {
    wstime_cluster::http::health_report(port).expect("a health check").connections
}

#[actix_web::test]
async fn haproxy_weighs_instances_by_headroom_and_drains_the_one_that_says_so() {
    let dist = tempfile::tempdir().unwrap();
    crate::helpers::fake_dist(dist.path());
    let mut cluster = cluster(dist.path()).await;
    let ports: Vec<u16> = cluster.instances().iter().map(|i| i.port).collect();
    let lb = cluster.balancer_port().unwrap();
    let weight_of = |cluster: &Cluster, node: &str| {
        let weights = cluster.balancer().expect("HAProxy").weights().expect("server states");
        weights.into_iter().find(|(name, ..)| name == node).expect("the node")
    };

    // 40 of node1's 100 sockets taken directly: a load of 0.4 leaves a third of the
    // headroom below the health threshold (0.6), and the agent says so.
    let _direct = open(ports[0], 40, "direct").await;
    eventually("node1's weight to fall", || async { weight_of(&cluster, "node1").1 <= 40 }).await;
    assert_eq!(weight_of(&cluster, "node2").1, 100, "an empty instance keeps all its weight");

    // New connections through HAProxy go mostly to the others.
    let _through = open(lb, 60, "through").await;
    let received = [connections(ports[0]) - 40, connections(ports[1]), connections(ports[2])];
    assert_eq!(received.iter().sum::<u64>(), 60);
    assert!(received[0] <= 15, "node1 took {} of 60 (even would be 20): {received:?}", received[0]);

    // A draining instance says `drain`: HAProxy sends it nothing new.
    assert!(!weight_of(&cluster, "node1").2, "not drained before its drain");
    cluster.signal(0, "TERM").expect("SIGTERM node1");
    eventually("node1 to be drained", || async { weight_of(&cluster, "node1").2 }).await;

    // Restarted at the same address (a rolling restart), it says `ready`: HAProxy keeps a
    // drain until an agent ends it, and would otherwise leave the new process out for good.
    cluster.restart(0).expect("node1 restarted");
    eventually("node1 back in the pool", || async { !weight_of(&cluster, "node1").2 }).await;
    let _again = open(lb, 30, "again").await;
    assert!(connections(ports[0]) > 0, "the restarted node1 takes new connections");
    cluster.stop();
}

/// The CPU time (user and system) the process `pid` has used so far.
fn cpu_time(pid: u32) -> std::time::Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the process's stat");
    // The fields after the command's closing parenthesis; utime and stime are the 12th and
    // 13th of those, in clock ticks (100 a second on Linux).
    let fields: Vec<&str> =
        stat.rsplit_once(')').expect("a stat line").1.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    std::time::Duration::from_millis(ticks * 10)
}

/// Out of file descriptors, the agent check's accepts fail at once for as long as HAProxy's
/// connections wait: the instance must wait between tries, not spin a core on them.
#[actix_web::test]
async fn an_instance_out_of_file_descriptors_does_not_spin_on_the_agent_check() {
    use std::{os::unix::process::CommandExt as _, process::Command, time::Duration};

    use tokio::io::AsyncWriteExt as _;

    let dist = tempfile::tempdir().unwrap();
    crate::helpers::fake_dist(dist.path());
    let ready = dist.path().join("ready.json");
    let agent_port = wstime_cluster::free_port().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_wstime-server"));
    command
        .env_clear()
        .env("BIND", "127.0.0.1")
        .env("PORT", "0")
        .env("STATIC_DIR", dist.path())
        .env("READY_FILE", &ready)
        .env("AGENT_PORT", agent_port.to_string())
        .env("MAX_CONNECTIONS", "1000")
        .env("MAX_PENDING_HANDSHAKES", "16")
        .env("MAX_CONNECTIONS_PER_CLIENT", "0")
        .env("CONNECT_RATE_PER_CLIENT", "0")
        .env("RUST_LOG", "error");
    // SAFETY: setrlimit is async-signal-safe, the one call made between fork and exec.
    unsafe {
        command.pre_exec(|| {
            rlimit::setrlimit(rlimit::Resource::NOFILE, 64, 64).map_err(std::io::Error::other)
        });
    }
    let mut child = command.spawn().expect("start wstime-server");
    let port = eventually_ready(&ready).await;
    // WebSockets until the process has no file descriptor left for another (an upgrade is
    // answered in milliseconds; one the instance cannot accept, never).
    let mut sockets = Vec::new();
    let mut answered_upgrades = 0;
    for i in 0..64 {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let request = crate::helpers::handshake_request(
            port,
            &format!("/?id=fd-{i}"),
            &crate::helpers::good_handshake_headers("websocket"),
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut head = [0u8; 12];
        let answered = tokio::time::timeout(
            Duration::from_secs(3),
            tokio::io::AsyncReadExt::read_exact(&mut stream, &mut head),
        )
        .await;
        sockets.push(stream);
        if !matches!(answered, Ok(Ok(_))) {
            break;
        }
        answered_upgrades += 1;
    }
    assert!(answered_upgrades >= 32, "only {answered_upgrades} sockets before the limit");
    // HAProxy's agent checks, waiting in the listen backlog that the instance cannot empty:
    // none is answered.
    let mut checks = Vec::new();
    for _ in 0..4 {
        checks.push(tokio::net::TcpStream::connect(("127.0.0.1", agent_port)).await.unwrap());
    }
    let mut line = [0u8; 1];
    let read = tokio::io::AsyncReadExt::read(&mut checks[0], &mut line);
    let answered = tokio::time::timeout(Duration::from_secs(1), read).await;
    assert!(answered.is_err(), "the agent check was answered: the files were not all used");
    let before = cpu_time(child.id());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let used = cpu_time(child.id()) - before;
    let _ = child.kill();
    let _ = child.wait();
    assert!(used < Duration::from_millis(500), "{used:?} of CPU in 2 s with nothing to do");
    drop((sockets, checks));
}

/// The port the instance writes to its ready file, once it does.
async fn eventually_ready(path: &std::path::Path) -> u16 {
    within("the ready file", async {
        loop {
            if let Ok(Some(ready)) = wstime_protocol::ready::Ready::read(path) {
                return ready.port;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
}
