//! The deployment every scenario of this crate starts in a fresh lab: clients, HAProxy
//! (deploy/haproxy.cfg), three instances and one Redis (or a Sentinel group: master, replica
//! and three sentinels), each on a host of its own, so every link between them can be cut
//! on its own and every peer sees a real remote address.

use std::{net::SocketAddr, path::PathBuf};

use anyhow::Context as _;
use wstime_cluster::{
    haproxy::{HaProxy, Servers},
    lab::{Host, Lab},
    paths, Instance, InstanceSpec, Redis, SentinelGroup,
};

/// Where the instances listen, each in its own host.
pub const INSTANCE_PORT: u16 = 8080;
/// Where each instance answers HAProxy's agent check.
pub const AGENT_PORT: u16 = 9090;
/// Where HAProxy takes clients.
pub const BALANCER_PORT: u16 = 80;
/// Redis's port on its host.
pub const REDIS_PORT: u16 = 6379;
/// How many instances the deployment has.
pub const INSTANCES: usize = 3;

/// The programs a deployment runs, built beside the running binary (`cargo build` of the
/// server and the bench crate, or `make chaos`'s release build).
#[derive(Debug, Clone)]
pub struct Binaries {
    pub server: PathBuf,
    pub loadgen: PathBuf,
}

impl Binaries {
    /// The server and load generator beside the running binary; an error naming the command
    /// that builds them when they are not there.
    pub fn built() -> anyhow::Result<Self> {
        let binaries = Self {
            server: paths::built_binary("wstime-server"),
            loadgen: paths::built_binary("wstime-loadgen"),
        };
        for binary in [&binaries.server, &binaries.loadgen] {
            if !binary.is_file() {
                anyhow::bail!(
                    "{} is not built: run `cargo build -p wstime-server -p wstime-bench` (with \
                     --release for a release run) first",
                    binary.display()
                );
            }
        }
        Ok(binaries)
    }
}

/// A running deployment. Its fields drop in order: the processes, then the lab (which kills
/// whatever is left in its hosts anyway, then deletes them).
pub struct Deployment {
    pub haproxy: HaProxy,
    pub instances: Vec<Instance>,
    pub store: Store,
    /// The clients' host: the load generator and the probes run here.
    pub clients: Host,
    pub balancer: Host,
    /// The instances' hosts, in the order of [`Self::instances`].
    pub nodes: Vec<Host>,
    /// Redis's host; with Sentinel, the first master's.
    pub redis_host: Host,
    /// With Sentinel: the replica's host, then the three sentinels'; empty otherwise.
    pub sentinel_hosts: Vec<Host>,
    pub binaries: Binaries,
    /// The page's directory: a stand-in page, as the scenarios need only the WebSocket.
    _static_dir: tempfile::TempDir,
    pub lab: Lab,
}

/// The session store the instances share.
pub enum Store {
    /// One Redis.
    Single(Redis),
    /// A Sentinel group, its parts on hosts of their own.
    Sentinel(SentinelGroup),
}

impl Deployment {
    /// Makes the lab and starts Redis, the instances (with `env` on top of the deployment's
    /// own: a shorter idle timeout, say) and HAProxy, and waits until HAProxy sees every
    /// instance up.
    pub fn start(env: &[(&str, &str)]) -> anyhow::Result<Self> {
        Self::start_with(env, false)
    }

    /// Like [`Self::start`], with a Sentinel group for the store: the master on the `redis`
    /// host, the replica and the three sentinels on hosts of their own, and `REDIS_URL` in
    /// the Sentinel form (`redis-sentinel://…#wstime`).
    pub fn start_sentinel(env: &[(&str, &str)]) -> anyhow::Result<Self> {
        Self::start_with(env, true)
    }

