//! What the experiments start: the server and the load generator, the page the server serves
//! and HAProxy's configuration, as `wstime-bench` was told them.

use std::path::PathBuf;

use wstime_cluster::InstanceSpec;

use crate::{clients::Client, cluster::BenchCluster};

/// The server's log filter: start-up lines, but not one line per connect.
const QUIET: &str = "info,wstime_server::upgrade=warn";

/// The binaries and files every experiment starts from. The experiments take this rather
/// than the command line, so the library does not depend on the binary's flags.
pub struct Setup {
    /// A release `wstime-server`.
    pub server_bin: PathBuf,
    /// A release `wstime-loadgen`.
    pub loadgen_bin: PathBuf,
    /// The page the server serves.
    pub static_dir: PathBuf,
    /// HAProxy's configuration, for the cluster.
    pub haproxy_config: PathBuf,
}

impl Setup {
    /// A release server, as the steady benchmarks run it.
    pub fn wstime(&self) -> InstanceSpec {
        InstanceSpec {
            binary: self.server_bin.clone(),
            static_dir: self.static_dir.clone(),
            // The generators open thousands of sockets a second from eight addresses, each
            // standing for thousands of clients: the per-client limits, which guard
            // admission, are off (the pending share too: a reconnect herd from eight
            // addresses would otherwise be turned away 64 handshakes per address at a time).
            env: vec![
                ("RUST_LOG".into(), QUIET.into()),
                ("MAX_CONNECTIONS".into(), "19000".into()),
                ("MAX_CONNECTIONS_PER_CLIENT".into(), "0".into()),
                ("CONNECT_RATE_PER_CLIENT".into(), "0".into()),
                ("MAX_PENDING_HANDSHAKES_PER_CLIENT".into(), "0".into()),
            ],
            echo: false,
        }
    }

    /// Our load generator.
    pub fn loadgen(&self) -> Client {
        Client::Loadgen(self.loadgen_bin.clone())
    }

    /// The failover runs' and the scale-out's cluster.
    pub fn cluster(&self) -> BenchCluster {
        BenchCluster {
            server_bin: self.server_bin.clone(),
            static_dir: self.static_dir.clone(),
            haproxy_config: self.haproxy_config.clone(),
            env: vec![("RUST_LOG".into(), QUIET.into())],
        }
    }
}
