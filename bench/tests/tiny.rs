//! The benchmark tools work: `wstime-bench` at a tiny size, end to end (a real server, real
//! generators, strace, and the cluster with Redis and HAProxy), writes a sound report.

use std::{path::PathBuf, process::Command};

/// The workspace's binaries sit beside this test's directory (`target/<profile>/`).
fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>").join(name)
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root").to_owned()
}

#[test]
fn a_tiny_benchmark_writes_a_sound_report() {
    let server = binary("wstime-server");
    assert!(server.exists(), "{} is missing: build the workspace first", server.display());
    let out = tempfile::tempdir().unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_wstime-bench"))
        .current_dir(workspace())
        .args(["--sizes", "50", "--window-secs", "2", "--strace-connections", "20"])
        .args(["--failover-clients", "30", "--failover-secs", "12"])
        .arg("--server-bin")
        .arg(&server)
        .arg("--loadgen-bin")
        .arg(env!("CARGO_BIN_EXE_wstime-loadgen"))
        .arg("--out")
        .arg(out.path())
        .status()
        .expect("run wstime-bench");
    assert!(status.success());

    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("results.json")).unwrap())
            .unwrap();
    let steady = &results["steady"][0];
    assert_eq!(steady["connections"], 50);
    assert_eq!(steady["load"]["failed_connects"], 0);
    assert_eq!(steady["load"]["out_of_order"], 0);
    assert!(steady["load"]["ticks"].as_u64().unwrap() >= 50, "{steady}");
    assert!(steady["rss_per_connection_kb"].as_f64().unwrap() > 0.0);
    // /proc counts CPU time in 10 ms clock ticks: at this size the server may use less than
    // one in the window, so only the figures' presence is checked, not their size.
    for field in ["user_us_per_tick", "kernel_us_per_tick", "stolen_percent"] {
        assert!(steady[field].as_f64().is_some_and(|us| us >= 0.0), "{field}: {steady}");
    }
    let syscalls = &results["syscalls"];
    assert!(syscalls["socket_writes"].as_u64().unwrap() > 0, "{syscalls}");
    // Ticks are found in the traced bytes: none found would mean strace's output changed.
    assert!(syscalls["ticks"].as_u64().unwrap() > 0, "{syscalls}");
    for run in results["failover"].as_array().unwrap() {
        let result = &run["result"];
        let affected = result["affected"].as_u64().unwrap();
        assert!(affected > 0, "{run}");
        assert_eq!(
            result["resumed"].as_u64().unwrap(),
            affected,
            "every affected client resumed: {run}"
        );
        assert_eq!(result["gave_up"], 0);
    }
    let report = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    for needle in ["## Steady load", "## System calls", "## Failover", "SIGKILL", "SIGTERM"] {
        assert!(report.contains(needle), "{needle} missing from:\n{report}");
    }
    for chart in ["memory.svg", "cpu.svg", "lateness.svg", "failover-gaps.svg", "failover-herd.svg"]
    {
        let svg = std::fs::read_to_string(out.path().join(chart)).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("<polyline"), "{chart}");
    }
}
