//! A cluster: wstime instances on loopback, which can be signalled and restarted, and what
//! they share (Redis), sit behind (HAProxy, found by address or by DNS) and are watched by
//! (Prometheus).

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::PathBuf,
    sync::Mutex,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};
use wstime_protocol::InstanceEntry;

use crate::{
    dns::DnsServer,
    haproxy::{HaProxy, Servers},
    instance::{Instance, InstanceSpec},
    process::{free_port, free_port_on_each},
    prometheus::{Prometheus, Target},
    registry,
    shared_redis::{RedisProcessStatus, RedisSetup, SharedRedis},
    tls::Certificates,
};

/// How long a signalled instance may take to exit (a drain takes grace + window).
const EXIT_LIMIT: Duration = Duration::from_secs(60);

/// The name the cluster's DNS server answers with the instances' addresses, as a headless
/// Service's name would (`.test` is kept for tests, RFC 6761).
pub const DNS_NAME: &str = "wstime-headless.cluster.test";

/// With DNS discovery, instance `i` listens on 127.0.0.`FIRST_HOST + i`: 127.0.0.11, .12, …
const FIRST_HOST: u8 = 11;

/// With DNS discovery, how many servers HAProxy makes room for (`WSTIME_INSTANCES_MAX`) at
/// least: more than the cluster starts, so an instance added later finds a place.
const DNS_ROOM: usize = 16;

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

/// Where HAProxy's configuration is, which port it listens on and how it finds the
/// instances.
#[derive(Debug, Clone)]
pub struct HaProxySpec {
    /// The file of servers: `deploy/haproxy.cfg`, or `deploy/haproxy-dns.cfg` with
    /// [`Discovery::Dns`]. `haproxy-common.cfg`, beside it, is loaded first.
    pub config: PathBuf,
    /// The port clients connect to (0: any free port).
    pub port: u16,
    /// Serve HTTPS and WSS, with a certificate made at start for loopback.
    pub tls: bool,
    /// How HAProxy finds the instances.
    pub discovery: Discovery,
    /// More environment for HAProxy: a variable the configuration reads, such as
    /// `WSTIME_DNS_HOLD_OBSOLETE`.
    pub env: Vec<(String, String)>,
}

impl HaProxySpec {
    /// HAProxy on a free port, without TLS, running the workspace's own file of servers for
    /// `discovery`: `deploy/haproxy.cfg` or `deploy/haproxy-dns.cfg`.
    pub fn deploy(discovery: Discovery) -> Self {
        let file = match discovery {
            Discovery::Static => "haproxy.cfg",
            Discovery::Dns => "haproxy-dns.cfg",
        };
        let config = crate::paths::workspace().join("deploy").join(file);
        Self { config, port: 0, tls: false, discovery, env: Vec::new() }
    }
}

/// How HAProxy finds the instances, and so where they listen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
pub enum Discovery {
    /// Listed by address (`deploy/haproxy.cfg`): each instance on 127.0.0.1, on ports of
    /// its own.
    #[default]
    Static,
    /// The A records of one name (`deploy/haproxy-dns.cfg`), which a dnsmasq the cluster
    /// runs answers: each instance on a loopback address of its own (127.0.0.11, .12, …),
    /// all on one port, as pods behind a Kubernetes headless Service. A record is added
    /// once its instance listens and removed when it is signalled to stop, as a Service
    /// lists only ready pods that are not terminating.
    Dns,
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
    /// The DNS server that lists the instances, when HAProxy finds them by DNS.
    dns: Option<DnsServer>,
    /// Where the instances listen.
    addressing: Addressing,
    /// The load balancer's certificate, when it serves TLS.
    certificate: Option<Certificates>,
    /// One slot per instance ever started; a slot keeps its port across restarts.
    instances: Vec<Slot>,
}

