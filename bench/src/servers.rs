//! The servers measured side by side: wstime, and the post's Node server as its peer.

use std::{path::PathBuf, process::Command, time::Duration};

use anyhow::Context as _;
use wstime_cluster::{free_port, InstanceSpec, Supervised};

/// How long a server may take to start listening.
const START_LIMIT: Duration = Duration::from_secs(20);

/// A server to measure.
pub enum Server {
    /// A release `wstime-server`.
    Wstime(InstanceSpec),
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
            Self::Node { .. } => "node",
        }
    }

    /// Starts the server on a free port and waits until it listens.
    pub fn start(&self) -> anyhow::Result<Running> {
        match self {
            Self::Wstime(spec) => {
                let instance = spec.start("wstime-server", 0, &[])?;
                Ok(Running { process: instance.process, port: instance.port })
            }
            Self::Node { binary, dir } => {
                // The post's server listens on `process.env.PORT` and prints that variable,
                // not the port it got: so it is given a free port rather than 0.
                let port = free_port()?;
                let mut command = Command::new(binary);
                command.arg("server.js").current_dir(dir).env_clear().env("PORT", port.to_string());
                let mut process = Supervised::spawn("node-peer", &mut command, false)?;
                process
                    .wait_for_line("Server listening on port ", START_LIMIT)
                    .with_context(|| format!("start the post's server in {}", dir.display()))?;
                Ok(Running { process, port })
            }
        }
    }
}
