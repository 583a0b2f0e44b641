//! A real HAProxy in front of the instances, running deploy/'s configuration unchanged: the
//! rules of `haproxy-common.cfg`, then the file that names the servers (`haproxy.cfg`, which
//! lists them, or `haproxy-dns.cfg`, which resolves a name). The addresses reach it through
//! the environment variables those files read.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _};

use crate::{
    http,
    lab::Host,
    process::{free_port, Supervised},
};

/// Where HAProxy's status page listens inside a lab host (which has every port to itself).
const LAB_STATS_PORT: u16 = 8404;

/// How long HAProxy may take to start and see every instance healthy.
const READY_LIMIT: Duration = Duration::from_secs(20);

/// The rules every file of servers is loaded after: it sits beside them in deploy/.
pub const COMMON_CONFIG: &str = "haproxy-common.cfg";

/// The instances, as the file of servers is told of them.
#[derive(Debug, Clone)]
pub enum Servers {
    /// `haproxy.cfg`: each instance's address and its agent check's port (`WSTIME_NODE1`
    /// and `WSTIME_AGENT1`, …; nine at most).
    Listed(Vec<(SocketAddr, u16)>),
    /// `haproxy-dns.cfg`: the instances are the A records of `name`, which `nameserver`
    /// answers, all listening on `port` with their agent check on `agent_port`; HAProxy has
    /// room for `room` of them.
    Dns { name: String, nameserver: SocketAddr, port: u16, agent_port: u16, room: usize },
}

impl Servers {
    /// How many servers the backend has, up or not.
    pub fn count(&self) -> usize {
        match self {
            Self::Listed(nodes) => nodes.len(),
            Self::Dns { room, .. } => *room,
        }
    }

    /// The environment variables the file of servers reads.
    fn environment(&self) -> Vec<(String, String)> {
        match self {
            Self::Listed(nodes) => nodes
                .iter()
                .enumerate()
                .flat_map(|(i, (address, agent))| {
                    [
                        (format!("WSTIME_NODE{}", i + 1), address.to_string()),
                        (format!("WSTIME_AGENT{}", i + 1), agent.to_string()),
                    ]
                })
                .collect(),
            Self::Dns { name, nameserver, port, agent_port, room } => [
                ("WSTIME_DNS_NAME", name.clone()),
                ("WSTIME_DNS_SERVER", nameserver.to_string()),
                ("WSTIME_NODE_PORT", port.to_string()),
                ("WSTIME_AGENT_PORT", agent_port.to_string()),
                ("WSTIME_INSTANCES_MAX", room.to_string()),
            ]
            .map(|(name, value)| (name.to_owned(), value))
            .to_vec(),
        }
    }
}

/// Where HAProxy listens: clients on `address`:`port`, its status page on its host's
/// loopback at `stats_port`.
struct Listen {
    address: IpAddr,
    port: u16,
    stats_port: u16,
}

/// One server of the backend as HAProxy holds it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// Its name in the configuration (`node1`).
    pub name: String,
    /// The instance it sends to; `None` while it has no address (a server of
    /// `haproxy-dns.cfg` with no record to take).
    pub address: Option<SocketAddr>,
    /// Its state on the status page: `UP`, `DOWN`, `MAINT (resolution)` (no address), …
    pub status: String,
}

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
    /// The lab host it runs in, from inside which its status page is read.
    lab_host: Option<Host>,
}

impl HaProxy {
    /// Starts HAProxy with [`COMMON_CONFIG`] and then `config` (the file of servers beside
    /// it) on `port` (0: any free port) in front of `servers`, with `env` on top (a variable
    /// the files read, such as `WSTIME_DNS_HOLD_OBSOLETE`), serving TLS with `certificate`
    /// (certificate and key in one PEM) when given, and waits until it reports `up` of them
    /// up (the others may not be started yet).
    pub fn start(
        config: &Path,
        port: u16,
        servers: &Servers,
        up: usize,
        certificate: Option<&Path>,
        env: &[(String, String)],
        echo: bool,
    ) -> anyhow::Result<Self> {
        let port = if port == 0 { free_port()? } else { port };
        let listen = Listen { address: Ipv4Addr::LOCALHOST.into(), port, stats_port: free_port()? };
        let command = Command::new("haproxy");
        let haproxy = Self::launch(command, config, listen, servers, certificate, env, echo)?;
        haproxy.wait_until_up(servers.count(), up)?;
        Ok(haproxy)
    }

    /// Starts HAProxy in the lab host `host`, listening on its address:`port` (its status
    /// page on the host's loopback), in front of `servers` in other hosts, with `env` on top,
    /// and waits until it reports `up` of them up.
    pub fn start_in(
        host: &Host,
        config: &Path,
        port: u16,
        servers: &Servers,
        up: usize,
        env: &[(String, String)],
        echo: bool,
    ) -> anyhow::Result<Self> {
        let listen = Listen { address: host.ip(), port, stats_port: LAB_STATS_PORT };
        let command = host.command("haproxy");
        let mut haproxy = Self::launch(command, config, listen, servers, None, env, echo)?;
        haproxy.lab_host = Some(host.clone());
        haproxy.wait_until_up(servers.count(), up)?;
        Ok(haproxy)
    }

