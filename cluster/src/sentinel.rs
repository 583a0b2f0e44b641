//! A real Sentinel setup on loopback, or each part on a lab host of its own: a master, its
//! replica, and three `redis-sentinel` processes watching them, with timings short enough
//! that a failover takes seconds (a master is judged down after one second without an
//! answer).

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::Path,
    process::Command,
    time::Duration,
};

use anyhow::Context as _;
use tempfile::TempDir;

use crate::{
    lab::Host,
    process::{free_port, poll_until, Supervised},
    redis::{ask_in, binary, Redis, START_LIMIT},
};

/// The name the sentinels know the master by (the `#…` of the URL).
pub const MASTER_NAME: &str = "wstime";
/// How long a master may not answer before a sentinel thinks it down (Redis's default is
/// 30 s; a test wants the failover within seconds).
const DOWN_AFTER_MS: u32 = 1000;
/// How long a failover may take before the sentinels try another.
const FAILOVER_TIMEOUT_MS: u32 = 3000;
/// How many sentinels must agree that the master is down.
const QUORUM: usize = 2;
/// How long the sentinels may take to find the replica and each other (they announce
/// themselves to each other every two seconds).
const READY_LIMIT: Duration = Duration::from_secs(30);
/// The ports of a group in the lab, where each part has its host's ports to itself.
const LAB_SERVER_PORT: u16 = 6379;
const LAB_SENTINEL_PORT: u16 = 26379;

/// A master, a replica and three sentinels. Dropping it stops them all.
pub struct SentinelGroup {
    /// The first master, then its replica. After a failover the roles are swapped:
    /// [`Self::master_port`] says which is the master now.
    pub servers: Vec<Redis>,
    pub sentinels: Vec<Sentinel>,
    /// The processes' files: the sentinels' configuration (which they rewrite as they learn
    /// the topology) and the servers' data directories.
    _dir: TempDir,
}

/// One `redis-sentinel` process.
pub struct Sentinel {
    pub process: Supervised,
    /// The address it listens on: 127.0.0.1, or its lab host's.
    pub host: IpAddr,
    pub port: u16,
    /// The lab host it runs in, whose namespace questions to it are asked from.
    lab_host: Option<Host>,
}

impl SentinelGroup {
    /// Starts the master, then its replica, then the sentinels, and waits until every
    /// sentinel knows the replica and the other two sentinels (before that, a failover
    /// could not happen).
    pub fn start(echo: bool) -> anyhow::Result<Self> {
        Self::start_with(&[], echo)
    }

