//! HAProxy's agent check (`AGENT_PORT`): the instance's capacity, told to the load balancer
//! as a weight, so new connections go where there is room, not merely round the pool.
//!
//! HAProxy connects every second and reads one line: `up ready <weight>% maxconn:<limit>`,
//! or `drain maxconn:<limit>` while the instance drains (no new connections; the open ones
//! stay). `drain` is an administrative state that HAProxy keeps until an agent says `ready`:
//! without it, an instance restarted at the same address after a drain would stay out of
//! the pool for good. The weight is the instance's headroom: the smaller of what is left
//! before the health check's threshold and how far it is below its share of the cluster (its socket
//! count against twice the cluster's mean), so after a scale-out the new, empty instance is
//! preferred, and at balance every instance weighs the same. The share counts only once the
//! cluster has settled ([`crate::cluster::KnownCluster::settled`]): while clients arrive
//! in numbers the registry's counts lag, and the weight is the headroom alone. A weight is
//! never 0: the health check, not the agent, takes an instance out.

use std::{future::Future, pin::pin, sync::Arc, time::Duration};

use tokio::{io::AsyncWriteExt as _, net::TcpListener};
use tokio_util::task::TaskTracker;

use crate::{
    cluster::{self, KnownCluster},
    instance::Instance,
};

/// How long HAProxy may take to read the answer.
const WRITE_LIMIT: Duration = Duration::from_secs(2);

/// The first wait after a failed accept (out of file descriptors, say), doubled at each
/// failure in a row up to [`MOST_BACKOFF`]: a failing accept returns at once, and retrying
/// it at once would spin a core.
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const MOST_BACKOFF: Duration = Duration::from_secs(1);

/// The agent's answer now, for `instance` in `cluster`.
pub fn answer(instance: &Instance, cluster: &KnownCluster) -> String {
    let limits = instance.capacity.limits;
    if instance.lifecycle.is_draining() {
        return format!("drain maxconn:{}\n", limits.max_connections);
    }
    let own = instance.live_connections();
    let capacity = (limits.healthy_below - instance.capacity.load(own)) / limits.healthy_below;
    let share = cluster
        .settled()
        .then(|| cluster.report())
        .and_then(|view| cluster::mean(own, &view))
        .filter(|mean| *mean > 0.0)
        .map_or(1.0, |mean| 1.0 - own as f64 / (2.0 * mean));
    let weight = (capacity.min(share).clamp(0.0, 1.0) * 100.0).round().max(1.0);
    format!("up ready {weight}% maxconn:{}\n", limits.max_connections)
}

/// Answers the agent check on `listener` until `stop`.
pub async fn serve(
    listener: TcpListener,
    instance: Arc<Instance>,
    cluster: Arc<KnownCluster>,
    stop: impl Future<Output = ()>,
) {
    let mut stop = pin!(stop);
    let answers = TaskTracker::new();
    let mut backoff = FIRST_BACKOFF;
    loop {
        let accepted = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => accepted,
        };
        let mut stream = match accepted {
            Ok((stream, _)) => {
                backoff = FIRST_BACKOFF;
                stream
            }
            Err(error) => {
                if backoff == FIRST_BACKOFF {
                    tracing::warn!("the agent check cannot accept ({error}); retrying");
                }
                tokio::select! {
                    () = &mut stop => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MOST_BACKOFF);
                continue;
            }
        };
        let line = answer(&instance, &cluster);
        answers.spawn_local(async move {
            let written = async {
                stream.write_all(line.as_bytes()).await?;
                stream.shutdown().await
            };
            let _ = tokio::time::timeout(WRITE_LIMIT, written).await;
        });
    }
    // The answers under way end within their write limit.
    answers.close();
    answers.wait().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{cluster::test_entry, instance::tests::instance, lifecycle::Stage};

    /// An instance called `agent` of at most `max_connections`, alone in its cluster.
    fn alone(max_connections: u64) -> (Instance, KnownCluster) {
        (instance("agent", max_connections), KnownCluster::new("agent"))
    }

    #[test]
    fn the_weight_is_the_headroom_before_the_health_threshold() {
        let (instance, cluster) = alone(100);
        assert_eq!(answer(&instance, &cluster), "up ready 100% maxconn:100\n", "empty");
        let open: Vec<_> = (0..30).map(|_| instance.lifecycle.connection()).collect();
        // Load 0.3 of a threshold of 0.6: half the headroom is left.
        assert_eq!(answer(&instance, &cluster), "up ready 50% maxconn:100\n");
        let more: Vec<_> = (0..40).map(|_| instance.lifecycle.connection()).collect();
        let full = answer(&instance, &cluster);
        assert_eq!(full, "up ready 1% maxconn:100\n", "past the threshold: never 0");
        drop((open, more));
    }

    /// `cluster` as the registry would show it: this instance and one other, `views` times
    /// in a row.
    fn see(cluster: &KnownCluster, own: u64, other: u64, views: usize) {
        for _ in 0..views {
            let instances = vec![test_entry("agent", own), test_entry("other", other)];
            cluster.replace(true, instances);
        }
    }

    #[test]
    fn above_its_share_of_a_settled_cluster_the_weight_falls() {
        let (instance, cluster) = alone(100);
        let open: Vec<_> = (0..30).map(|_| instance.lifecycle.connection()).collect();
        // Headroom alone: load 0.3 of a threshold of 0.6.
        see(&cluster, 30, 10, 1);
        let unsettled = answer(&instance, &cluster);
        assert_eq!(unsettled, "up ready 50% maxconn:100\n", "one view: not settled yet");
        // Settled: 30 against a mean of 20 is 1 − 30 ÷ 40 of its share.
        see(&cluster, 30, 10, 3);
        assert_eq!(answer(&instance, &cluster), "up ready 25% maxconn:100\n");
        drop(open);
    }

    #[test]
    fn a_draining_instance_says_drain() {
        let (instance, cluster) = alone(100);
        instance.lifecycle.advance(Stage::Draining);
        assert_eq!(answer(&instance, &cluster), "drain maxconn:100\n");
    }
}
