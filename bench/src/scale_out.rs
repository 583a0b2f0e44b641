//! The scale-out scenario: three instances behind HAProxy sharing Redis, clients on the
//! first two, then the third starts. Rebalancing (the server's `rebalance` module) should move
//! a third of the clients to it, every one resuming its session, without any instance going
//! past its healthy threshold. `make bench` runs it at 6,000 clients; a test at 300.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::Context as _;

use crate::{
    clients::Client, cluster::BenchCluster, generators, report::ScaleOutRow, stats::Summary,
};

/// How far from the mean an instance may be and still count as balanced.
pub const BALANCED_WITHIN: f64 = 0.10;

/// How often the instances' connection counts are read.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// What to run.
pub struct ScaleOut {
    pub cluster: BenchCluster,
    pub loadgen_bin: PathBuf,
    pub clients: usize,
    /// How long to watch after the third instance starts.
    pub watch: Duration,
}

impl ScaleOut {
    /// Runs the scenario on a cluster of its own.
    pub fn run(&self) -> anyhow::Result<ScaleOutRow> {
        let mut cluster = self.cluster.start(2, 1)?;
        let url = format!("ws://127.0.0.1:{}/", cluster.balancer_port().context("HAProxy")?);
        let loadgen = Client::Loadgen(self.loadgen_bin.clone());
        let hold = format!("{}", 3.0 + self.watch.as_secs_f64());
        let flags = ["--failover", "--warmup-secs", "0", "--hold-secs", &hold];
        let (mut processes, _) =
            generators::start(&loadgen, &url, self.clients, "scale-out-", &flags)?;
        std::thread::sleep(Duration::from_secs(3));

        cluster.restart(2)?;
        let started = Instant::now();
        let ports: Vec<u16> = cluster.instances().iter().map(|i| i.port).collect();
        let mut samples = Vec::new();
        let (mut peak_load, mut healthy_below, mut balanced_after_secs) = (0.0f64, 1.0, None);
        while started.elapsed() < self.watch {
            let mut counts = [0u64; 3];
            for (count, port) in counts.iter_mut().zip(&ports) {
                let health = wstime_cluster::http::health_report(*port)?;
                *count = health.connections;
                peak_load = peak_load.max(health.load);
                healthy_below = health.healthy_below;
            }
            let at = started.elapsed().as_secs_f64();
            if balanced_after_secs.is_none() && balanced(&counts) {
                balanced_after_secs = Some(at);
            }
            samples.push((at, counts));
            std::thread::sleep(SAMPLE_EVERY);
        }
        let limit = self.watch + Duration::from_secs(60);
        let moved = generators::failover_results(&mut processes, limit)?;
        cluster.stop();
        let gap_ms = Summary::of(moved.gap_ms.clone());
        let row = ScaleOutRow {
            clients: self.clients,
            samples,
            balanced_after_secs,
            peak_load,
            healthy_below,
            moved,
            gap_ms,
        };
        eprintln!(
            "wstime-bench: scale-out: {} moved, balanced after {:?} s, {} resumed, {} restarted, \
             longest gap {:.0} ms, peak load {:.2}",
            row.moved.affected,
            row.balanced_after_secs,
            row.moved.resumed,
            row.moved.restarted,
            row.gap_ms.max,
            row.peak_load
        );
        Ok(row)
    }
}

/// Whether every count is within [`BALANCED_WITHIN`] of their mean.
pub fn balanced(counts: &[u64]) -> bool {
    let mean = counts.iter().sum::<u64>() as f64 / counts.len().max(1) as f64;
    mean > 0.0 && counts.iter().all(|&n| (n as f64 - mean).abs() <= mean * BALANCED_WITHIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balanced_means_every_count_within_a_tenth_of_the_mean() {
        assert!(balanced(&[2000, 2100, 1900]));
        assert!(!balanced(&[2300, 2000, 1700]));
        assert!(!balanced(&[0, 0, 0]), "nothing to balance is not balanced");
    }
}