    /// Runs `command` (haproxy, perhaps inside a lab host) with [`COMMON_CONFIG`] and then
    /// `config`, listening as `listen` says.
    fn launch(
        mut command: Command,
        config: &Path,
        listen: Listen,
        servers: &Servers,
        certificate: Option<&Path>,
        env: &[(String, String)],
        echo: bool,
    ) -> anyhow::Result<Self> {
        if let Servers::Listed(nodes) = servers {
            if nodes.len() > 9 {
                bail!("deploy/haproxy.cfg has room for 9 instances, not {}", nodes.len());
            }
        }
        let common = config.with_file_name(COMMON_CONFIG);
        if !common.is_file() {
            bail!("{} loads after {COMMON_CONFIG}, which is not beside it", config.display());
        }
        let Listen { address, port, stats_port } = listen;
        command
            .arg("-db")
            .arg("-f")
            .arg(&common)
            .arg("-f")
            .arg(config)
            .env("WSTIME_LB_BIND", SocketAddr::new(address, port).to_string())
            .env("WSTIME_STATS_BIND", format!("127.0.0.1:{stats_port}"))
            .envs(servers.environment())
            .envs(env.iter().map(|(name, value)| (name, value)));
        let runtime = tempfile::tempdir().context("a directory for HAProxy's runtime socket")?;
        let admin_socket = runtime.path().join("admin.sock");
        command.env("WSTIME_ADMIN_SOCKET", &admin_socket);
        if let Some(certificate) = certificate {
            command.env("WSTIME_LB_CERT", certificate);
        }
        let process = Supervised::spawn("haproxy", &mut command, echo)?;
        Ok(Self { process, port, stats_port, admin_socket, _runtime: runtime, lab_host: None })
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

    /// `show servers state wstime`: one map of column to value per server.
    fn servers_state(&self) -> anyhow::Result<Vec<BTreeMap<String, String>>> {
        parse_servers_state(&self.runtime("show servers state wstime")?)
    }

    /// Each instance's weight and administrative state as HAProxy holds them now, from
    /// `show servers state`: (server name, current weight, whether it is in drain).
    pub fn weights(&self) -> anyhow::Result<Vec<(String, u32, bool)>> {
        self.servers_state()?
            .into_iter()
            .map(|server| {
                let field = |name: &str| server.get(name).with_context(|| format!("no {name}"));
                let admin: u32 = field("srv_admin_state")?.parse()?;
                // SRV_ADMF_FDRAIN (0x08, an agent's `drain` too) or SRV_ADMF_IDRAIN (0x10,
                // inherited). Not 0x20: that is SRV_ADMF_RMAINT, maintenance for want of
                // an address (a server of haproxy-dns.cfg with no record to take).
                let drain = admin & 0x18 != 0;
                Ok((field("srv_name")?.clone(), field("srv_uweight")?.parse()?, drain))
            })
            .collect()
    }

    /// Every server of the backend: its name, the address it has (from `show servers
    /// state`) and its state (from the status page).
    pub fn servers(&self) -> anyhow::Result<Vec<Server>> {
        let states = self.server_states()?;
        let addresses = self.servers_state()?;
        Ok(states
            .into_iter()
            .map(|(name, status)| {
                let address = addresses
                    .iter()
                    .find(|server| server.get("srv_name") == Some(&name))
                    .and_then(server_address);
                Server { name, address, status }
            })
            .collect())
    }

    /// How HAProxy sees each server: (server name, `UP`/`DOWN`/…), from its status CSV.
    pub fn server_states(&self) -> anyhow::Result<Vec<(String, String)>> {
        let ask =
            || http::request("GET", self.stats_port, "/;csv", "text/plain", Duration::from_secs(2));
        let csv = match &self.lab_host {
            Some(host) => host.enter(ask)??,
            None => ask()?,
        }
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

/// Reads `show servers state`: a version line, a header of column names, and a line of
/// values per server.
fn parse_servers_state(answer: &str) -> anyhow::Result<Vec<BTreeMap<String, String>>> {
    let mut lines = answer.lines().filter(|line| !line.trim().is_empty());
    let _version = lines.next().context("no version line")?;
    let header: Vec<&str> =
        lines.next().context("no header")?.trim_start_matches("# ").split(' ').collect();
    Ok(lines
        .map(|line| {
            let values = line.split(' ').map(str::to_owned);
            header.iter().map(|name| (*name).to_owned()).zip(values).collect()
        })
        .collect())
}

/// A server's address, from its `show servers state` line: none while it has none (`-`).
fn server_address(server: &BTreeMap<String, String>) -> Option<SocketAddr> {
    let host: std::net::IpAddr = server.get("srv_addr")?.parse().ok()?;
    let port: u16 = server.get("srv_port")?.parse().ok()?;
    Some(SocketAddr::new(host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What HAProxy 2.6 answered for haproxy-dns.cfg with two records and room for three.
    const STATE: &str = "1\n\
        # be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight \
        srv_iweight srv_time_since_last_change srv_check_status srv_check_result \
        srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id \
        srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr \
        srv_agent_port\n\
        4 wstime 1 node1 127.0.0.12 2 0 100 100 26 15 3 3 6 22 0 0 wstime-headless.test 18080 - 0 0 - - 19090\n\
        4 wstime 2 node2 127.0.0.13 2 8 37 100 4 15 3 3 6 22 0 0 wstime-headless.test 18080 - 0 0 - - 19090\n\
        4 wstime 3 node3 - 0 32 100 100 26 1 0 0 14 22 0 0 wstime-headless.test 18080 - 0 0 - - 19090\n\n";

    #[test]
    fn servers_state_gives_each_server_its_address_or_none() {
        let servers = parse_servers_state(STATE).unwrap();
        let addresses: Vec<_> = servers.iter().map(server_address).collect();
        assert_eq!(
            addresses,
            [
                Some("127.0.0.12:18080".parse().unwrap()),
                Some("127.0.0.13:18080".parse().unwrap()),
                None
            ]
        );
        assert_eq!(servers[1]["srv_uweight"], "37");
        assert_eq!(servers[2]["srv_admin_state"], "32", "maintenance for want of an address");
    }
}
