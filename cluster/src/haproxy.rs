//! A real HAProxy in front of the instances, running deploy/'s configuration unchanged: the
//! rules of `haproxy-common.cfg`, then the file that names the servers (`haproxy.cfg`). The
//! addresses reach it through the environment variables those files read.

use std::{
    path::{Path, PathBuf},
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

/// The rules every file of servers is loaded after: it sits beside them in deploy/.
pub const COMMON_CONFIG: &str = "haproxy-common.cfg";

/// A running HAProxy.
pub struct HaProxy {
    pub process: Supervised,
    /// Where clients connect.
    pub port: u16,
    /// HAProxy's status page (and its CSV at `/;csv`).
    pub stats_port: u16,
    /// HAProxy's runtime API.
    admin_socket: PathBuf,
    /// The directory the socket is in, removed with it.
    _runtime: tempfile::TempDir,
}

impl HaProxy {
    /// Starts HAProxy with [`COMMON_CONFIG`] and then `config` (the file of servers beside
    /// it) on `port` (0: any free port) in front of the instances
    /// listening on `nodes` (each its port and its agent check's port), serving TLS with
    /// `certificate` (certificate and key in one PEM) when given, and waits until it
    /// reports `up` of them up (the others may not be started yet).
    pub fn start(
        config: &Path,
        port: u16,
        nodes: &[(u16, u16)],
        up: usize,
        certificate: Option<&Path>,
        echo: bool,
    ) -> anyhow::Result<Self> {
        if nodes.len() > 9 {
            bail!("deploy/haproxy.cfg has room for 9 instances, not {}", nodes.len());
        }
        let common = config.with_file_name(COMMON_CONFIG);
        if !common.is_file() {
            bail!("{} loads after {COMMON_CONFIG}, which is not beside it", config.display());
        }
        let port = if port == 0 { free_port()? } else { port };
        let stats_port = free_port()?;
        let mut command = Command::new("haproxy");
        command
            .arg("-db")
            .arg("-f")
            .arg(&common)
            .arg("-f")
            .arg(config)
            .env("WSTIME_LB_BIND", format!("127.0.0.1:{port}"))
            .env("WSTIME_STATS_BIND", format!("127.0.0.1:{stats_port}"));
        for (i, (node, agent)) in nodes.iter().enumerate() {
            command.env(format!("WSTIME_NODE{}", i + 1), format!("127.0.0.1:{node}"));
            command.env(format!("WSTIME_AGENT{}", i + 1), agent.to_string());
        }
        let runtime = tempfile::tempdir().context("a directory for HAProxy's runtime socket")?;
        let admin_socket = runtime.path().join("admin.sock");
        command.env("WSTIME_ADMIN_SOCKET", &admin_socket);
        if let Some(certificate) = certificate {
            command.env("WSTIME_LB_CERT", certificate);
        }
        let process = Supervised::spawn("haproxy", &mut command, echo)?;
        let haproxy = Self { process, port, stats_port, admin_socket, _runtime: runtime };
        haproxy.wait_until_up(nodes.len(), up)?;
        Ok(haproxy)
    }

    /// Waits (at most [`READY_LIMIT`]) until HAProxy knows `servers` instances and sees `up`
    /// of them up: health checks passed `rise` times, so new connections reach them.
    pub fn wait_until_up(&self, servers: usize, up: usize) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_LIMIT;
        loop {
            let states = self.server_states().unwrap_or_default();
            let running = states.iter().filter(|(_, state)| state == "UP").count();
            if states.len() == servers && running == up {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "HAProxy did not see every instance up within {READY_LIMIT:?} ({states:?}):\n{}",
                    self.process.lines().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Asks HAProxy's runtime API `command` (`show servers state`, …) and returns its answer.
    pub fn runtime(&self, command: &str) -> anyhow::Result<String> {
        use std::io::{Read as _, Write as _};
        let mut socket = std::os::unix::net::UnixStream::connect(&self.admin_socket)
            .context("HAProxy's runtime socket")?;
        socket.set_read_timeout(Some(Duration::from_secs(2)))?;
        writeln!(socket, "{command}")?;
        let mut answer = String::new();
        socket.read_to_string(&mut answer)?;
        Ok(answer)
    }

    /// Each instance's weight and administrative state as HAProxy holds them now, from
    /// `show servers state`: (server name, current weight, whether it is in drain).
    pub fn weights(&self) -> anyhow::Result<Vec<(String, u32, bool)>> {
        let answer = self.runtime("show servers state wstime")?;
        let mut lines = answer.lines().filter(|line| !line.trim().is_empty());
        let _version = lines.next().context("no version line")?;
        let header: Vec<&str> =
            lines.next().context("no header")?.trim_start_matches("# ").split(' ').collect();
        let column = |name: &str| header.iter().position(|h| *h == name);
        let (name, weight, admin) = (
            column("srv_name").context("no srv_name")?,
            column("srv_uweight").context("no srv_uweight")?,
            column("srv_admin_state").context("no srv_admin_state")?,
        );
        lines
            .map(|line| {
                let fields: Vec<&str> = line.split(' ').collect();
                let admin: u32 = fields[admin].parse()?;
                // SRV_ADMF_DRAIN (0x08) and its inherited forms (0x10, 0x20).
                Ok((fields[name].to_owned(), fields[weight].parse()?, admin & 0x38 != 0))
            })
            .collect()
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
