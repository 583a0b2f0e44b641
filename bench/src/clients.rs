//! The clients that hold the connections: our load generator, and an independent one.

use std::{path::PathBuf, process::Command};

/// A client program. Both take the same flags and print the same `READY` and `RESULT`
/// lines, so the driver runs either the same way.
pub enum Client {
    /// `wstime-loadgen` (tokio-tungstenite).
    Loadgen(PathBuf),
    /// `bench/node-client/client.js`, on Node's `ws` library: a client that shares no code
    /// with the load generator, to tell what the server does from what our client does.
    NodeWs {
        /// The `node` binary.
        binary: PathBuf,
        /// The client script, its dependencies installed beside it.
        script: PathBuf,
    },
}

impl Client {
    /// What the report calls it.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Loadgen(_) => "loadgen",
            Self::NodeWs { .. } => "node-ws",
        }
    }

    /// A command running one process of this client, before its flags.
    pub fn command(&self) -> Command {
        match self {
            Self::Loadgen(binary) => Command::new(binary),
            Self::NodeWs { binary, script } => {
                let mut command = Command::new(binary);
                command.arg(script);
                command
            }
        }
    }
}
