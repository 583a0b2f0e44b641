//! The benchmark tools work: `wstime-bench` at a tiny size, end to end (a real server, real
//! generators, strace, and the cluster with Redis and HAProxy), writes a sound report. Where
//! Node is installed, the post's Node server and the independent Node client run too.

use std::process::Command;

use wstime_cluster::paths::{built_binary, workspace};

#[test]
fn a_tiny_benchmark_writes_a_sound_report() {
    let server = built_binary("wstime-server");
    assert!(server.exists(), "{} is missing: build the workspace first", server.display());
    let out = tempfile::tempdir().unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_wstime-bench"))
        .current_dir(workspace())
        .args(["--sizes", "50", "--window-secs", "2", "--strace-connections", "20"])
        .args(["--failover-clients", "30", "--failover-secs", "12", "--tls-size", "50"])
        // The page row has a test of its own (tests/page.rs).
        .args(["--scale-out-clients", "0", "--page-runs", "0"])
        .args(["--herd-clients", "40", "--herd-bystanders", "10", "--herd-secs", "8"])
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
    let node = node_on_this_machine();
    // Every size with the load generator on both servers, then the independent client on
    // both at the largest size; without Node, wstime with the load generator alone. Then
    // wstime over TLS.
    let measured: &[(&str, &str)] = if node {
        &[
            ("wstime", "loadgen"),
            ("node", "loadgen"),
            ("wstime", "node-ws"),
            ("node", "node-ws"),
            ("wstime-tls", "loadgen"),
        ]
    } else {
        &[("wstime", "loadgen"), ("wstime-tls", "loadgen")]
    };
    let steady = results["steady"].as_array().unwrap();
    let pairs: Vec<_> = steady
        .iter()
        .map(|r| (r["server"].as_str().unwrap(), r["client"].as_str().unwrap()))
        .collect();
    assert_eq!(pairs, measured);
    for row in steady {
        assert_sound_steady_row(row);
    }
    assert!(steady[0]["rss_per_connection_kb"].as_f64().unwrap() > 0.0, "{}", steady[0]);
    assert_eq!(results["node"].is_string(), node, "{}", results["node"]);
    let syscalls = &results["syscalls"];
    assert!(syscalls["socket_writes"].as_u64().unwrap() > 0, "{syscalls}");
    // Ticks are found in the traced bytes: none found would mean strace's output changed.
    assert!(syscalls["ticks"].as_u64().unwrap() > 0, "{syscalls}");
    for run in results["failover"].as_array().unwrap() {
        let result = &run["result"];
        let affected = result["affected"].as_u64().unwrap();
        assert!(affected > 0, "{run}");
        // Every affected client came back with its count (some may have moved again, when
        // the survivors evened out: more resumes than clients is fine, a restart is not).
        assert!(result["resumed"].as_u64().unwrap() >= affected, "every one resumed: {run}");
        assert_eq!(result["restarted"], 0, "no session started again from 0: {run}");
        assert_eq!(result["gave_up"], 0);
    }
    let report = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    let mut needles = vec![
        "## Steady load",
        "| wstime-tls | 50 |",
        "## System calls",
        "## Failover",
        "SIGKILL",
        "SIGTERM",
    ];
    if node {
        needles.extend(["### wstime ÷ Node", "## The independent client", "| node | node-ws |"]);
    } else {
        needles.push("no Node.js on this machine");
    }
    for needle in needles {
        assert!(report.contains(needle), "{needle} missing from:\n{report}");
    }
    for herd in results["herd"].as_array().unwrap() {
        let back = &herd["herd"];
        assert_eq!(back["rejoined"], 40, "every herd client came back: {herd}");
        if herd["server"] == "wstime" {
            assert_eq!(back["count_resets"], 0, "every count went on: {herd}");
        }
    }
    for chart in ["memory.svg", "cpu.svg", "lateness.svg", "failover-gaps.svg", "failover-herd.svg"]
    {
        let svg = std::fs::read_to_string(out.path().join(chart)).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("<polyline"), "{chart}");
    }
}

/// Whether `wstime-bench` will find Node, as it looks for it.
fn node_on_this_machine() -> bool {
    Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success())
}

/// One steady measurement at the tiny size: every socket opened and held, ticks measured
/// both ways, in order, and the server's figures present.
fn assert_sound_steady_row(row: &serde_json::Value) {
    assert_eq!(row["connections"], 50, "{row}");
    let load = &row["load"];
    for field in ["failed_connects", "out_of_order", "dropped"] {
        assert_eq!(load[field], 0, "{field}: {row}");
    }
    assert!(load["ticks"].as_u64().unwrap() >= 50, "{row}");
    for lateness in ["lateness_ms", "schedule_lateness_ms"] {
        let summary = &load[lateness];
        assert!(summary["count"].as_u64().unwrap() >= 50, "{lateness}: {row}");
        let (p50, p99, max) = (
            summary["p50"].as_f64().unwrap(),
            summary["p99"].as_f64().unwrap(),
            summary["max"].as_f64().unwrap(),
        );
        assert!(0.0 <= p50 && p50 <= p99 && p99 <= max, "{lateness}: {row}");
    }
    // /proc counts CPU time in 10 ms clock ticks: at this size a server may use less than
    // one in the window, so only the figures' presence is checked, not their size; and
    // Node's collector may give back as much memory as 50 sockets took.
    for field in
        ["rss_per_connection_kb", "user_us_per_tick", "kernel_us_per_tick", "stolen_percent"]
    {
        assert!(row[field].as_f64().is_some_and(|us| us >= 0.0), "{field}: {row}");
    }
    // Absent only on a kernel without pressure stall information.
    let pressure = &row["cpu_pressure_percent"];
    assert!(pressure.is_null() || pressure.as_f64().is_some_and(|p| p >= 0.0), "{row}");
}
