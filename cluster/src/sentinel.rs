//! A real Sentinel setup on loopback: a master, its replica, and three `redis-sentinel`
//! processes watching them, with timings short enough that a failover takes seconds (a
//! master is judged down after one second without an answer).

use std::{path::Path, process::Command, time::Duration};

use anyhow::Context as _;
use tempfile::TempDir;

use crate::{
    process::{free_port, poll_until, Supervised},
    redis::{ask, binary, loopback_hosts, Redis, START_LIMIT},
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
    pub port: u16,
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
            .map(|index| Sentinel::start(index, dir.path(), master.port, echo))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let group = Self { servers: vec![master, replica], sentinels, _dir: dir };
        group.wait_until_ready()?;
        Ok(group)
    }

    /// The URL instances use (`REDIS_URL`), in the Lettuce form.
    pub fn url(&self) -> String {
        let sentinels = loopback_hosts(self.sentinels.iter().map(|sentinel| sentinel.port));
        format!("redis-sentinel://{sentinels}/0#{MASTER_NAME}")
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
    /// Starts sentinel number `index`, with its configuration file in `dir`, watching the
    /// master on `master_port`.
    fn start(index: usize, dir: &Path, master_port: u16, echo: bool) -> anyhow::Result<Self> {
        let port = free_port()?;
        let config = dir.join(format!("sentinel{index}.conf"));
        std::fs::write(
            &config,
            format!(
                "port {port}\nbind 127.0.0.1\ndaemonize no\ndir {dir}\n\
                 sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} {QUORUM}\n\
                 sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n\
                 sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n\
                 sentinel parallel-syncs {MASTER_NAME} 1\n",
                dir = dir.display(),
            ),
        )
        .with_context(|| format!("cannot write {}", config.display()))?;
        let mut command = Command::new(binary("redis-sentinel"));
        command.arg(&config);
        let mut process = Supervised::spawn(&format!("sentinel{index}"), &mut command, echo)?;
        process.wait_for_line("+monitor master", START_LIMIT)?;
        Ok(Self { process, port })
    }

    /// Where this sentinel says the master is: (host, port).
    pub fn master(&self) -> anyhow::Result<(String, u16)> {
        let address: Option<(String, u16)> = ask(
            self.port,
            ::redis::cmd("SENTINEL").arg("GET-MASTER-ADDR-BY-NAME").arg(MASTER_NAME),
        )?;
        address.with_context(|| format!("sentinel {} knows no master {MASTER_NAME}", self.port))
    }

    /// How many replicas and other sentinels this sentinel knows of.
    fn known(&self) -> anyhow::Result<(usize, usize)> {
        let fields: std::collections::HashMap<String, String> =
            ask(self.port, ::redis::cmd("SENTINEL").arg("MASTER").arg(MASTER_NAME))?;
        let count = |field: &str| -> anyhow::Result<usize> {
            fields.get(field).and_then(|v| v.parse().ok()).with_context(|| format!("no {field}"))
        };
        Ok((count("num-slaves")?, count("num-other-sentinels")?))
    }
}
