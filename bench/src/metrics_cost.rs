//! What the per-tick metrics cost a tick: the server with them and the same built without
//! them, measured in turn under the same steady load.

use std::{path::PathBuf, time::Duration};

use wstime_cluster::InstanceSpec;

use crate::{report::SteadyRow, servers::Server, setup::Setup, steady};

/// What to run.
pub struct MetricsCost {
    /// The server built without its per-tick metrics (`make bench` builds it).
    pub without_tick_metrics_bin: PathBuf,
    /// Pairs of runs, with the metrics then without.
    pub pairs: usize,
    /// Connections in every run.
    pub size: usize,
    /// The steady state measured in each run.
    pub window: Duration,
}

impl MetricsCost {
    /// `pairs` pairs of steady runs at `size`, interleaved so that the machine's drift falls
    /// on both alike. Skipped, having said so, when the server without the metrics was not
    /// built.
    pub fn run(&self, setup: &Setup) -> anyhow::Result<Vec<SteadyRow>> {
        if !self.without_tick_metrics_bin.exists() {
            eprintln!(
                "wstime-bench: no {} (make bench builds it): not measuring what the metrics cost",
                self.without_tick_metrics_bin.display()
            );
            return Ok(Vec::new());
        }
        let with = Server::Wstime(setup.wstime());
        let without = Server::WstimeWithoutTickMetrics(InstanceSpec {
            binary: self.without_tick_metrics_bin.clone(),
            ..setup.wstime()
        });
        let loadgen = setup.loadgen();
        let mut rows = Vec::new();
        for _ in 0..self.pairs {
            for server in [&with, &without] {
                rows.push(steady::measure(server, &loadgen, self.size, self.window)?);
            }
        }
        Ok(rows)
    }
}
