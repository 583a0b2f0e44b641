//! wstime-cluster: real wstime instances on loopback, for people (`make cluster`) and for
//! tests (browser tests drive it over HTTP to kill and restart instances).
//!
//! - [`process`]: a supervised child process, killed by PID when dropped.
//! - [`instance`]: one wstime-server started from its binary.
//! - [`redis`]: a real redis-server on a free port (with a password, ACL users or TLS if
//!   asked), and one question to any Redis process.
//! - [`sentinel`]: a master, its replica and three sentinels, failing over within seconds.
//! - [`redis_cluster`]: a Redis Cluster of real masters.
//! - [`shared_redis`]: which of those three a cluster's instances share, and its topology.
//! - [`tls`]: a loopback certificate (and its CA) made at start, for TLS tests and
//!   `make cluster TLS=1`.
//! - [`haproxy`]: a real HAProxy running deploy/'s configuration: `haproxy-common.cfg`,
//!   then `haproxy.cfg` (the instances by address) or `haproxy-dns.cfg` (by DNS).
//! - [`dns`]: a real DNS server (dnsmasq) answering a name with the instances' addresses,
//!   as a Kubernetes headless Service does, for `haproxy-dns.cfg`.
//! - [`prometheus`]: a real Prometheus scraping every instance, and its query API.
//! - [`http`]: blocking HTTP requests to loopback (`/cluster`, HAProxy's stats, Prometheus).
//! - [`registry`]: the live instances, as their registry (`GET /cluster`) lists them.
//! - [`paths`]: the workspace's root and the binaries built beside the running one.
//! - [`cluster`]: the set of processes and what can be done to them.
//! - [`roll`]: a rolling restart, every instance drained and replaced in turn.
//! - [`control`]: the HTTP API over a cluster (status, signal, restart, roll).
//! - [`lab`]: the fault lab: hosts in network namespaces on one bridge, and the faults
//!   (silent and loud cuts, packet loss, slow links) made between them with nftables and tc.

pub mod cluster;
pub mod control;
pub mod dns;
pub mod haproxy;
pub mod http;
pub mod instance;
pub mod lab;
pub mod paths;
pub mod process;
pub mod prometheus;
pub mod redis;
pub mod redis_cluster;
pub mod registry;
pub mod roll;
pub mod sentinel;
pub mod shared_redis;
pub mod tls;

pub use cluster::{Cluster, ClusterSpec, ClusterStatus, Discovery, HaProxySpec};
pub use dns::DnsServer;
pub use instance::{Instance, InstanceSpec};
pub use process::{free_port, Supervised};
pub use prometheus::Prometheus;
pub use redis::{Redis, Security};
pub use redis_cluster::RedisCluster;
pub use sentinel::SentinelGroup;
pub use shared_redis::{RedisSetup, SharedRedis};
pub use tls::Certificates;
