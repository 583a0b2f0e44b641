//! The scale-out scenario: three instances behind HAProxy sharing Redis, clients on the
//! first two, then the third starts. Rebalancing (the server's `rebalance` module) should move
//! a third of the clients to it, every one resuming its session, without any instance going
//! past its healthy threshold. `make bench` runs it at 6,000 clients; a test at 300.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use wstime_cluster::{Cluster, ClusterSpec, HaProxySpec, InstanceSpec, RedisSetup};

use crate::{clients::Client, generators, results::FailoverResult, stats::Summary};

/// How far from the mean an instance may be and still count as balanced.
pub const BALANCED_WITHIN: f64 = 0.10;

/// How often the instances' connection counts are read.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// The benchmarks' cluster: instances of `server_bin` behind HAProxy running
/// `haproxy_config`, sharing one Redis.
pub struct BenchCluster {
    pub server_bin: PathBuf,
    pub static_dir: PathBuf,
    pub haproxy_config: PathBuf,
    /// Extra environment for every instance.
    pub env: Vec<(String, String)>,
}

impl BenchCluster {
    /// Starts `instances`, with room for `standby` more that start later.
    pub fn start(&self, instances: usize, standby: usize) -> anyhow::Result<Cluster> {
        Cluster::start(ClusterSpec {
            instance: InstanceSpec {
                binary: self.server_bin.clone(),
                static_dir: self.static_dir.clone(),
                env: self.env.clone(),
                echo: false,
            },
            instances,
            standby,
            redis: Some(RedisSetup::Single),
            haproxy: Some(HaProxySpec { config: self.haproxy_config.clone(), port: 0, tls: false }),
            prometheus: None,
        })
    }
}

/// What to run.
pub struct ScaleOut {
    pub cluster: BenchCluster,
    pub loadgen_bin: PathBuf,
    pub clients: usize,
    /// How long to watch after the third instance starts.
    pub watch: Duration,
}

/// What it measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScaleOutRow {
    pub clients: usize,
    /// Seconds since the third instance started, and each instance's connections then.
    pub samples: Vec<(f64, [u64; 3])>,
    /// When every instance was first within [`BALANCED_WITHIN`] of the mean (seconds after
    /// the third started); `None` if never within the watch.
    pub balanced_after_secs: Option<f64>,
    /// The highest load any instance reported while watched, and the threshold it stays
    /// under to be healthy.
    pub peak_load: f64,
    pub healthy_below: f64,
    /// The clients' view: those moved (`affected`), resumed or restarted, and their gaps.
    pub moved: FailoverResult,
    pub gap_ms: Summary,
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
        Ok(ScaleOutRow {
            clients: self.clients,
            samples,
            balanced_after_secs,
            peak_load,
            healthy_below,
            moved,
            gap_ms,
        })
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