    fn start_with(env: &[(&str, &str)], sentinel: bool) -> anyhow::Result<Self> {
        let binaries = Binaries::built()?;
        let mut lab = Lab::new()?;
        let clients = lab.add_host("clients")?;
        let balancer = lab.add_host("haproxy")?;
        let redis_host = lab.add_host("redis")?;
        let nodes = (1..=INSTANCES)
            .map(|n| lab.add_host(&format!("node{n}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let (store, sentinel_hosts) = if sentinel {
            let replica = lab.add_host("replica")?;
            let watchers = [
                lab.add_host("sentinel1")?,
                lab.add_host("sentinel2")?,
                lab.add_host("sentinel3")?,
            ];
            let group = SentinelGroup::start_in(&redis_host, &replica, &watchers, false)?;
            let [first, second, third] = watchers;
            (Store::Sentinel(group), vec![replica, first, second, third])
        } else {
            let redis = Redis::start_in("redis", &redis_host, REDIS_PORT, &[], false)?;
            (Store::Single(redis), Vec::new())
        };
        let static_dir = tempfile::tempdir().context("a directory for STATIC_DIR")?;
        std::fs::write(static_dir.path().join("index.html"), "<!doctype html><title>lab</title>")
            .context("the lab's stand-in page")?;
        let spec = InstanceSpec {
            binary: binaries.server.clone(),
            static_dir: static_dir.path().to_owned(),
            env: Vec::new(),
            echo: false,
        };
        let url = match &store {
            Store::Single(redis) => redis.url(),
            Store::Sentinel(group) => group.url(),
        };
        let (proxy, agent) = (balancer.address().to_string(), AGENT_PORT.to_string());
        let mut instances = Vec::new();
        for (n, node) in nodes.iter().enumerate() {
            let name = format!("node{}", n + 1);
            let mut all: Vec<(&str, &str)> = vec![
                ("SERVER_NAME", &name),
                ("REDIS_URL", &url),
                ("TRUSTED_PROXIES", &proxy),
                ("AGENT_PORT", &agent),
                // Every client of the lab comes from the one clients' host, where a
                // deployment's come from many addresses: the per-address limits would
                // measure that, not the fault (200 sockets opened at once while the store
                // waits out its 500 ms limit are 200 pending handshakes from one address).
                ("MAX_CONNECTIONS_PER_CLIENT", "0"),
                ("CONNECT_RATE_PER_CLIENT", "0"),
                // Likewise the share of the handshake pool: a load generator connecting to
                // an instance directly has up to 200 handshakes in flight from that one
                // address (the first realistic slow-link run: 740 of 3,300 connected).
                ("MAX_PENDING_HANDSHAKES_PER_CLIENT", "0"),
            ];
            all.extend_from_slice(env);
            instances.push(spec.start_in(&name, node, INSTANCE_PORT, &all)?);
        }
        let servers = Servers::Listed(
            nodes
                .iter()
                .map(|node| (SocketAddr::new(node.ip(), INSTANCE_PORT), AGENT_PORT))
                .collect(),
        );
        let config = paths::workspace().join("deploy/haproxy.cfg");
        let haproxy =
            HaProxy::start_in(&balancer, &config, BALANCER_PORT, &servers, INSTANCES, &[], false)?;
        Ok(Self {
            haproxy,
            instances,
            store,
            clients,
            balancer,
            nodes,
            redis_host,
            sentinel_hosts,
            binaries,
            _static_dir: static_dir,
            lab,
        })
    }

    /// The WebSocket URL of HAProxy, as clients use it.
    pub fn url(&self) -> String {
        format!("ws://{}:{BALANCER_PORT}/", self.balancer.address())
    }

    /// The address of instance `n` (0-based).
    pub fn instance(&self, n: usize) -> SocketAddr {
        SocketAddr::new(self.nodes[n].ip(), INSTANCE_PORT)
    }

    /// The WebSocket URL of instance `n` (0-based), past HAProxy.
    pub fn instance_url(&self, n: usize) -> String {
        format!("ws://{}/", self.instance(n))
    }
}
