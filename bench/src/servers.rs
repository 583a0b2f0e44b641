//! The servers measured side by side: wstime, and the post's Node server as its peer.

use std::{path::PathBuf, process::Command, time::Duration};

use anyhow::Context as _;
use wstime_cluster::{free_port, InstanceSpec, Supervised};

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
                // `::`, every address, and a socket on that port at another loopback address
                // (a generator's connection that drew it as its source port) is invisible to a
                // look at 127.0.0.1 and may appear between the look and Node's bind: then
                // Node says EADDRINUSE, and another port is tried. (The look itself stays on
                // loopback, as every network test here does.)
                for attempt in 1..=PORT_ATTEMPTS {
                    let port = free_port()?;
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
