//! A cluster: wstime instances on loopback ports, which can be signalled and restarted.

use std::{path::PathBuf, time::Duration};

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};
use wstime_protocol::InstanceEntry;

use crate::{
    haproxy::HaProxy,
    instance::{Instance, InstanceSpec},
    process::free_port,
    prometheus::{Prometheus, Target},
    registry,
    shared_redis::{RedisProcessStatus, RedisSetup, SharedRedis},
    tls::Certificates,
};

/// How long a signalled instance may take to exit (a drain takes grace + window).
const EXIT_LIMIT: Duration = Duration::from_secs(60);

/// What to start.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    pub instance: InstanceSpec,
    /// How many instances to start.
    pub instances: usize,
    /// How many more to make room for without starting them: their ports are chosen and
    /// HAProxy knows them (down until [`Cluster::restart`] starts one), as a scale-out
    /// needs.
    pub standby: usize,
    /// Start this kind of Redis and point every instance at it (`REDIS_URL`).
    pub redis: Option<RedisSetup>,
    /// Put HAProxy in front of the instances.
    pub haproxy: Option<HaProxySpec>,
    /// Scrape every instance with a real Prometheus.
    pub prometheus: Option<PrometheusSpec>,
}

/// Where HAProxy's configuration is and which port it listens on.
#[derive(Debug, Clone)]
pub struct HaProxySpec {
    /// `deploy/haproxy.cfg`.
    pub config: PathBuf,
    /// The port clients connect to (0: any free port).
    pub port: u16,
    /// Serve HTTPS and WSS, with a certificate made at start for loopback.
    pub tls: bool,
}

/// What Prometheus evaluates besides scraping.
#[derive(Debug, Clone, Default)]
pub struct PrometheusSpec {
    /// A rule file to load (`deploy/prometheus-alerts.yml`), so its alerts can be watched.
    pub rules: Option<PathBuf>,
}

/// The running processes. Dropping it stops them all.
pub struct Cluster {
    spec: ClusterSpec,
    /// Prometheus, when the instances are scraped. Declared first so it is stopped first
    /// and records no instance's end as an outage.
    prometheus: Option<Prometheus>,
    /// The shared Redis, when sessions are shared.
    redis: Option<SharedRedis>,
    /// The load balancer, when there is one. Declared before the instances' slots so it is
    /// dropped (stopped) first.
    haproxy: Option<HaProxy>,
    /// The load balancer's certificate, when it serves TLS.
    certificate: Option<Certificates>,
    /// One slot per instance ever started; a slot keeps its port across restarts.
    instances: Vec<Slot>,
}

struct Slot {
    port: u16,
    /// Where its agent check is answered (`AGENT_PORT`): the same across restarts, as
    /// HAProxy was told.
    agent_port: u16,
    current: Option<Instance>,
    /// The exit status of the last process in this slot, once it ended.
    last_exit: Option<String>,
    /// Whether a process has ever run in it: Prometheus scrapes only such slots, so a
    /// standby slot is not reported as an instance gone.
    started: bool,
}

/// The whole cluster as the control API reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// Where to open the page (through HAProxy).
    pub balancer: Option<String>,
    /// HAProxy's status page.
    pub balancer_stats: Option<String>,
    /// Prometheus's web UI, when it scrapes the instances.
    #[serde(default)]
    pub prometheus: Option<String>,
    /// The `REDIS_URL` the instances share.
    pub redis: Option<String>,
    /// Every Redis process and what it says it is now.
    #[serde(default)]
    pub redis_processes: Vec<RedisProcessStatus>,
    pub instances: Vec<InstanceStatus>,
    /// Instances the registry lists that no running slot holds: one killed a moment ago
    /// (it leaves within the registry's TTL), or one this tool did not start.
    #[serde(default)]
    pub unknown: Vec<InstanceEntry>,
}

/// One instance this tool started, with what the registry and HAProxy say of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstanceStatus {
    #[serde(flatten)]
    pub info: InstanceInfo,
    /// Its entry in the registry (`GET /cluster`), when it is listed.
    pub registered: Option<InstanceEntry>,
    /// HAProxy's state for it (`UP`, `DOWN`, …), when there is a load balancer.
    pub balancer: Option<String>,
}

/// One instance as the control API reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstanceInfo {
    pub index: usize,
    pub port: u16,
    pub name: Option<String>,
    pub pid: Option<u32>,
    pub running: bool,
    pub last_exit: Option<String>,
}