/// Where the instances listen.
#[derive(Debug, Clone, Copy)]
enum Addressing {
    /// Each on 127.0.0.1, on ports of its own chosen as it first starts.
    Ports,
    /// Each on a loopback address of its own (127.0.0.11, …), all on `port` with their
    /// agent check on `agent_port`: an A record carries no port.
    Hosts { port: u16, agent_port: u16 },
}

impl Addressing {
    /// Where the instance of slot `index` listens: its host, its port (0: a free one, once
    /// it starts) and its agent check's port.
    fn place(self, index: usize) -> anyhow::Result<(IpAddr, u16, u16)> {
        match self {
            Self::Ports => Ok((Ipv4Addr::LOCALHOST.into(), 0, free_port()?)),
            Self::Hosts { port, agent_port } => Ok((own_host(index)?, port, agent_port)),
        }
    }
}

/// The loopback address of instance `index` when each has its own.
fn own_host(index: usize) -> anyhow::Result<IpAddr> {
    let last = u8::try_from(index + usize::from(FIRST_HOST))
        .ok()
        .filter(|&last| last < 255)
        .with_context(|| format!("no loopback address of its own for instance {index}"))?;
    Ok(Ipv4Addr::new(127, 0, 0, last).into())
}

struct Slot {
    /// The address it listens on: the same across restarts.
    host: IpAddr,
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
    /// Whether the DNS server lists its address (with DNS discovery).
    in_dns: bool,
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
    /// The DNS server HAProxy finds the instances with, when it does.
    #[serde(default)]
    pub dns: Option<DnsStatus>,
    /// Every Redis process and what it says it is now.
    #[serde(default)]
    pub redis_processes: Vec<RedisProcessStatus>,
    pub instances: Vec<InstanceStatus>,
    /// Instances the registry lists that no running slot holds: one killed a moment ago
    /// (it leaves within the registry's TTL), or one this tool did not start.
    #[serde(default)]
    pub unknown: Vec<InstanceEntry>,
}

/// The DNS server, as the control API reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DnsStatus {
    /// The name it answers (`WSTIME_DNS_NAME`).
    pub name: String,
    /// Where it answers (`WSTIME_DNS_SERVER`).
    pub server: SocketAddr,
    /// The addresses it answers with.
    pub records: Vec<IpAddr>,
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
    /// The address it listens on: 127.0.0.1, or one of its own with DNS discovery.
    #[serde(default = "loopback")]
    pub host: IpAddr,
    pub port: u16,
    pub name: Option<String>,
    pub pid: Option<u32>,
    pub running: bool,
    pub last_exit: Option<String>,
}

impl InstanceInfo {
    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }
}

fn loopback() -> IpAddr {
    Ipv4Addr::LOCALHOST.into()
}

