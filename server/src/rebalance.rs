//! Rebalancing after a scale-out: an instance holding clearly more sockets than the
//! cluster's mean moves the excess, a little at a time.
//!
//! WebSockets live long and a load balancer only places new ones, so after an instance is
//! added the old ones would stay full for hours. Once a second, with the cluster registry's
//! counts ([`crate::cluster`]), an instance above the mean plus a tolerance closes some of
//! its sockets with 1013 and a reason carrying a retry hint; the clients come back through
//! the balancer, which the agent ([`crate::agent`]) has told to prefer the emptier
//! instances, and resume their sessions there. It never sheds below the mean plus the
//! tolerance, never more than a bounded fraction of its sockets a second, never while
//! another instance drains, is unhealthy or has missed a refresh (it has likely died, and its
//! clients are moving already), never while another has gone unchecked by the load balancer
//! (the balancer cannot reach it: the moved clients would come straight back, found by the
//! fault lab's HAProxy cut, docs/chaos.md), never before the cluster has settled (clients arriving in
//! numbers make the registry's counts lag, see
//! [`crate::cluster::KnownCluster::settled`]), and not at all when it is the only one. The
//! workers close the sockets as their wheels come round, so the closes spread over the
//! second.

use std::{future::Future, pin::pin, sync::Arc, time::Duration};

use wstime_protocol::{ClusterView, Health};

use crate::{
    cluster::{is_out_of_rotation, is_stale, mean, KnownCluster, SETTLE_BAND},
    instance::Instance,
    worker::moves::Moves,
};

/// Sockets above the mean an instance keeps however small the tolerance: moving a socket or
/// two back and forth would be churn, not balance.
const SLACK: f64 = 2.0;

/// The settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rebalancing {
    /// How far above the mean an instance may be (0.05: 5%).
    pub tolerance: f64,
    /// The most of its sockets an instance moves in a second (0.05: 5%).
    pub pace: f64,
}

/// How many sockets to move this second, with `own` open, in `cluster` (`settled`: its total
/// has held still lately).
pub fn plan(own: usize, cluster: &ClusterView, settled: bool, settings: Rebalancing) -> usize {
    // An instance that missed a refresh has likely died: its figures are old, and its
    // clients are moving already.
    let calm = settled
        && cluster.instances.iter().all(|instance| {
            instance.name == cluster.answered_by
                || (!instance.draining
                    && instance.health == Health::Ok
                    && !is_stale(instance)
                    && !is_out_of_rotation(instance))
        });
    // Clients arriving here right now (those of an instance just lost) put the live count
    // ahead of this instance's own entry in the view, settled or not: the others' entries
    // are as far behind, and the mean with them. Rebalancing only ever lowers the count, so
    // a count above its entry is arrivals. Seen in the fault lab's HAProxy cut: 121 moves
    // in the second the cut instance's clients came in, before any view showed them.
    let own_entry = cluster.instances.iter().find(|i| i.name == cluster.answered_by);
    let arriving = own_entry.is_some_and(|entry| {
        own as f64
            > (entry.connections as f64 * (1.0 + SETTLE_BAND)).max(entry.connections as f64 + SLACK)
    });
    let Some(mean) = mean(own, cluster).filter(|_| calm && !arriving) else { return 0 };
    let ceiling = (mean * (1.0 + settings.tolerance)).max(mean + SLACK).ceil() as usize;
    let excess = own.saturating_sub(ceiling);
    let budget = ((own as f64 * settings.pace).ceil() as usize).max(1);
    excess.min(budget)
}

/// Plans once a second until `stop`, for `instance` in `cluster`; the workers carry the
/// plan out, taking from `moves`.
pub async fn run(
    instance: Arc<Instance>,
    cluster: Arc<KnownCluster>,
    moves: Arc<Moves>,
    settings: Rebalancing,
    stop: impl Future<Output = ()>,
) {
    let mut stop = pin!(stop);
    let mut every_second = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            () = &mut stop => return,
            _ = every_second.tick() => {}
        }
        let moving = if instance.lifecycle.is_draining() {
            0
        } else {
            plan(instance.live_connections(), &cluster.report(), cluster.settled(), settings)
        };
        if moving > 0 {
            tracing::debug!(moving, "rebalancing: moving sockets to emptier instances");
        }
        moves.set(moving);
    }
}

