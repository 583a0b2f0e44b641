//! One wstime-server instance, started from its binary with the contract's environment.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::PathBuf,
    process::Command,
    time::Duration,
};

use anyhow::Context as _;

use wstime_protocol::ready::Ready;

use crate::{lab::Host, process::Supervised};

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
    /// The address it listens on (`BIND`): 127.0.0.1, or a loopback address of its own.
    pub host: IpAddr,
    /// The port it listens on.
    pub port: u16,
    /// Its server name, as it appears in ticks.
    pub name: String,
}

impl Instance {
    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }
}

impl InstanceSpec {
    /// Starts an instance on 127.0.0.1:`port` (0: any free port) with `extra` environment
    /// on top of the spec's, and waits until it listens.
    pub fn start(
        &self,
        label: &str,
        port: u16,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<Instance> {
        self.start_at(label, Ipv4Addr::LOCALHOST.into(), port, extra)
    }

    /// Starts an instance on `host`:`port`: instances that share a port each on an address
    /// of their own, as pods do behind a headless Service (all of 127.0.0.0/8 is local on
    /// Linux). The port and name come from the instance's ready file (`READY_FILE`), not
    /// from its logs, which `RUST_LOG` may silence.
    pub fn start_at(
        &self,
        label: &str,
        host: IpAddr,
        port: u16,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<Instance> {
        self.launch(label, Command::new(&self.binary), host, port, extra)
    }

    /// Starts an instance in the lab host `host`, listening on its address:`port`, as on a
    /// machine of its own: its peers (HAProxy, Redis, clients) reach it over the lab's links.
    pub fn start_in(
        &self,
        label: &str,
        host: &Host,
        port: u16,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<Instance> {
        self.launch(label, host.command(&self.binary), host.ip(), port, extra)
    }

    /// Runs `command` (the binary, or the binary inside a lab host) as an instance on
    /// `host`:`port` and waits until it is ready.
    fn launch(
        &self,
        label: &str,
        mut command: Command,
        host: IpAddr,
        port: u16,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<Instance> {
        let ready_dir = tempfile::tempdir().context("a directory for the ready file")?;
        let ready_file = ready_dir.path().join("ready.json");
        // A clean environment: only the contract's variables, so a REDIS_URL or PORT in the
        // caller's shell cannot change what a test or the cluster runs.
        command
            .env_clear()
            .env("PORT", port.to_string())
            .env("BIND", host.to_string())
            .env("STATIC_DIR", &self.static_dir)
            .env("READY_FILE", &ready_file)
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .envs(extra.iter().copied());
        let mut process = Supervised::spawn(label, &mut command, self.echo)?;
        let ready = process.wait_for("its ready file", START_LIMIT, || {
            Ready::read(&ready_file).context("the ready file")
        })?;
        Ok(Instance { process, host, port: ready.port, name: ready.name })
    }
}
