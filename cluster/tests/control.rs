//! The control API as an operator's commands use it: a TERM answers once the instance has
//! drained and exited, and a restart works whatever came before (here, right after that
//! drain, with no status request between).

use std::time::Duration;

use wstime_cluster::{
    cluster::InstanceInfo, control, http, paths::built_binary, Cluster, ClusterSpec, InstanceSpec,
};

fn post(port: u16, path: &str) -> InstanceInfo {
    let response = http::request("POST", port, path, "application/json", Duration::from_secs(60))
        .expect("the control API answers");
    assert_eq!(response.status, 200, "{path}: {}", response.body);
    serde_json::from_str(&response.body).expect("an instance")
}

#[test]
fn term_waits_for_the_drain_and_restart_follows_it_at_once() {
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
        instances: 1,
        standby: 0,
        redis: None,
        haproxy: None,
        prometheus: None,
    };
    let cluster = std::sync::Arc::new(std::sync::Mutex::new(Cluster::start(spec).unwrap()));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // The control API's own thread; the test's end ends it with the process.
    std::thread::spawn({
        let cluster = std::sync::Arc::clone(&cluster);
        move || {
            actix_web::rt::System::new().block_on(async move {
                control::serve(cluster, listener).expect("the control API").await
            })
        }
    });

    let drained = post(port, "/instances/0/signal/TERM");
    assert!(!drained.running, "answered before the drain ended: {drained:?}");
    assert_eq!(drained.last_exit.as_deref(), Some("exit status: 0"));
    let restarted = post(port, "/instances/0/restart");
    assert!(restarted.running, "{restarted:?}");
    assert_ne!(restarted.name, None);

    // An instance that drained and exited by itself, its end not yet noticed by anyone.
    let pid = restarted.pid.expect("a running process");
    cluster.lock().unwrap().signal(0, "TERM").expect("a TERM");
    let gone = std::time::Instant::now() + Duration::from_secs(30);
    while std::path::Path::new(&format!("/proc/{pid}/stat")).exists() {
        // A zombie until reaped: its state letter is Z.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')) {
            break;
        }
        assert!(std::time::Instant::now() < gone, "the instance did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
    let again = post(port, "/instances/0/restart");
    assert!(again.running && again.pid != Some(pid), "{again:?}");

    cluster.lock().unwrap().stop();
}
