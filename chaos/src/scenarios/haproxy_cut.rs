//! HAProxy silently cut from one instance (both ways): its health checks fail, and the
//! instance's clients, whose tunnels through HAProxy fall silent, must notice and move.
//!
//! What deploy/haproxy-common.cfg says: checks every second (every 500 ms once one fails),
//! `fall 2`, each check waiting out `timeout connect 2s`; `option redispatch` sends a
//! connection that cannot reach its server to another. What the page does
//! (`wstime_protocol::retry`): 5 s without a tick is a dead peer, the first retry comes
//! within 1 s, and the session resumes from Redis on whichever instance it reaches.

use std::time::Duration;

use wstime_cluster::lab::Direction;

use super::{
    connections, counts_went_on, longest_gap, moved_once, rebalancing_moves, ticks_chart,
    time_until, took,
};
use crate::{clients::Riders, deployment::Deployment, outcome::Check, Outcome, Size};

pub const NAME: &str = "HAProxy silently cut from one instance";

const PROMISE: &str = "HAProxy marks the instance DOWN within 6 s (two failed checks of up to \
    2 s each, 500 ms apart, after the 1 s interval); each of its clients sees no tick, treats \
    the server as dead after 5 s and resumes on another instance with its count, within 10 s \
    of its last tick (5 s dead peer, a retry within 1 s, a 2 s connect to the dead server \
    redispatched, the first tick), once: no other client is moved; no count goes backwards, \
    no client gives up.";

const DOWN_LIMIT: Duration = Duration::from_secs(6);
const GAP_LIMIT_SECS: f64 = 10.0;

pub fn run(size: Size) -> anyhow::Result<Outcome> {
    let clients = size.pick(60, 3000);
    let cut_for = size.pick(Duration::from_secs(20), Duration::from_secs(40));
    // The clients are measured until the heal, not after: once the instance is back, the
    // others rightly move some of their clients to it, which is rebalancing, not the fault.
    let before = size.pick(Duration::from_secs(4), Duration::from_secs(10));
    let deployment = Deployment::start(&[])?;
    let riders = Riders::start(&deployment, &deployment.url(), clients, "hc", before + cut_for)?;
    std::thread::sleep(before);

    let held_before = connections(&deployment, 0).unwrap_or(0);
    let moved_before = rebalancing_moves(&deployment);
    let cut = deployment.balancer.cut(&deployment.nodes[0], Direction::Both)?;
    let cut_at = riders.now();
    let down = time_until(cut_for, || {
        deployment.haproxy.server_states().is_ok_and(|states| {
            states.iter().any(|(name, state)| name == "node1" && state.starts_with("DOWN"))
        })
    });
    std::thread::sleep(cut_for.saturating_sub(down.unwrap_or(cut_for)));
    let healed_at = riders.now();
    let result = riders.finish()?;
    let moved = rebalancing_moves(&deployment) - moved_before;
    cut.heal()?;

    let gap = longest_gap(&result);
    let checks = [
        Check::new(down.is_some_and(|t| t <= DOWN_LIMIT), took("DOWN", down, cut_for)),
        Check::new(
            result.affected > 0 && result.resumed >= result.affected && gap <= GAP_LIMIT_SECS,
            format!(
                "{} of {clients} clients lost their instance, {} resumed elsewhere, the longest \
                 gap {gap:.1} s",
                result.affected, result.resumed
            ),
        ),
        moved_once(&result, held_before, moved_before, moved),
        counts_went_on(&result),
    ];
    let chart = ticks_chart(
        "haproxy-cut-ticks",
        "Ticks per second, HAProxy cut from one instance",
        &result,
        (cut_at, healed_at),
    );
    Ok(Outcome::from_checks(NAME, PROMISE, &checks, vec![chart]))
}
