//! A real Redis Cluster on loopback: masters started with `--cluster-enabled yes` and joined
//! by `redis-cli --cluster create`, without replicas.

use std::{process::Command, time::Duration};

use anyhow::{bail, Context as _};
use tempfile::TempDir;

use crate::{
    process::{free_port, poll_until, Supervised},
    redis::{binary, loopback_hosts, Redis},
};

/// How long the nodes may take to agree on the slots once joined.
const READY_LIMIT: Duration = Duration::from_secs(30);
/// How long a node may not answer before the others mark it failed.
const NODE_TIMEOUT_MS: u32 = 2000;

/// The cluster's masters. Dropping it stops them all.
pub struct RedisCluster {
    pub nodes: Vec<Redis>,
    /// The nodes' `nodes.conf` files, which each node writes.
    _config_dir: TempDir,
}

impl RedisCluster {
    /// Starts `masters` nodes (at least three, as `redis-cli --cluster create` requires),
    /// joins them with the slots spread evenly, and waits until every node reports the
    /// cluster ok.
    pub fn start(masters: usize, echo: bool) -> anyhow::Result<Self> {
        Self::start_with(masters, &[], echo)
    }

    /// Like [`Self::start`], with `extra` arguments for every node.
    pub fn start_with(masters: usize, extra: &[String], echo: bool) -> anyhow::Result<Self> {
        let config_dir = tempfile::tempdir().context("a directory for the cluster's nodes")?;
        let mut nodes = Vec::new();
        for index in 1..=masters {
            let port = free_port()?;
            // The bus port is chosen too: the default, port + 10000, may be taken or past 65535.
            let arguments = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                &format!("nodes-{port}.conf"),
                "--cluster-port",
                &free_port()?.to_string(),
                "--cluster-node-timeout",
                &NODE_TIMEOUT_MS.to_string(),
                "--dir",
                &config_dir.path().display().to_string(),
            ]
            .map(String::from);
            let arguments = [&arguments[..], extra].concat();
            nodes.push(Redis::start_with(&format!("redis-node{index}"), port, &arguments, echo)?);
        }
        let mut create = Command::new(binary("redis-cli"));
        create
            .args(["--cluster", "create"])
            .args(nodes.iter().map(|node| format!("127.0.0.1:{}", node.port)))
            .args(["--cluster-replicas", "0", "--cluster-yes"]);
        let mut creating = Supervised::spawn("redis-cli", &mut create, echo)?;
        let status = creating.wait_exit(READY_LIMIT)?;
        if !status.success() {
            bail!("redis-cli --cluster create failed ({status}):\n{}", creating.lines().join("\n"));
        }
        let cluster = Self { nodes, _config_dir: config_dir };
        cluster.wait_until_ready()?;
        Ok(cluster)
    }

    /// The URL instances use (`REDIS_URL`): every node, as seeds.
    pub fn url(&self) -> String {
        format!("redis-cluster://{}", loopback_hosts(self.nodes.iter().map(|node| node.port)))
    }

    fn wait_until_ready(&self) -> anyhow::Result<()> {
        let ready = format!("ok {}", self.nodes.len());
        poll_until("every node reporting the cluster ok", READY_LIMIT, || {
            let states: Vec<String> = self.nodes.iter().map(Self::state).collect();
            if states.iter().all(|state| *state == ready) {
                Ok(())
            } else {
                Err(states)
            }
        })
    }

    /// A node's view: its `cluster_state` and how many nodes it knows, or why it did not say.
    fn state(node: &Redis) -> String {
        match node.ask::<String>(::redis::cmd("CLUSTER").arg("INFO")) {
            Ok(info) => {
                let field = |name: &str| {
                    info.lines()
                        .find_map(|line| line.strip_prefix(name))
                        .unwrap_or("?")
                        .trim()
                        .to_owned()
                };
                format!("{} {}", field("cluster_state:"), field("cluster_known_nodes:"))
            }
            Err(error) => format!("{error:#}"),
        }
    }
}
