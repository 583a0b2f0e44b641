//! A cluster: wstime instances on loopback ports, which can be signalled and restarted.

use std::time::Duration;

use anyhow::{bail, Context as _};
use serde::Serialize;

use crate::{
    instance::{Instance, InstanceSpec},
    redis::Redis,
};

/// How long a signalled instance may take to exit (a drain takes grace + window).
const EXIT_LIMIT: Duration = Duration::from_secs(60);

/// What to start.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    pub instance: InstanceSpec,
    /// How many instances to start.
    pub instances: usize,
    /// Start a redis-server and point every instance at it (`REDIS_URL`).
    pub redis: bool,
}

/// The running processes. Dropping it stops them all.
pub struct Cluster {
    spec: ClusterSpec,
    /// The shared Redis, when sessions are shared.
    redis: Option<Redis>,
    /// One slot per instance ever started; a slot keeps its port across restarts.
    instances: Vec<Slot>,
}

struct Slot {
    port: u16,
    current: Option<Instance>,
    /// The exit status of the last process in this slot, once it ended.
    last_exit: Option<String>,
}

/// One instance as the control API reports it.
#[derive(Debug, Clone, Serialize)]
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
        let redis = if spec.redis { Some(Redis::start(spec.instance.echo)?) } else { None };
        if let Some(redis) = &redis {
            spec.instance.env.push(("REDIS_URL".into(), redis.url()));
        }
        let mut cluster = Self { spec, redis, instances: Vec::new() };
        for _ in 0..cluster.spec.instances {
            cluster.add_instance()?;
        }
        Ok(cluster)
    }

    /// Starts one more instance on a free port.
    pub fn add_instance(&mut self) -> anyhow::Result<InstanceInfo> {
        let index = self.instances.len();
        let instance = self.spec.instance.start(&format!("node{}", index + 1), 0, &[])?;
        self.instances.push(Slot { port: instance.port, current: Some(instance), last_exit: None });
        Ok(self.info(index))
    }

    /// Sends `signal` to instance `index`; for signals that end a process, waits for the exit.
    pub fn signal(&mut self, index: usize, signal: &str) -> anyhow::Result<InstanceInfo> {
        let slot = self.slot(index)?;
        let instance = slot.current.as_mut().context("that instance is not running")?;
        instance.process.signal(signal)?;
        if matches!(signal, "KILL" | "TERM" | "INT") {
            let status = instance.process.wait_exit(EXIT_LIMIT)?;
            slot.last_exit = Some(status.to_string());
            slot.current = None;
        }
        Ok(self.info(index))
    }

    /// Starts a new process (with a new name) on instance `index`'s port, killing the old
    /// one first if it still runs: the same address, a different server.
    pub fn restart(&mut self, index: usize) -> anyhow::Result<InstanceInfo> {
        let label = format!("node{}", index + 1);
        let spec = self.spec.instance.clone();
        let slot = self.slot(index)?;
        if let Some(mut old) = slot.current.take() {
            old.process.signal("KILL")?;
            slot.last_exit = Some(old.process.wait_exit(EXIT_LIMIT)?.to_string());
        }
        slot.current = Some(spec.start(&label, slot.port, &[])?);
        Ok(self.info(index))
    }

    /// The shared Redis's port, if there is one.
    pub fn redis_port(&self) -> Option<u16> {
        self.redis.as_ref().map(|r| r.port)
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
