//! Failover: the cluster (three instances, Redis, HAProxy) with clients that behave like the
//! page; one instance is lost, and the clients' gaps, resumes and reconnects are measured.

use std::time::Duration;

use anyhow::Context as _;

use crate::{generators, report::FailoverRow, setup::Setup};

/// What to run.
pub struct Failover {
    /// Clients, spread over the instances by HAProxy.
    pub clients: usize,
    /// How long each run holds its clients after the instance is lost.
    pub hold: Duration,
}

impl Failover {
    /// Two runs on one cluster of three: the first instance is SIGKILLed, then the second
    /// SIGTERMed, each restarted before the next run.
    pub fn run(&self, setup: &Setup) -> anyhow::Result<Vec<FailoverRow>> {
        let mut cluster = setup.cluster().start(3, 0)?;
        let url = format!("ws://127.0.0.1:{}/", cluster.balancer_port().context("HAProxy")?);
        let loadgen = setup.loadgen();
        let mut rows = Vec::new();
        for (run, (signal, node)) in [("KILL", 0), ("TERM", 1)].into_iter().enumerate() {
            let hold = format!("{}", 3.0 + self.hold.as_secs_f64());
            let flags = ["--failover", "--warmup-secs", "0", "--hold-secs", &hold];
            let prefix = format!("failover{run}-");
            let (mut processes, _) =
                generators::start(&loadgen, &url, self.clients, &prefix, &flags)?;
            std::thread::sleep(Duration::from_secs(3));
            cluster.signal(node, signal)?;
            let merged =
                generators::failover_results(&mut processes, self.hold + Duration::from_secs(60))?;
            let row = FailoverRow::new(&format!("SIG{signal}"), merged);
            eprintln!(
                "wstime-bench: SIG{signal}: {} affected, gap p99 {:.0} ms, {} resumed, \
                 {} restarted, {} gave up",
                row.result.affected,
                row.gap_ms.p99,
                row.result.resumed,
                row.result.restarted,
                row.result.gave_up
            );
            rows.push(row);
            if signal == "TERM" {
                cluster.wait_exit(node)?;
            }
            cluster.restart(node)?;
            // The next run's clients must find every instance in HAProxy's pool: arriving
            // while the restarted one is still out, they would crowd the others, and the
            // rebalancing that follows would be measured as failover.
            cluster.balancer().context("HAProxy")?.wait_until_up(3, 3)?;
        }
        cluster.stop();
        Ok(rows)
    }
}
