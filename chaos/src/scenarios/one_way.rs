//! One direction only, between HAProxy and one instance: the instance that can send but
//! hears nothing (deaf), and the instance that hears but whose packets are lost (mute).
//!
//! Deaf: its ticks still reach the clients, but their pongs and HAProxy's checks do not
//! reach it: HAProxy takes it out, and its idle timeout closes the sockets (the close frame
//! gets out), so the clients reconnect elsewhere. Mute: nothing it sends arrives: the
//! clients see no tick for 5 s, call it dead and reconnect elsewhere, while it frees the
//! sockets at its idle timeout (its pings never arrive, so no pong comes back).

use std::time::Duration;

use wstime_cluster::lab::Direction;

use super::{
    client_gone::{idle_env, idle_settings},
    connections, counts_went_on, longest_gap, moved_once, rebalancing_moves, ticks_chart,
    time_until, took,
};
use crate::{clients::Riders, deployment::Deployment, outcome::Check, Outcome, Size};

pub const DEAF_NAME: &str = "one way: an instance that hears nothing";
pub const MUTE_NAME: &str = "one way: an instance whose words are lost";

pub fn run_deaf(size: Size) -> anyhow::Result<Outcome> {
    run(size, Direction::Inbound)
}

pub fn run_mute(size: Size) -> anyhow::Result<Outcome> {
    run(size, Direction::Outbound)
}

/// The instance's packets from HAProxy (`Inbound`) or to it (`Outbound`) dropped.
fn run(size: Size, direction: Direction) -> anyhow::Result<Outcome> {
    let clients = size.pick(60, 3000);
    let (idle, ping) = idle_settings(size);
    let freed_limit = idle + ping + Duration::from_secs(1);
    // Deaf: its clients hear ticks until the idle timeout closes them, then retry within 1 s.
    // Mute: 5 s of silence, a retry within 1 s, a connect HAProxy may try on the lost
    // instance first (2 s) before redispatching, the first tick.
    let (name, gap_limit, why) = match direction {
        Direction::Inbound => (
            DEAF_NAME,
            freed_limit.as_secs_f64() + 3.0,
            "its ticks keep reaching the clients until its idle timeout closes them (the close \
             frame gets out)",
        ),
        _ => (MUTE_NAME, 10.0, "its clients see no tick, call it dead after 5 s and reconnect"),
    };
    let promise = format!(
        "With IDLE_TIMEOUT_SECS={} and PING_INTERVAL_SECS={}: {why}; every one of its clients \
         resumes on another instance with its count, within {gap_limit:.0} s of its last \
         tick, and once: no other client is moved; the instance frees their sockets within \
         {} s; no count goes backwards.",
        idle.as_secs(),
        ping.as_secs(),
        freed_limit.as_secs()
    );
    let env = idle_env(size);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let deployment = Deployment::start(&env)?;
    let cut_for = freed_limit + Duration::from_secs(4);
    // The clients are measured until the heal, not after: once the instance is back, the
    // others rightly move some of their clients to it, which is rebalancing, not the fault.
    let before = size.pick(Duration::from_secs(4), Duration::from_secs(10));
    let riders = Riders::start(&deployment, &deployment.url(), clients, "ow", before + cut_for)?;
    std::thread::sleep(before);

    let held_before = connections(&deployment, 0).unwrap_or(0);
    let moved_before = rebalancing_moves(&deployment);
    let cut = deployment.nodes[0].cut(&deployment.balancer, direction)?;
    let cut_at = riders.now();
    let freed = time_until(cut_for, || connections(&deployment, 0) == Some(0));
    std::thread::sleep(cut_for.saturating_sub(freed.unwrap_or(cut_for)));
    let healed_at = riders.now();
    let result = riders.finish()?;
    let moved = rebalancing_moves(&deployment) - moved_before;
    cut.heal()?;

    let gap = longest_gap(&result);
    let checks = [
        Check::new(
            held_before > 0 && freed.is_some_and(|t| t <= freed_limit),
            format!("its {held_before} sockets {}", took("freed", freed, cut_for)),
        ),
        Check::new(
            result.affected > 0 && result.resumed >= result.affected && gap <= gap_limit,
            format!(
                "{} of {clients} clients lost it, {} resumed elsewhere, the longest gap {gap:.1} s",
                result.affected, result.resumed
            ),
        ),
        moved_once(&result, held_before, moved_before, moved),
        counts_went_on(&result),
    ];
    let file = match direction {
        Direction::Inbound => "one-way-deaf-ticks",
        _ => "one-way-mute-ticks",
    };
    let chart = ticks_chart(file, name, &result, (cut_at, healed_at));
    Ok(Outcome::from_checks(name, &promise, &checks, vec![chart]))
}
