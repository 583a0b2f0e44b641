//! A real `redis-server` on a free loopback port, persisting nothing.

use std::{path::Path, process::Command, time::Duration};

use crate::process::{free_port, Supervised};

/// A running redis-server.
pub struct Redis {
    pub process: Supervised,
    pub port: u16,
}

impl Redis {
    /// Starts redis-server on a free port and waits until it accepts connections.
    pub fn start(echo: bool) -> anyhow::Result<Self> {
        Self::start_on(free_port()?, echo)
    }

    /// Starts redis-server on `port` (for a restart on the same address).
    pub fn start_on(port: u16, echo: bool) -> anyhow::Result<Self> {
        let binary = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("redis-server");
        let mut command = Command::new(binary);
        command.args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
        ]);
        let mut process = Supervised::spawn("redis", &mut command, echo)?;
        process.wait_for_line("Ready to accept connections", Duration::from_secs(20))?;
        Ok(Self { process, port })
    }

    /// The URL instances use (`REDIS_URL`).
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}
