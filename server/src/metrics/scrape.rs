//! What `/metrics` reads at each scrape: the instance's state of the moment, the cluster as
//! it last saw it, and the workers' traffic counters, summed.

use std::sync::Arc;

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, NoLabelSet},
    metrics::MetricType,
};
use wstime_protocol::Health;

use crate::{cluster::KnownCluster, instance::Instance, traffic::LATENESS_BOUNDS};

/// Reads the instance and its view of the cluster at scrape time.
#[derive(Debug)]
pub struct InstanceCollector {
    /// Its connections, load, health and traffic.
    pub instance: Arc<Instance>,
    /// How many instances the registry knows.
    pub cluster: Arc<KnownCluster>,
}

impl Collector for InstanceCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Self { instance, cluster } = self;
        let build = [("version", env!("CARGO_PKG_VERSION")), ("commit", env!("WSTIME_COMMIT"))];
        encoder
            .encode_descriptor("build", "The running build", None, MetricType::Info)?
            .encode_info(&build)?;

        let connections = instance.live_connections();
        gauge(&mut encoder, "connections", "WebSockets open now", connections as f64)?;
        let max = instance.capacity.limits.max_connections as f64;
        gauge(&mut encoder, "connections_max", "The hard limit on open WebSockets", max)?;
        let load = instance.capacity.load(connections);
        gauge(&mut encoder, "load", "The largest of the measured load ratios", load)?;
        let draining = f64::from(u8::from(instance.lifecycle.is_draining()));
        gauge(&mut encoder, "draining", "1 while the instance drains for shutdown", draining)?;
        let health = instance.health();
        let mut states = encoder.encode_descriptor(
            "health",
            "What the health check says: 1 for the current state, 0 for the others",
            None,
            MetricType::Gauge,
        )?;
        for each in Health::REPORTED {
            let labels = [("state", each.name())];
            states.encode_family(&labels)?.encode_gauge(&i64::from(each == health))?;
        }
        let instances = cluster.instances() as f64;
        gauge(&mut encoder, "cluster_instances", "Live instances the registry knows", instances)?;

        let traffic = instance.capacity.traffic_totals();
        encoder
            .encode_descriptor("ticks_sent", "Ticks sent", None, MetricType::Counter)?
            .encode_counter::<NoLabelSet, _, u64>(&traffic.ticks, None)?;
        encoder
            .encode_descriptor("sent_bytes", "Bytes of ticks sent", None, MetricType::Counter)?
            .encode_counter::<NoLabelSet, _, u64>(&traffic.bytes, None)?;
        let buckets: Vec<(f64, u64)> = LATENESS_BOUNDS
            .iter()
            .copied()
            .chain([f64::MAX])
            .zip(traffic.late.iter().copied())
            .collect();
        encoder
            .encode_descriptor(
                "tick_lateness_seconds",
                "How long after its moment each tick was written",
                None,
                MetricType::Histogram,
            )?
            .encode_histogram::<NoLabelSet>(traffic.late_seconds, traffic.ticks, &buckets, None)
    }
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: f64,
) -> Result<(), std::fmt::Error> {
    encoder.encode_descriptor(name, help, None, MetricType::Gauge)?.encode_gauge(&value)
}
