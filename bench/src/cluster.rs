//! The cluster the failover runs and the scale-out measure: instances behind HAProxy, sharing
//! one Redis.

use std::path::PathBuf;

use wstime_cluster::{Cluster, ClusterSpec, Discovery, HaProxySpec, InstanceSpec, RedisSetup};

/// The benchmarks' cluster: instances of `server_bin` behind HAProxy running
/// `haproxy_config`, sharing one Redis.
pub struct BenchCluster {
    pub server_bin: PathBuf,
    pub static_dir: PathBuf,
    pub haproxy_config: PathBuf,
    /// Extra environment for every instance.
    pub env: Vec<(String, String)>,
}

impl BenchCluster {
    /// Starts `instances`, with room for `standby` more that start later.
    pub fn start(&self, instances: usize, standby: usize) -> anyhow::Result<Cluster> {
        Cluster::start(ClusterSpec {
            instance: InstanceSpec {
                binary: self.server_bin.clone(),
                static_dir: self.static_dir.clone(),
                env: self.env.clone(),
                echo: false,
            },
            instances,
            standby,
            redis: Some(RedisSetup::Single),
            haproxy: Some(HaProxySpec {
                config: self.haproxy_config.clone(),
                port: 0,
                tls: false,
                discovery: Discovery::Static,
                env: Vec::new(),
            }),
            prometheus: None,
        })
    }
}
