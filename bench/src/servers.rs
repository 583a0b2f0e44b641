//! The servers measured side by side: wstime, and the post's Node server as its peer.

use std::{
    net::{Ipv6Addr, TcpListener},
    path::PathBuf,
    process::Command,
    time::Duration,
};

use anyhow::Context as _;
use wstime_cluster::{InstanceSpec, Supervised};

/// How long a server may take to start listening.
const START_LIMIT: Duration = Duration::from_secs(20);

/// Ports tried for the post's server before giving up (see [`Server::start`]).
const PORT_ATTEMPTS: u32 = 3;

/// A server to measure.
pub enum Server {
    /// A release `wstime-server`.
    Wstime(InstanceSpec),
    /// The same built without its per-tick metrics (`--no-default-features`), to measure
    /// what they cost.
    WstimeWithoutTickMetrics(InstanceSpec),
    /// The same serving TLS itself (its spec sets `TLS_CERT` and `TLS_KEY`); clients trust
    /// the CA in `ca`.
    WstimeTls { spec: InstanceSpec, ca: PathBuf },
    /// The post's `server.js`, run by `node` in its package directory (where it finds
    /// `./randomName` and `public/`).
    Node {
        /// The `node` binary.
        binary: PathBuf,
        /// `bench/node-peer`, its dependencies installed.
        dir: PathBuf,
    },
}

/// A server started for one measurement; killed when dropped.
pub struct Running {
    pub process: Supervised,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
}

impl Server {
    /// What the report calls it.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Wstime(_) => "wstime",
            Self::WstimeWithoutTickMetrics(_) => "wstime-without-tick-metrics",
            Self::WstimeTls { .. } => "wstime-tls",
            Self::Node { .. } => "node",
        }
    }

    /// The WebSocket URL of the server listening on `port`.
    pub fn url(&self, port: u16) -> String {
        match self {
            Self::WstimeTls { .. } => format!("wss://127.0.0.1:{port}/"),
            _ => format!("ws://127.0.0.1:{port}/"),
        }
    }

    /// What a client needs to be told to reach it (the CA to trust, over TLS).
    pub fn client_flags(&self) -> Vec<String> {
        match self {
            Self::WstimeTls { ca, .. } => vec!["--ca-file".into(), ca.display().to_string()],
            _ => Vec::new(),
        }
    }

    /// Starts the server on a free port and waits until it listens.
    pub fn start(&self) -> anyhow::Result<Running> {
        match self {
            Self::Wstime(spec)
            | Self::WstimeWithoutTickMetrics(spec)
            | Self::WstimeTls { spec, .. } => {
                let instance = spec.start("wstime-server", 0, &[])?;
                Ok(Running { process: instance.process, port: instance.port })
            }
            Self::Node { binary, dir } => {
                // The post's server listens on `process.env.PORT` and prints that variable,
                // not the port it got: so it is given a free port rather than 0. Node binds
                // `::`, every address, so the port is taken below the ephemeral range: a
                // generator's connection at another loopback address may hold any port in
                // that range as its source (after a reconnect herd, thousands per address
                // linger in TIME_WAIT), invisible to a look at 127.0.0.1. Should Node still
                // say EADDRINUSE, another port is tried.
                for attempt in 1..=PORT_ATTEMPTS {
                    let port = free_port_below_ephemeral()?;
                    let mut command = Command::new(binary);
                    command
                        .arg("server.js")
                        .current_dir(dir)
                        .env_clear()
                        .env("PORT", port.to_string());
                    let mut process = Supervised::spawn("node-peer", &mut command, false)?;
                    match process.wait_for_line("Server listening on port ", START_LIMIT) {
                        Ok(_) => return Ok(Running { process, port }),
                        Err(error)
                            if attempt < PORT_ATTEMPTS
                                && format!("{error:#}").contains("EADDRINUSE") => {}
                        Err(error) => {
                            return Err(error).with_context(|| {
                                format!(
                                    "start the post's server in {} (port {port}, attempt {attempt} \
                                     of {PORT_ATTEMPTS})",
                                    dir.display()
                                )
                            })
                        }
                    }
                }
                unreachable!("the last attempt returns, started or not")
            }
        }
    }
}

/// A port free on every address (`[::]`, as Node binds it), below the ephemeral range
/// (`ip_local_port_range`), where no connection's source port can be.
fn free_port_below_ephemeral() -> anyhow::Result<u16> {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .context("read /proc/sys/net/ipv4/ip_local_port_range")?;
    let lowest: u16 = range
        .split_whitespace()
        .next()
        .and_then(|low| low.parse().ok())
        .context("ip_local_port_range says no lowest port")?;
    let start = 10_000.min(lowest.saturating_sub(1000));
    for _ in 0..100 {
        let port = start + rand::random::<u16>() % lowest.saturating_sub(start).max(1);
        if TcpListener::bind((Ipv6Addr::UNSPECIFIED, port)).is_ok() {
            return Ok(port);
        }
    }
    anyhow::bail!("no free port between {start} and {lowest} (below the ephemeral range)")
}
