//! The Redis a cluster's instances share: one redis-server, a Sentinel group (master,
//! replica and three sentinels) or a Redis Cluster (three masters); the `REDIS_URL` that
//! names it, and its topology as `wstime-cluster status` shows it, asked of each process.

use serde::{Deserialize, Serialize};

use crate::{
    process::Supervised,
    redis::{ask, Redis},
    redis_cluster::RedisCluster,
    sentinel::{SentinelGroup, MASTER_NAME},
};

/// Which kind of Redis to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
pub enum RedisSetup {
    /// One redis-server.
    Single,
    /// A master, a replica and three sentinels.
    Sentinel,
    /// A Redis Cluster of three masters.
    Cluster,
}

/// The running Redis processes.
pub enum SharedRedis {
    Single(Redis),
    Sentinel(SentinelGroup),
    Cluster(RedisCluster),
}

/// One Redis process, as the cluster's status reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RedisProcessStatus {
    /// What it was started as: `redis`, `master`, `replica`, `sentinel1`…, `node1`….
    pub label: String,
    pub port: u16,
    /// Its process id while it runs.
    pub pid: Option<u32>,
    /// What it says it is now (`master`, `replica of 127.0.0.1:6380`, `sentinel: master
    /// 127.0.0.1:6380`), or why it did not say.
    pub role: String,
    /// How many keys a server holds.
    pub keys: Option<u64>,
}

impl SharedRedis {
    /// Starts `setup`.
    pub fn start(setup: RedisSetup, echo: bool) -> anyhow::Result<Self> {
        Ok(match setup {
            RedisSetup::Single => Self::Single(Redis::start(echo)?),
            RedisSetup::Sentinel => Self::Sentinel(SentinelGroup::start(echo)?),
            RedisSetup::Cluster => Self::Cluster(RedisCluster::start(3, echo)?),
        })
    }

    /// The `REDIS_URL` every instance gets.
    pub fn url(&self) -> String {
        match self {
            Self::Single(redis) => redis.url(),
            Self::Sentinel(group) => group.url(),
            Self::Cluster(cluster) => cluster.url(),
        }
    }

    /// Every process, and what each says it is right now.
    pub fn topology(&mut self) -> Vec<RedisProcessStatus> {
        let mut processes: Vec<(String, &mut Supervised, u16, bool)> = Vec::new();
        match self {
            Self::Single(redis) => {
                processes.push(("redis".into(), &mut redis.process, redis.port, false))
            }
            Self::Sentinel(group) => {
                // Labelled as started; after a failover their roles say otherwise.
                for (label, server) in ["master", "replica"].into_iter().zip(&mut group.servers) {
                    processes.push((label.into(), &mut server.process, server.port, false));
                }
                for (index, sentinel) in group.sentinels.iter_mut().enumerate() {
                    let label = format!("sentinel{}", index + 1);
                    processes.push((label, &mut sentinel.process, sentinel.port, true));
                }
            }
            Self::Cluster(cluster) => {
                for (index, node) in cluster.nodes.iter_mut().enumerate() {
                    processes.push((
                        format!("node{}", index + 1),
                        &mut node.process,
                        node.port,
                        false,
                    ));
                }
            }
        }
        processes
            .into_iter()
            .map(|(label, process, port, sentinel)| {
                if let Some(status) = process.try_wait() {
                    let role = format!("stopped ({status})");
                    return RedisProcessStatus { label, port, pid: None, role, keys: None };
                }
                let pid = Some(process.pid());
                let role = if sentinel { sentinel_view(port) } else { server_role(port) };
                let keys = if sentinel { None } else { ask(port, &::redis::cmd("DBSIZE")).ok() };
                RedisProcessStatus { label, port, pid, role, keys }
            })
            .collect()
    }
}

/// What a server says it is.
fn server_role(port: u16) -> String {
    match ask::<::redis::Role>(port, &::redis::cmd("ROLE")) {
        Ok(::redis::Role::Primary { replicas, .. }) => match replicas.len() {
            0 => "master".into(),
            n => format!("master of {n} replica{}", if n == 1 { "" } else { "s" }),
        },
        Ok(::redis::Role::Replica { primary_ip, primary_port, replication_state, .. }) => {
            format!("replica of {primary_ip}:{primary_port} ({replication_state})")
        }
        Ok(other) => format!("{other:?}"),
        Err(error) => format!("no answer: {error:#}"),
    }
}

/// Which server a sentinel names as the master.
fn sentinel_view(port: u16) -> String {
    let question = ::redis::cmd("SENTINEL").arg("GET-MASTER-ADDR-BY-NAME").arg(MASTER_NAME).clone();
    match ask::<Option<(String, u16)>>(port, &question) {
        Ok(Some((host, master))) => format!("sentinel: master {host}:{master}"),
        Ok(None) => format!("sentinel: knows no master {MASTER_NAME}"),
        Err(error) => format!("no answer: {error:#}"),
    }
}