impl Cluster {
    /// Starts the instances, and what they share and sit behind.
    pub fn start(mut spec: ClusterSpec) -> anyhow::Result<Self> {
        let echo = spec.instance.echo;
        let redis = spec.redis.map(|setup| SharedRedis::start(setup, echo)).transpose()?;
        if let Some(redis) = &redis {
            spec.instance.env.push(("REDIS_URL".into(), redis.url()));
        }
        if spec.haproxy.is_some() {
            // HAProxy names each client in a PROXY header (deploy/haproxy-common.cfg). It
            // reaches every loopback address from 127.0.0.1, the loopback route's source.
            spec.instance.env.push(("TRUSTED_PROXIES".into(), "127.0.0.1".into()));
        }
        let by_dns = spec.haproxy.as_ref().is_some_and(|h| h.discovery == Discovery::Dns);
        let (addressing, dns) = if by_dns {
            let slots = (spec.instances + spec.standby).max(1);
            let hosts = (0..slots).map(own_host).collect::<anyhow::Result<Vec<_>>>()?;
            let port = free_port_on_each(&hosts)?;
            let agent_port = loop {
                let agent_port = free_port_on_each(&hosts)?;
                if agent_port != port {
                    break agent_port;
                }
            };
            let dns = DnsServer::start(DNS_NAME, &[], echo)?;
            (Addressing::Hosts { port, agent_port }, Some(dns))
        } else {
            (Addressing::Ports, None)
        };
        let certificate = match &spec.haproxy {
            Some(haproxy) if haproxy.tls => Some(Certificates::loopback()?),
            _ => None,
        };
        let mut cluster = Self {
            spec,
            prometheus: None,
            redis,
            haproxy: None,
            dns,
            addressing,
            certificate,
            instances: Vec::new(),
        };
        for _ in 0..cluster.spec.instances {
            cluster.add_instance()?;
        }
        for index in cluster.instances.len()..cluster.spec.instances + cluster.spec.standby {
            let (host, port, agent_port) = cluster.addressing.place(index)?;
            // A standby slot's port is chosen now: HAProxy is told it before it starts.
            let port = if port == 0 { free_port()? } else { port };
            let last_exit = Some("not started yet".to_owned());
            let slot = Slot {
                host,
                port,
                agent_port,
                current: None,
                last_exit,
                started: false,
                in_dns: false,
            };
            cluster.instances.push(slot);
        }
        if let Some(haproxy) = cluster.spec.haproxy.clone() {
            let servers = cluster.servers();
            let echo = cluster.spec.instance.echo;
            let pem = cluster.certificate.as_ref().map(|c| c.haproxy_pem.clone());
            let up = cluster.spec.instances;
            let (config, port, env) = (&haproxy.config, haproxy.port, &haproxy.env);
            let started = HaProxy::start(config, port, &servers, up, pem.as_deref(), env, echo)?;
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

    /// What HAProxy is told of the instances: every slot's address, or how to find them
    /// by DNS.
    fn servers(&self) -> Servers {
        match (self.addressing, &self.dns) {
            (Addressing::Hosts { port, agent_port }, Some(dns)) => Servers::Dns {
                name: dns.name().to_owned(),
                nameserver: dns.address(),
                port,
                agent_port,
                room: self.instances.len().max(DNS_ROOM),
            },
            _ => Servers::Listed(
                self.instances
                    .iter()
                    .map(|slot| (SocketAddr::new(slot.host, slot.port), slot.agent_port))
                    .collect(),
            ),
        }
    }

    /// Starts one more instance, on a free port or (with DNS discovery) on the next
    /// loopback address, has Prometheus scrape it too, and lists it in DNS.
    pub fn add_instance(&mut self) -> anyhow::Result<InstanceInfo> {
        let index = self.instances.len();
        let (host, port, agent_port) = self.addressing.place(index)?;
        let agent = agent_port.to_string();
        let extra = [("AGENT_PORT", agent.as_str())];
        let instance = self.spec.instance.start_at(&node_name(index), host, port, &extra)?;
        let port = instance.port;
        let current = Some(instance);
        let slot =
            Slot { host, port, agent_port, current, last_exit: None, started: true, in_dns: false };
        self.instances.push(slot);
        self.scrape_started()?;
        self.set_in_dns(index, true)
    }

    /// Adds instance `index`'s A record to the DNS server (`true`) or removes it, and
    /// waits until the server answers so; HAProxy asks it every second. Without DNS
    /// discovery, there is nothing to do.
    pub fn set_in_dns(&mut self, index: usize, listed: bool) -> anyhow::Result<InstanceInfo> {
        let by_dns = self.dns.is_some();
        self.slot(index)?.in_dns = listed && by_dns;
        if let Some(dns) = &mut self.dns {
            let records: Vec<IpAddr> =
                self.instances.iter().filter(|slot| slot.in_dns).map(|slot| slot.host).collect();
            dns.set_records(&records)?;
        }
        Ok(self.info(index))
    }

    /// The DNS server, when HAProxy finds the instances by DNS.
    pub fn dns(&self) -> Option<&DnsServer> {
        self.dns.as_ref()
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
        slots
            .map(|(index, slot)| Target {
                node: node_name(index),
                address: SocketAddr::new(slot.host, slot.port),
            })
            .collect()
    }

    /// Sends `signal` to instance `index`. A KILL is also waited for (it is immediate);
    /// a TERM or INT starts a drain that [`Cluster::wait_exit`] can wait for. With DNS
    /// discovery, each of those three first removes the instance's record, as Kubernetes
    /// takes a terminating pod out of its Service.
    pub fn signal(&mut self, index: usize, signal: &str) -> anyhow::Result<InstanceInfo> {
        if self.slot(index)?.current.is_none() {
            bail!("that instance is not running");
        }
        if matches!(signal, "KILL" | "TERM" | "INT") {
            self.set_in_dns(index, false)?;
        }
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

    /// Waits until instance `index` has exited, holding `cluster` only to look, so that
    /// others can use it meanwhile (a drain takes seconds).
    pub fn wait_for_exit(cluster: &Mutex<Self>, index: usize) -> anyhow::Result<()> {
        let deadline = Instant::now() + EXIT_LIMIT;
        loop {
            let mut locked = cluster.lock().unwrap_or_else(|e| e.into_inner());
            if !locked.instances().get(index).context("no such instance")?.running {
                return Ok(());
            }
            drop(locked);
            if Instant::now() > deadline {
                bail!("{} did not exit within {EXIT_LIMIT:?}", node_name(index));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Starts a new process (with a new name) on instance `index`'s address, killing the
    /// old one first if it still runs: the same address, a different server. Whatever came
    /// before: an instance that drained and exited by itself is reaped here, not signalled.
    /// With DNS discovery its record is added once it listens (a standby slot's for the
    /// first time).
    pub fn restart(&mut self, index: usize) -> anyhow::Result<InstanceInfo> {
        self.slot(index)?;
        if self.info(index).running {
            self.signal(index, "KILL")?;
        }
        let label = node_name(index);
        let spec = self.spec.instance.clone();
        let slot = self.slot(index)?;
        let agent = slot.agent_port.to_string();
        let extra = [("AGENT_PORT", agent.as_str())];
        slot.current = Some(spec.start_at(&label, slot.host, slot.port, &extra)?);
        if !std::mem::replace(&mut slot.started, true) {
            self.scrape_started()?;
        }
        self.set_in_dns(index, true)
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
        let servers = self.haproxy.as_ref().and_then(|h| h.servers().ok()).unwrap_or_default();
        let infos = self.instances();
        let running: Vec<(SocketAddr, String)> =
            infos.iter().filter_map(|info| Some((info.address(), info.name.clone()?))).collect();
        let mut live = registry::gather(&running, registry::ask);
        let instances = infos
            .into_iter()
            .map(|info| {
                let registered = info.name.as_ref().and_then(|name| live.remove(name));
                // By address: with DNS discovery, HAProxy's node2 is whichever instance's
                // record it took.
                let balancer = servers
                    .iter()
                    .find(|server| server.address == Some(info.address()))
                    .map(|server| server.status.clone());
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
            dns: self.dns.as_ref().map(|dns| DnsStatus {
                name: dns.name().to_owned(),
                server: dns.address(),
                records: dns.records().to_vec(),
            }),
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
        self.dns = None;
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
            host: slot.host,
            port: slot.port,
            name: slot.current.as_ref().map(|i| i.name.clone()),
            pid: slot.current.as_ref().map(|i| i.process.pid()),
            running: slot.current.is_some(),
            last_exit: slot.last_exit.clone(),
        }
    }
}

/// The cluster's name for instance `index` (`node1` for 0): HAProxy's too when
/// deploy/haproxy.cfg lists the instances, and its label in Prometheus and in the cluster
/// tool's table.
pub fn node_name(index: usize) -> String {
    format!("node{}", index + 1)
}