    /// Like [`Self::start`], with `extra` arguments for both servers (not the sentinels).
    pub fn start_with(extra: &[String], echo: bool) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("a directory for the Sentinel group")?;
        // Each server gets a directory of its own: a replica writes the data it syncs there.
        let server_dir = |name: &str| -> anyhow::Result<String> {
            let path = dir.path().join(name);
            std::fs::create_dir(&path)?;
            Ok(path.display().to_string())
        };
        let master_args = [&["--dir".to_owned(), server_dir("master")?], extra].concat();
        let master = Redis::start_with("redis-master", free_port()?, &master_args, echo)?;
        let replica_args = [
            &[
                "--dir".to_owned(),
                server_dir("replica")?,
                "--replicaof".to_owned(),
                "127.0.0.1".to_owned(),
                master.port.to_string(),
            ],
            extra,
        ]
        .concat();
        let mut replica = Redis::start_with("redis-replica", free_port()?, &replica_args, echo)?;
        replica
            .process
            .wait_for_line("MASTER <-> REPLICA sync: Finished with success", START_LIMIT)?;
        let sentinels = (1..=3)
            .map(|index| {
                let command = Command::new(binary("redis-sentinel"));
                let bind = (Ipv4Addr::LOCALHOST.into(), free_port()?);
                Sentinel::start(index, command, None, bind, dir.path(), master.address(), echo)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let group = Self { servers: vec![master, replica], sentinels, _dir: dir };
        group.wait_until_ready()?;
        Ok(group)
    }

    /// Starts the group with each part on a lab host of its own: the master on `master`, its
    /// replica on `replica`, a sentinel on each of `sentinels`, each on its host's address
    /// with Redis's own ports (6379, 26379), so that every link between them can be cut.
    pub fn start_in(
        master: &Host,
        replica: &Host,
        sentinels: &[Host; 3],
        echo: bool,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("a directory for the Sentinel group")?;
        let server_dir = |name: &str| -> anyhow::Result<String> {
            let path = dir.path().join(name);
            std::fs::create_dir(&path)?;
            Ok(path.display().to_string())
        };
        let master_args = ["--dir".to_owned(), server_dir("master")?];
        let master = Redis::start_in("redis-master", master, LAB_SERVER_PORT, &master_args, echo)?;
        let replica_args = [
            "--dir".to_owned(),
            server_dir("replica")?,
            "--replicaof".to_owned(),
            master.host.to_string(),
            master.port.to_string(),
        ];
        let mut replica =
            Redis::start_in("redis-replica", replica, LAB_SERVER_PORT, &replica_args, echo)?;
        replica
            .process
            .wait_for_line("MASTER <-> REPLICA sync: Finished with success", START_LIMIT)?;
        let sentinels = sentinels
            .iter()
            .enumerate()
            .map(|(index, host)| {
                let command = host.command(binary("redis-sentinel"));
                let bind = (host.ip(), LAB_SENTINEL_PORT);
                let at = Some(host.clone());
                Sentinel::start(index + 1, command, at, bind, dir.path(), master.address(), echo)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let group = Self { servers: vec![master, replica], sentinels, _dir: dir };
        group.wait_until_ready()?;
        Ok(group)
    }

    /// The URL instances use (`REDIS_URL`), in the Lettuce form.
    pub fn url(&self) -> String {
        let sentinels: Vec<String> =
            self.sentinels.iter().map(|sentinel| sentinel.address().to_string()).collect();
        format!("redis-sentinel://{}/0#{MASTER_NAME}", sentinels.join(","))
    }

    /// The port of the server the first sentinel that answers names as the master now.
    pub fn master_port(&self) -> anyhow::Result<u16> {
        let mut last = None;
        for sentinel in &self.sentinels {
            match sentinel.master() {
                Ok((_, port)) => return Ok(port),
                Err(error) => last = Some(error),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("a group without sentinels")))
    }

    fn wait_until_ready(&self) -> anyhow::Result<()> {
        let others = self.sentinels.len() - 1;
        let what = "every sentinel knowing the replica and the other sentinels";
        poll_until(what, READY_LIMIT, || {
            let views: Vec<anyhow::Result<(usize, usize)>> =
                self.sentinels.iter().map(Sentinel::known).collect();
            let ready = |view: &anyhow::Result<(usize, usize)>| {
                view.as_ref().is_ok_and(|&(replicas, known)| replicas >= 1 && known >= others)
            };
            if views.iter().all(ready) {
                Ok(())
            } else {
                Err(views)
            }
        })
    }
}

impl Sentinel {
    /// Starts sentinel number `index` with `command` (redis-sentinel, perhaps inside the lab
    /// host `lab_host`) on `bind`, with its configuration file in `dir`, watching the master
    /// at `master`.
    fn start(
        index: usize,
        mut command: Command,
        lab_host: Option<Host>,
        (host, port): (IpAddr, u16),
        dir: &Path,
        master: SocketAddr,
        echo: bool,
    ) -> anyhow::Result<Self> {
        let config = dir.join(format!("sentinel{index}.conf"));
        // Protected mode off: a sentinel bound to a lab host's address is asked from others.
        std::fs::write(
            &config,
            format!(
                "port {port}\nbind {host}\nprotected-mode no\ndaemonize no\ndir {dir}\n\
                 sentinel monitor {MASTER_NAME} {master_host} {master_port} {QUORUM}\n\
                 sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n\
                 sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n\
                 sentinel parallel-syncs {MASTER_NAME} 1\n",
                dir = dir.display(),
                master_host = master.ip(),
                master_port = master.port(),
            ),
        )
        .with_context(|| format!("cannot write {}", config.display()))?;
        command.arg(&config);
        let mut process = Supervised::spawn(&format!("sentinel{index}"), &mut command, echo)?;
        process.wait_for_line("+monitor master", START_LIMIT)?;
        Ok(Self { process, host, port, lab_host })
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }

    /// Asks it one question (from inside its lab host, if it runs in one).
    fn ask<T: ::redis::FromRedisValue + Send>(&self, question: &::redis::Cmd) -> anyhow::Result<T> {
        ask_in(self.lab_host.as_ref(), self.address(), question)
    }

    /// Where this sentinel says the master is: (host, port).
    pub fn master(&self) -> anyhow::Result<(String, u16)> {
        let address: Option<(String, u16)> =
            self.ask(::redis::cmd("SENTINEL").arg("GET-MASTER-ADDR-BY-NAME").arg(MASTER_NAME))?;
        address
            .with_context(|| format!("sentinel {} knows no master {MASTER_NAME}", self.address()))
    }

    /// How many replicas and other sentinels this sentinel knows of.
    fn known(&self) -> anyhow::Result<(usize, usize)> {
        let fields: std::collections::HashMap<String, String> =
            self.ask(::redis::cmd("SENTINEL").arg("MASTER").arg(MASTER_NAME))?;
        let count = |field: &str| -> anyhow::Result<usize> {
            fields.get(field).and_then(|v| v.parse().ok()).with_context(|| format!("no {field}"))
        };
        Ok((count("num-slaves")?, count("num-other-sentinels")?))
    }
}
