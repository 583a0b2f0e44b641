//! A real `redis-server` on a free loopback port, persisting nothing, optionally locked
//! down (a password, ACL users, TLS only), and a blocking way to ask any Redis process
//! (server or sentinel) one question.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::Path,
    process::Command,
    time::Duration,
};

use anyhow::Context as _;
use redis::FromRedisValue;

use crate::{
    lab::Host,
    process::{free_port, Supervised},
    tls::Certificates,
};

/// How long a Redis process may take to start.
pub(crate) const START_LIMIT: Duration = Duration::from_secs(20);
/// How long a question to a Redis process may take.
const QUESTION_LIMIT: Duration = Duration::from_secs(2);

/// A running redis-server.
pub struct Redis {
    pub process: Supervised,
    /// The address it listens on: 127.0.0.1, or its lab host's.
    pub host: IpAddr,
    pub port: u16,
    /// The lab host it runs in, whose namespace questions to it are asked from.
    lab_host: Option<Host>,
}

/// How a redis-server is locked down. The default: not at all.
#[derive(Default)]
pub struct Security<'a> {
    /// `requirepass`: the password of the default user.
    pub password: Option<&'a str>,
    /// ACL users, each as the rules of one `user` line (`wstime on >secret ~wstime:* …`).
    pub users: Vec<String>,
    /// Speak TLS only (no plain port), with this certificate; clients are not asked for one.
    pub tls: Option<&'a Certificates>,
}

impl Security<'_> {
    /// The redis-server arguments for this, listening on `port`.
    pub fn arguments(&self, port: u16) -> Vec<String> {
        let mut arguments = Vec::new();
        if let Some(password) = self.password {
            arguments.extend(["--requirepass".to_owned(), password.to_owned()]);
        }
        for user in &self.users {
            arguments.push("--user".to_owned());
            arguments.extend(user.split_whitespace().map(str::to_owned));
        }
        if let Some(tls) = self.tls {
            let path = |path: &Path| path.display().to_string();
            arguments.extend(
                [
                    "--port",
                    "0",
                    "--tls-port",
                    &port.to_string(),
                    "--tls-cert-file",
                    &path(&tls.cert),
                    "--tls-key-file",
                    &path(&tls.key),
                    "--tls-ca-cert-file",
                    &path(&tls.ca),
                    "--tls-auth-clients",
                    "no",
                ]
                .map(str::to_owned),
            );
        }
        arguments
    }
}

impl Redis {
    /// Starts redis-server on a free port and waits until it accepts connections.
    pub fn start(echo: bool) -> anyhow::Result<Self> {
        Self::start_on(free_port()?, echo)
    }

    /// Starts redis-server on `port` (for a restart on the same address).
    pub fn start_on(port: u16, echo: bool) -> anyhow::Result<Self> {
        Self::start_with("redis", port, &[], echo)
    }

    /// Starts redis-server on a free port, locked down as `security` says.
    pub fn start_secured(security: &Security, echo: bool) -> anyhow::Result<Self> {
        let port = free_port()?;
        Self::start_with("redis", port, &security.arguments(port), echo)
    }

    /// Starts redis-server labelled `label` on `port` with `extra` arguments after the
    /// defaults (a later argument wins), and waits until it accepts connections.
    pub fn start_with(
        label: &str,
        port: u16,
        extra: &[String],
        echo: bool,
    ) -> anyhow::Result<Self> {
        let command = Command::new(binary("redis-server"));
        Self::launch(label, command, Ipv4Addr::LOCALHOST.into(), port, extra, echo)
    }

    /// Starts redis-server labelled `label` in the lab host `host`, on its address:`port`,
    /// with `extra` arguments: the lab's network is closed, so protected mode is off and any
    /// other host may connect, as to a Redis on its own machine.
    pub fn start_in(
        label: &str,
        host: &Host,
        port: u16,
        extra: &[String],
        echo: bool,
    ) -> anyhow::Result<Self> {
        let mut arguments = vec!["--protected-mode".to_owned(), "no".to_owned()];
        arguments.extend_from_slice(extra);
        let command = host.command(binary("redis-server"));
        let mut redis = Self::launch(label, command, host.ip(), port, &arguments, echo)?;
        redis.lab_host = Some(host.clone());
        Ok(redis)
    }

    /// Runs `command` (redis-server, perhaps inside a lab host) on `host`:`port` with `extra`
    /// arguments after the defaults, and waits until it accepts connections.
    fn launch(
        label: &str,
        mut command: Command,
        host: IpAddr,
        port: u16,
        extra: &[String],
        echo: bool,
    ) -> anyhow::Result<Self> {
        command
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                &host.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--protected-mode",
                "yes",
            ])
            .args(extra);
        let mut process = Supervised::spawn(label, &mut command, echo)?;
        process.wait_for_line("Ready to accept connections", START_LIMIT)?;
        Ok(Self { process, host, port, lab_host: None })
    }

    /// The URL instances use (`REDIS_URL`).
    pub fn url(&self) -> String {
        format!("redis://{}/0", self.address())
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }

    /// Asks this server one question (from inside its lab host, if it runs in one).
    pub fn ask<T: FromRedisValue + Send>(&self, question: &redis::Cmd) -> anyhow::Result<T> {
        ask_in(self.lab_host.as_ref(), self.address(), question)
    }
}

/// Asks the Redis process (server or sentinel) at `address` one question, from inside the
/// lab host `lab_host` if it runs in one.
pub(crate) fn ask_in<T: FromRedisValue + Send>(
    lab_host: Option<&Host>,
    address: SocketAddr,
    question: &redis::Cmd,
) -> anyhow::Result<T> {
    match lab_host {
        Some(host) => host.enter(|| ask_at(address, question))?,
        None => ask_at(address, question),
    }
}

/// Asks the Redis process (server or sentinel) on 127.0.0.1:`port` one question, within a
/// couple of seconds.
pub fn ask<T: FromRedisValue>(port: u16, question: &redis::Cmd) -> anyhow::Result<T> {
    ask_at(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port), question)
}

/// Asks the Redis process at `address` one question, within a couple of seconds.
fn ask_at<T: FromRedisValue>(address: SocketAddr, question: &redis::Cmd) -> anyhow::Result<T> {
    let client = redis::Client::open((address.ip().to_string(), address.port()))?;
    let mut connection = client
        .get_connection_with_timeout(QUESTION_LIMIT)
        .with_context(|| format!("cannot reach {address}"))?;
    connection.set_read_timeout(Some(QUESTION_LIMIT))?;
    connection.set_write_timeout(Some(QUESTION_LIMIT))?;
    question.query(&mut connection).with_context(|| format!("{address} did not answer"))
}

/// `127.0.0.1:<port>` for each of `ports`, joined by commas: the host list of a
/// `redis-sentinel://` or `redis-cluster://` URL.
pub fn loopback_hosts(ports: impl IntoIterator<Item = u16>) -> String {
    let hosts: Vec<String> = ports.into_iter().map(|port| format!("127.0.0.1:{port}")).collect();
    hosts.join(",")
}

/// Where Debian installs a Redis program, or its bare name to be found on the PATH.
pub fn binary(name: &'static str) -> String {
    ["/usr/bin", "/usr/local/bin"]
        .iter()
        .map(|dir| format!("{dir}/{name}"))
        .find(|path| Path::new(path).exists())
        .unwrap_or_else(|| name.to_owned())
}
