//! The page row works: `wstime-bench --only page` with one run loads wstime's page (and,
//! where Node is installed, the post's) in a real headless Chromium, cold and warm, on the
//! unthrottled and the slow link, and writes sound times into a report that keeps what was
//! there before.

use std::process::Command;

use wstime_bench::{node::Node, page::SLOW_LATENCY_MS};
use wstime_cluster::paths::{built_binary, workspace};

#[test]
fn one_run_of_the_page_row_times_both_pages_on_both_links() {
    let server = built_binary("wstime-server");
    assert!(server.exists(), "{} is missing: build the workspace first", server.display());
    let dist = workspace().join("dist");
    assert!(
        dist.join("index.html").exists(),
        "{} is missing: run `trunk build --release`",
        dist.display()
    );
    let out = tempfile::tempdir().unwrap();
    // An earlier report's other parts are kept: here, its date and an empty steady run.
    let earlier = r#"{"machine": "m", "date": "earlier", "node": null, "steady": [],
        "syscalls": null, "failover": []}"#;
    std::fs::write(out.path().join("results.json"), earlier).unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_wstime-bench"))
        .current_dir(workspace())
        .args(["--only", "page", "--page-runs", "1"])
        .arg("--server-bin")
        .arg(&server)
        .arg("--out")
        .arg(out.path())
        .status()
        .expect("run wstime-bench");
    assert!(status.success());

    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("results.json")).unwrap())
            .unwrap();
    assert_eq!(results["date"], "earlier", "the earlier report's parts are kept");
    let page = &results["page"];
    assert_eq!(page["runs"], 1, "{page}");
    assert!(page["browser"].as_str().unwrap().contains("Chromium"), "{page}");
    let pages: &[&str] =
        if Node::find("node").is_some() { &["wstime", "node"] } else { &["wstime"] };
    let mut expected = Vec::new();
    for link in ["unthrottled", "slow"] {
        for page in pages {
            for cache in ["cold", "warm"] {
                expected.push(format!("{page} {link} {cache}"));
            }
        }
    }
    let rows = page["rows"].as_array().unwrap();
    let measured: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{} {} {}",
                r["page"].as_str().unwrap(),
                r["link"].as_str().unwrap(),
                r["cache"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(measured, expected);
    for row in rows {
        let clicked = row["clicked_ms"][0].as_f64().unwrap();
        let first_tick = row["first_tick_ms"][0].as_f64().unwrap();
        assert!(0.0 < clicked && clicked < first_tick, "{row}");
        // On the slow link the socket's handshake waits its emulated round trip at least,
        // between the click and the first tick (a warm page may come from the cache alone).
        if row["link"] == "slow" {
            let waited = first_tick - clicked;
            assert!(waited > f64::from(SLOW_LATENCY_MS), "the slow link was not emulated: {row}");
        }
    }
    let report = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    for needle in ["## The page in Chromium", "| slow | cold |", "| unthrottled | warm |"] {
        assert!(report.contains(needle), "{needle} missing from:\n{report}");
    }
}