#[cfg(test)]
mod tests {
    use wstime_protocol::InstanceEntry;

    use super::*;
    use crate::cluster::test_entry;

    const SETTINGS: Rebalancing = Rebalancing { tolerance: 0.05, pace: 0.05 };

    fn cluster(me: &str, counts: &[(&str, u64, bool)]) -> ClusterView {
        let instances = counts
            .iter()
            .map(|&(name, connections, draining)| InstanceEntry {
                health: if draining { Health::Draining } else { Health::Ok },
                draining,
                ..test_entry(name, connections)
            })
            .collect();
        ClusterView { answered_by: me.into(), shared: true, instances }
    }

    #[test]
    fn after_a_scale_out_the_full_ones_move_sockets_at_their_pace() {
        let report = cluster("a", &[("a", 3000, false), ("b", 3000, false), ("c", 0, false)]);
        assert_eq!(plan(3000, &report, true, SETTINGS), 150, "5% of 3,000 a second");
        // With a mean of 2,000, 2,100 is the mean plus 5%: only what is above it moves.
        let nearly = cluster("a", &[("a", 2150, false), ("b", 2150, false), ("c", 1700, false)]);
        assert_eq!(plan(2150, &nearly, true, SETTINGS), 50);
        let empty = cluster("c", &[("a", 3000, false), ("b", 3000, false), ("c", 0, false)]);
        assert_eq!(plan(0, &empty, true, SETTINGS), 0, "the empty one takes, never gives");
    }

    #[test]
    fn nothing_moves_when_balanced_alone_or_while_another_drains() {
        let balanced = cluster("a", &[("a", 2010, false), ("b", 1995, false), ("c", 1995, false)]);
        assert_eq!(plan(2010, &balanced, true, SETTINGS), 0);
        let alone = cluster("a", &[("a", 3000, false)]);
        assert_eq!(plan(3000, &alone, true, SETTINGS), 0);
        let draining = cluster("a", &[("a", 3000, false), ("b", 3000, true), ("c", 0, false)]);
        assert_eq!(plan(3000, &draining, true, SETTINGS), 0);
        let mut dead = cluster("a", &[("a", 3000, false), ("b", 3000, false), ("c", 0, false)]);
        dead.instances[1].refreshed_ms_ago = 5_000;
        assert_eq!(plan(3000, &dead, true, SETTINGS), 0, "b missed its refreshes: it may be dead");
        let report = cluster("a", &[("a", 3000, false), ("b", 3000, false), ("c", 0, false)]);
        assert_eq!(plan(3000, &report, false, SETTINGS), 0, "clients still arriving in numbers");
        let small = cluster("a", &[("a", 3, false), ("b", 0, false)]);
        assert_eq!(plan(3, &small, true, SETTINGS), 0, "a socket or two is not worth moving");
    }

    #[test]
    fn nothing_moves_while_clients_arrive_faster_than_the_views_show() {
        // a's entry says 2,000; 2,400 are open now: a lost instance's clients coming in.
        let report = cluster("a", &[("a", 2000, false), ("b", 2000, false), ("c", 2000, false)]);
        assert_eq!(plan(2400, &report, true, SETTINGS), 0);
        // Fewer than the entry (its own moves going out) is no arrival.
        let report = cluster("a", &[("a", 3100, false), ("b", 3000, false), ("c", 0, false)]);
        assert_eq!(plan(3000, &report, true, SETTINGS), 150);
    }

    #[test]
    fn nothing_moves_towards_an_instance_the_balancer_no_longer_checks() {
        // c holds nothing because HAProxy cannot reach it: moved clients would come back.
        let mut cut = cluster("a", &[("a", 3000, false), ("b", 3000, false), ("c", 0, false)]);
        cut.instances[2].checked_ms_ago = Some(6_000);
        assert_eq!(plan(3000, &cut, true, SETTINGS), 0);
        // Checked a second ago, or never checked at all (no balancer that checks): it takes.
        for checked in [Some(1_000), None] {
            cut.instances[2].checked_ms_ago = checked;
            assert_eq!(plan(3000, &cut, true, SETTINGS), 150, "{checked:?}");
        }
    }
}
