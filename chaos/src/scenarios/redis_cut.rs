//! An instance silently cut from Redis (both ways, packets dropped) under load, then healed.
//!
//! What the server's design says: a Redis operation that takes longer than 500 ms counts as
//! failed (`OPERATION_LIMIT`), the client checks its connection every second and retries a
//! lost one every 250 ms; while Redis cannot answer, sessions open in the instance's memory
//! (`FallbackStore`) and the sockets it holds go on ticking from its own clock.

use std::time::{Duration, Instant};

use wstime_cluster::lab::Direction;

use super::{counts_went_on, ticks_chart, time_until, took};
use crate::{
    clients::{self, Riders},
    deployment::Deployment,
    outcome::Check,
    probe, Outcome, Size,
};

pub const NAME: &str = "instance silently cut from Redis";

const PROMISE: &str = "Under load, for the whole cut: no client loses a tick for the dead-peer \
    timeout (5 s); new sockets to the cut instance open within 1.5 s (the store's 500 ms \
    operation limit, plus the handshake); its health report says the store is unreachable \
    within 3 s (a 1 s check plus the 500 ms limit) and /metrics counts store errors; sessions \
    are shared again (opened on it, resumed on another instance) within 5 s of the heal; no \
    count ever goes backwards.";

/// The new sockets' bound, the health report's, and sharing's after the heal.
const OPEN_LIMIT: Duration = Duration::from_millis(1500);
const NOTICE_LIMIT: Duration = Duration::from_secs(3);
const SHARED_LIMIT: Duration = Duration::from_secs(5);

pub fn run(size: Size) -> anyhow::Result<Outcome> {
    let clients = size.pick(60, 3000);
    let cut_for = size.pick(Duration::from_secs(12), Duration::from_secs(30));
    let (before, after) = (Duration::from_secs(4), Duration::from_secs(15));
    let deployment = Deployment::start(&[])?;
    let riders =
        Riders::start(&deployment, &deployment.url(), clients, "rc", before + cut_for + after)?;
    std::thread::sleep(before);

    let (node, address) = (&deployment.nodes[0], deployment.instance(0));
    let errors = || probe::metric(&deployment.clients, address, "wstime_store_errors_total");
    let errors_before = errors()?;
    let cut = node.cut(&deployment.redis_host, Direction::Both)?;
    let (cut_at, cut_started) = (riders.now(), Instant::now());
    // At once, before the instance can know: the worst case for an open.
    let (open_took, open_failed) = clients::open_burst(
        &deployment,
        &deployment.instance_url(0),
        size.pick(20, 200),
        "rc-new",
    )?;
    let unreachable = |reachable: bool| {
        probe::health(&deployment.clients, address).is_ok_and(|h| h.store.reachable == reachable)
    };
    let noticed = time_until(cut_for, || unreachable(false)).map(|_| cut_started.elapsed());
    let errors_during = errors()? - errors_before;
    std::thread::sleep(cut_for.saturating_sub(cut_started.elapsed()));
    cut.heal()?;
    let (healed_at, healed) = (riders.now(), Instant::now());

    // Shared again: a session opened on the cut instance resumes on another one.
    let mut probes = 0;
    let shared = time_until(Duration::from_secs(20), || {
        probes += 1;
        let id = format!("rc-shared-{probes}");
        let first = clients::first_count(&deployment.clients, address, &id);
        std::thread::sleep(Duration::from_millis(1100));
        let second = clients::first_count(&deployment.clients, deployment.instance(1), &id);
        matches!((first, second), (Ok(first), Ok(second)) if second > first)
    })
    .map(|_| healed.elapsed());
    let result = riders.finish()?;

    let checks = [
        Check::new(
            result.affected == 0,
            format!("{} of {clients} clients went 5 s without a tick", result.affected),
        ),
        Check::new(
            open_failed == 0 && open_took <= OPEN_LIMIT,
            format!(
                "{} new sockets opened in {:.2} s, {open_failed} failed",
                size.pick(20, 200),
                open_took.as_secs_f64()
            ),
        ),
        Check::new(
            noticed.is_some_and(|t| t <= NOTICE_LIMIT) && errors_during > 0.0,
            format!(
                "{}, {errors_during:.0} store errors counted",
                took("health said unreachable", noticed, cut_for)
            ),
        ),
        Check::new(
            shared.is_some_and(|t| t <= SHARED_LIMIT),
            took("shared again after the heal", shared, Duration::from_secs(20)),
        ),
        counts_went_on(&result),
    ];
    let chart = ticks_chart(
        "redis-cut-ticks",
        "Ticks per second, an instance cut from Redis",
        &result,
        (cut_at, healed_at),
    );
    Ok(Outcome::from_checks(NAME, PROMISE, &checks, vec![chart]))
}