impl Cluster {
    /// Starts the instances.
    pub fn start(mut spec: ClusterSpec) -> anyhow::Result<Self> {
        let echo = spec.instance.echo;
        let redis = spec.redis.map(|setup| SharedRedis::start(setup, echo)).transpose()?;
        if let Some(redis) = &redis {
            spec.instance.env.push(("REDIS_URL".into(), redis.url()));
        }
        if spec.haproxy.is_some() {
            // HAProxy names each client in a PROXY header (deploy/haproxy.cfg).
            spec.instance.env.push(("TRUSTED_PROXIES".into(), "127.0.0.1".into()));
        }
        let certificate = match &spec.haproxy {
            Some(haproxy) if haproxy.tls => Some(Certificates::loopback()?),
            _ => None,
        };
        let mut cluster = Self {
            spec,
            prometheus: None,
            redis,
            haproxy: None,
            certificate,
            instances: Vec::new(),
        };
        for _ in 0..cluster.spec.instances {
            cluster.add_instance()?;
        }
        for _ in 0..cluster.spec.standby {
            let (port, agent_port) = (free_port()?, free_port()?);
            let last_exit = Some("not started yet".to_owned());
            let slot = Slot { port, agent_port, current: None, last_exit, started: false };
            cluster.instances.push(slot);
        }
        if let Some(haproxy) = cluster.spec.haproxy.clone() {
            let nodes: Vec<(u16, u16)> =
                cluster.instances.iter().map(|slot| (slot.port, slot.agent_port)).collect();
            let echo = cluster.spec.instance.echo;
            let pem = cluster.certificate.as_ref().map(|c| c.haproxy_pem.clone());
            let up = cluster.spec.instances;
            let started =
                HaProxy::start(&haproxy.config, haproxy.port, &nodes, up, pem.as_deref(), echo)?;
            cluster.haproxy = Some(started);
        }
        if let Some(prometheus) = cluster.spec.prometheus.clone() {
            let echo = cluster.spec.instance.echo;
            let targets = cluster.targets();
            cluster.prometheus =
                Some(Prometheus::start(&targets, prometheus.rules.as_deref(), echo)?);
        }
        Ok(cluster)
    }

    /// Starts one more instance on a free port (and has Prometheus scrape it too).
    pub fn add_instance(&mut self) -> anyhow::Result<InstanceInfo> {
        let index = self.instances.len();
        let agent_port = free_port()?;
        let agent = agent_port.to_string();
        let extra = [("AGENT_PORT", agent.as_str())];
        let instance = self.spec.instance.start(&node_name(index), 0, &extra)?;
        let port = instance.port;
        let slot =
            Slot { port, agent_port, current: Some(instance), last_exit: None, started: true };
        self.instances.push(slot);
        self.scrape_started()?;
        Ok(self.info(index))
    }

    /// Has Prometheus, if there is one, scrape every slot a process has run in. A slot
    /// keeps its port across restarts, so the list changes only when an instance is added
    /// or a standby slot first started.
    fn scrape_started(&self) -> anyhow::Result<()> {
        match &self.prometheus {
            Some(prometheus) => prometheus.set_targets(&self.targets()),
            None => Ok(()),
        }
    }

    /// Every slot a process has run in, under the name HAProxy gives it.
    fn targets(&self) -> Vec<Target> {
        let slots = self.instances.iter().enumerate().filter(|(_, slot)| slot.started);
        slots.map(|(index, slot)| Target { node: node_name(index), port: slot.port }).collect()
    }

    /// Sends `signal` to instance `index`. A KILL is also waited for (it is immediate);
    /// a TERM or INT starts a drain that [`Cluster::wait_exit`] can wait for.
    pub fn signal(&mut self, index: usize, signal: &str) -> anyhow::Result<InstanceInfo> {
        let slot = self.slot(index)?;
        let instance = slot.current.as_mut().context("that instance is not running")?;
        instance.process.signal(signal)?;
        if signal == "KILL" {
            return self.wait_exit(index);
        }
        Ok(self.info(index))
    }

    /// Waits for instance `index` to exit and records how it ended.
    pub fn wait_exit(&mut self, index: usize) -> anyhow::Result<InstanceInfo> {
        let slot = self.slot(index)?;
        if let Some(mut instance) = slot.current.take() {
            slot.last_exit = Some(instance.process.wait_exit(EXIT_LIMIT)?.to_string());
        }
        Ok(self.info(index))
    }

