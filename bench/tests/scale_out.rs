//! Rebalancing, end to end at a small scale: three real instances behind a real HAProxy
//! sharing a real Redis, 300 clients that behave like the page on the first two, then the
//! third starts. The cluster must even out, and every moved client resume its count.

use std::time::Duration;

use wstime_bench::{cluster::BenchCluster, scale_out::ScaleOut};
use wstime_cluster::paths::{built_binary, workspace};

#[test]
fn after_a_scale_out_the_cluster_evens_out_and_every_moved_client_resumes() {
    let server_bin = built_binary("wstime-server");
    assert!(server_bin.exists(), "{} is missing: build the workspace first", server_bin.display());
    let dist = tempfile::tempdir().unwrap();
    std::fs::write(dist.path().join("index.html"), "<!doctype html><title>wstime</title>").unwrap();
    let cluster = BenchCluster {
        server_bin,
        static_dir: dist.path().to_owned(),
        haproxy_config: workspace().join("deploy/haproxy.cfg"),
        env: Vec::new(),
    };
    let scale_out = ScaleOut {
        cluster,
        loadgen_bin: env!("CARGO_BIN_EXE_wstime-loadgen").into(),
        clients: 300,
        watch: Duration::from_secs(40),
    };
    let row = scale_out.run().expect("the scale-out scenario");
    let last = row.samples.last().expect("samples").1;
    eprintln!(
        "scale-out at 300: balanced after {:?} s, {} moved, last counts {last:?}",
        row.balanced_after_secs, row.moved.affected
    );
    assert!(row.balanced_after_secs.is_some(), "never balanced: {:?}", row.samples);
    assert!(wstime_bench::scale_out::balanced(&last), "and it stayed so: {last:?}");
    assert!(row.moved.affected >= 80, "about a third moved: {}", row.moved.affected);
    assert_eq!(row.moved.restarted, 0, "no session started again from 0");
    assert!(row.moved.resumed >= row.moved.affected, "every moved client resumed");
    assert_eq!(row.moved.gave_up, 0);
    assert!(row.peak_load < row.healthy_below, "no instance past its healthy threshold");
}
