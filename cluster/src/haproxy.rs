//! A real HAProxy in front of the instances, running `deploy/haproxy.cfg` unchanged: the
//! addresses reach it through the environment variables that file reads.

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _};

use crate::{
    http,
    process::{free_port, Supervised},
};

/// How long HAProxy may take to start and see every instance healthy.
const READY_LIMIT: Duration = Duration::from_secs(20);

/// A running HAProxy.
pub struct HaProxy {
    pub process: Supervised,
    /// Where clients connect.
    pub port: u16,
    /// HAProxy's status page (and its CSV at `/;csv`).
    pub stats_port: u16,
}

impl HaProxy {
    /// Starts HAProxy with `config` on `port` (0: any free port) in front of the instances
    /// listening on `nodes`, serving TLS with `certificate` (certificate and key in one PEM)
    /// when given, and waits until it reports every one of them up.
    pub fn start(
        config: &Path,
        port: u16,
        nodes: &[u16],
        certificate: Option<&Path>,
        echo: bool,
    ) -> anyhow::Result<Self> {
        if nodes.len() > 9 {
            bail!("deploy/haproxy.cfg has room for 9 instances, not {}", nodes.len());
        }
        let port = if port == 0 { free_port()? } else { port };
        let stats_port = free_port()?;
        let mut command = Command::new("haproxy");
        command
            .args(["-db", "-f"])
            .arg(config)
            .env("WSTIME_LB_BIND", format!("127.0.0.1:{port}"))
            .env("WSTIME_STATS_BIND", format!("127.0.0.1:{stats_port}"));
        for (i, node) in nodes.iter().enumerate() {
            command.env(format!("WSTIME_NODE{}", i + 1), format!("127.0.0.1:{node}"));
        }
        if let Some(certificate) = certificate {
            command.env("WSTIME_LB_CERT", certificate);
        }
        let haproxy =
            Self { process: Supervised::spawn("haproxy", &mut command, echo)?, port, stats_port };
        let deadline = Instant::now() + READY_LIMIT;
        loop {
            let states = haproxy.server_states().unwrap_or_default();
            if states.len() == nodes.len() && states.iter().all(|(_, state)| state == "UP") {
                return Ok(haproxy);
            }
            if Instant::now() >= deadline {
                bail!(
                    "HAProxy did not see every instance up within {READY_LIMIT:?} ({states:?}):\n{}",
                    haproxy.process.lines().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// How HAProxy sees each instance: (server name, `UP`/`DOWN`/…), from its status CSV.
    pub fn server_states(&self) -> anyhow::Result<Vec<(String, String)>> {
        let csv =
            http::request("GET", self.stats_port, "/;csv", "text/plain", Duration::from_secs(2))?
                .body;
        let mut lines = csv.lines();
        let header: Vec<&str> =
            lines.next().context("an empty CSV")?.trim_start_matches("# ").split(',').collect();
        let column = |name: &str| header.iter().position(|h| *h == name);
        let (proxy, server, status) = (
            column("pxname").context("no pxname column")?,
            column("svname").context("no svname column")?,
            column("status").context("no status column")?,
        );
        Ok(lines
            .map(|line| line.split(',').collect::<Vec<_>>())
            .filter(|f| f.get(proxy) == Some(&"wstime"))
            .filter(|f| !matches!(f.get(server), Some(&"FRONTEND") | Some(&"BACKEND")))
            .filter_map(|f| Some((f.get(server)?.to_string(), f.get(status)?.to_string())))
            .collect())
    }
}