    /// Starts a new process (with a new name) on instance `index`'s port, killing the old
    /// one first if it still runs: the same address, a different server. Whatever came
    /// before: an instance that drained and exited by itself is reaped here, not signalled.
    pub fn restart(&mut self, index: usize) -> anyhow::Result<InstanceInfo> {
        self.slot(index)?;
        if self.info(index).running {
            self.signal(index, "KILL")?;
        }
        let label = node_name(index);
        let spec = self.spec.instance.clone();
        let slot = self.slot(index)?;
        let agent = slot.agent_port.to_string();
        slot.current = Some(spec.start(&label, slot.port, &[("AGENT_PORT", agent.as_str())])?);
        if !std::mem::replace(&mut slot.started, true) {
            self.scrape_started()?;
        }
        Ok(self.info(index))
    }

    /// Prometheus, if it scrapes the instances.
    pub fn prometheus(&self) -> Option<&Prometheus> {
        self.prometheus.as_ref()
    }

    /// Where to open the page through the load balancer, if there is one.
    pub fn balancer_url(&self) -> Option<String> {
        let scheme = if self.certificate.is_some() { "https" } else { "http" };
        self.haproxy.as_ref().map(|h| format!("{scheme}://127.0.0.1:{}/", h.port))
    }

    /// The load balancer's certificate, when it serves TLS: for clients to trust.
    pub fn certificate(&self) -> Option<&Certificates> {
        self.certificate.as_ref()
    }

    /// The load balancer, if there is one.
    pub fn balancer(&self) -> Option<&HaProxy> {
        self.haproxy.as_ref()
    }

    /// The load balancer's port, if there is one.
    pub fn balancer_port(&self) -> Option<u16> {
        self.haproxy.as_ref().map(|h| h.port)
    }

    /// Everything: the load balancer, each Redis process, and each instance with its entry
    /// in the instances' own registry (read from one instance when they share Redis) and
    /// the load balancer's view of it.
    pub fn status(&mut self) -> ClusterStatus {
        let states = self.haproxy.as_ref().and_then(|h| h.server_states().ok()).unwrap_or_default();
        let infos = self.instances();
        let running: Vec<(u16, String)> =
            infos.iter().filter_map(|info| Some((info.port, info.name.clone()?))).collect();
        let mut live = registry::gather(&running, registry::ask);
        let instances = infos
            .into_iter()
            .map(|info| {
                let registered = info.name.as_ref().and_then(|name| live.remove(name));
                let balancer = states
                    .iter()
                    .find(|(server, _)| *server == node_name(info.index))
                    .map(|(_, state)| state.clone());
                InstanceStatus { info, registered, balancer }
            })
            .collect();
        ClusterStatus {
            balancer: self.balancer_url(),
            balancer_stats: self
                .haproxy
                .as_ref()
                .map(|h| format!("http://127.0.0.1:{}/", h.stats_port)),
            prometheus: self.prometheus.as_ref().map(Prometheus::url),
            redis: self.redis.as_ref().map(SharedRedis::url),
            redis_processes: self.redis.as_mut().map(SharedRedis::topology).unwrap_or_default(),
            instances,
            unknown: live.into_values().collect(),
        }
    }

    /// Stops every process the cluster started (HAProxy, the instances, Redis), by PID.
    /// Called explicitly because the control API holds the cluster too, so the last
    /// reference may not be dropped before the program exits.
    pub fn stop(&mut self) {
        self.prometheus = None;
        self.haproxy = None;
        for slot in &mut self.instances {
            slot.current = None;
        }
        self.redis = None;
    }

    /// Every instance, running or not.
    pub fn instances(&mut self) -> Vec<InstanceInfo> {
        (0..self.instances.len()).map(|i| self.info(i)).collect()
    }

    fn slot(&mut self, index: usize) -> anyhow::Result<&mut Slot> {
        let count = self.instances.len();
        match self.instances.get_mut(index) {
            Some(slot) => Ok(slot),
            None => bail!("no instance {index}: there are {count} (numbered from 0)"),
        }
    }

    fn info(&mut self, index: usize) -> InstanceInfo {
        let slot = &mut self.instances[index];
        if let Some(status) = slot.current.as_mut().and_then(|i| i.process.try_wait()) {
            slot.last_exit = Some(status.to_string());
            slot.current = None;
        }
        InstanceInfo {
            index,
            port: slot.port,
            name: slot.current.as_ref().map(|i| i.name.clone()),
            pid: slot.current.as_ref().map(|i| i.process.pid()),
            running: slot.current.is_some(),
            last_exit: slot.last_exit.clone(),
        }
    }
}

/// The name HAProxy's configuration gives instance `index` (`node1` for 0), also its
/// label in Prometheus and in the cluster tool's table.
pub fn node_name(index: usize) -> String {
    format!("node{}", index + 1)
}
