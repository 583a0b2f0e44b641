//! One wstime-server instance, started from its binary with the contract's environment.

use std::{path::PathBuf, process::Command, time::Duration};

use anyhow::Context as _;

use crate::process::Supervised;

/// How long an instance may take to start listening.
const START_LIMIT: Duration = Duration::from_secs(20);

/// How to start instances.
#[derive(Debug, Clone)]
pub struct InstanceSpec {
    /// The `wstime-server` binary.
    pub binary: PathBuf,
    /// The built page (`STATIC_DIR`).
    pub static_dir: PathBuf,
    /// Extra environment for every instance (`REDIS_URL`, thresholds, …).
    pub env: Vec<(String, String)>,
    /// Print the instances' logs to stderr.
    pub echo: bool,
}

/// A running instance.
pub struct Instance {
    pub process: Supervised,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    /// Its server name, as it appears in ticks.
    pub name: String,
}

impl InstanceSpec {
    /// Starts an instance on `port` (0: any free port) with `extra` environment on top of
    /// the spec's, and waits until it listens.
    pub fn start(
        &self,
        label: &str,
        port: u16,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<Instance> {
        let mut command = Command::new(&self.binary);
        // A clean environment: only the contract's variables, so a REDIS_URL or PORT in the
        // caller's shell cannot change what a test or the cluster runs.
        command
            .env_clear()
            .env("PORT", port.to_string())
            .env("BIND", "127.0.0.1")
            .env("STATIC_DIR", &self.static_dir)
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .envs(extra.iter().copied());
        let mut process = Supervised::spawn(label, &mut command, self.echo)?;
        let named = process.wait_for_line("This server is named: ", START_LIMIT)?;
        let name = named.rsplit(' ').next().unwrap_or_default().to_owned();
        let listening = process.wait_for_line("Server listening on port ", START_LIMIT)?;
        let port = listening
            .rsplit(' ')
            .next()
            .and_then(|p| p.trim().parse().ok())
            .with_context(|| format!("no port in {listening:?}"))?;
        Ok(Instance { process, port, name })
    }
}
