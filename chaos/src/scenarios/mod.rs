//! The scenarios, each in a fresh lab: a fault between two of wstime's parts, the promise
//! wstime makes under it, and the figures measured against the promise.
//!
//! - [`redis_cut`]: an instance silently cut from Redis under load.
//! - [`haproxy_cut`]: HAProxy silently cut from one instance.
//! - [`client_gone`]: the clients' host silently gone, then back.
//! - [`one_way`]: an instance that can send but hears nothing, and one that hears but whose
//!   words are lost.
//! - [`packet_loss`]: 5 % and 20 % of the clients' packets lost.
//! - [`slow_clients`]: clients on a 16 kbit/s link beside fast ones.
//! - [`sentinel_cut`]: the Sentinel group's master cut from the sentinels and the instances.
//! - [`herd`]: every client of one instance cut from it, then released at once.
//!
//! The promises' bounds come from the server's settings (docs/configuration.md) and the
//! page's retry policy (`wstime_protocol::retry`), never from what a run happened to measure.

pub mod client_gone;
pub mod haproxy_cut;
pub mod herd;
pub mod one_way;
pub mod packet_loss;
pub mod redis_cut;
pub mod sentinel_cut;
pub mod slow_clients;

use std::time::{Duration, Instant};

use wstime_bench::results::FailoverResult;

use crate::deployment::{Deployment, INSTANCES};
use crate::{
    outcome::{Chart, Check},
    probe, Outcome, Size,
};

/// A scenario: its name and how to run it at a size.
pub struct Scenario {
    pub name: &'static str,
    pub run: fn(Size) -> anyhow::Result<Outcome>,
}

/// Every scenario, in the report's order.
pub const ALL: &[Scenario] = &[
    Scenario { name: redis_cut::NAME, run: redis_cut::run },
    Scenario { name: haproxy_cut::NAME, run: haproxy_cut::run },
    Scenario { name: client_gone::NAME, run: client_gone::run },
    Scenario { name: one_way::DEAF_NAME, run: one_way::run_deaf },
    Scenario { name: one_way::MUTE_NAME, run: one_way::run_mute },
    Scenario { name: packet_loss::NAME_5, run: packet_loss::run_5 },
    Scenario { name: packet_loss::NAME_20, run: packet_loss::run_20 },
    Scenario { name: slow_clients::NAME, run: slow_clients::run },
    Scenario { name: sentinel_cut::NAME, run: sentinel_cut::run },
    Scenario { name: herd::NAME, run: herd::run },
];

/// How often a condition is looked at while waiting for it.
const POLL: Duration = Duration::from_millis(100);

/// Waits up to `limit` for `done`; returns how long it took, or `None` if it never was.
pub fn time_until(limit: Duration, mut done: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    loop {
        if done() {
            return Some(started.elapsed());
        }
        if started.elapsed() >= limit {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

/// The WebSockets instance `n` holds now, asked from the clients' host (`None` if it did
/// not answer).
pub fn connections(deployment: &Deployment, n: usize) -> Option<u64> {
    probe::health(&deployment.clients, deployment.instance(n)).ok().map(|h| h.connections)
}

/// Every instance's WebSockets, summed.
pub fn all_connections(deployment: &Deployment) -> Option<u64> {
    (0..INSTANCES).map(|n| connections(deployment, n)).sum()
}

/// "`what` in 1.2 s", or "`what`: not within 10 s".
pub fn took(what: &str, taken: Option<Duration>, limit: Duration) -> String {
    match taken {
        Some(taken) => format!("{what} in {:.1} s", taken.as_secs_f64()),
        None => format!("{what}: not within {:.0} s", limit.as_secs_f64()),
    }
}

/// The check that every client of a group opened its first connection: one that did not is
/// in no other figure, so a promise held by the rest would say nothing about it.
pub fn all_connected(result: &FailoverResult, group: &str) -> Check {
    Check::new(
        result.connected == result.clients,
        format!("{} of {} {group} connected", result.connected, result.clients),
    )
}

/// The checks every scenario with riding clients makes: no count went backwards, no session
/// was lost (a reconnect that started again at 0), no client gave up.
pub fn counts_went_on(result: &FailoverResult) -> Check {
    Check::new(
        result.backwards == 0 && result.restarted == 0 && result.gave_up == 0,
        format!(
            "{} ticks went backwards, {} reconnects resumed and {} started again at 0, {} \
             clients gave up",
            result.backwards, result.resumed, result.restarted, result.gave_up
        ),
    )
}

/// The check that only the clients of the instance that was lost moved, each once: the
/// `lost` sockets it held, and not one reconnect more (a client of another instance moved,
/// or one moved twice, is a reconnect the fault did not call for). The clients' run starts
/// before the fault, while the cluster may still be evening out their arrival: each of the
/// `moved_before` sockets the instances closed to rebalance (1013) before the fault is one
/// reconnect of that, not of the fault; `moved_during` are those closed during it.
pub fn moved_once(
    result: &FailoverResult,
    lost: u64,
    moved_before: f64,
    moved_during: f64,
) -> Check {
    let expected = lost as usize + moved_before as usize;
    let needless = result.resumed.saturating_sub(expected);
    Check::new(
        result.affected <= expected && needless == 0,
        format!(
            "{needless} reconnects beyond one for each of its {lost} clients ({moved_during:.0} \
             sockets moved to rebalance during the fault, {moved_before:.0} before it)"
        ),
    )
}

/// Sockets every instance has closed to rebalance (1013) so far, summed.
pub fn rebalancing_moves(deployment: &Deployment) -> f64 {
    (0..INSTANCES)
        .filter_map(|n| {
            let name = "wstime_server_closes_total{code=\"1013\"}";
            probe::metric(&deployment.clients, deployment.instance(n), name).ok()
        })
        .sum()
}

/// The largest gap, in seconds, any client went without a tick across a reconnect.
pub fn longest_gap(result: &FailoverResult) -> f64 {
    result.gap_ms.iter().copied().fold(0.0, f64::max) / 1000.0
}

/// The chart of ticks the clients read each second, the fault's start and end marked as
/// vertical lines at seconds `fault` (from the generator's start).
pub fn ticks_chart(file: &str, title: &str, result: &FailoverResult, fault: (f64, f64)) -> Chart {
    let ticks: Vec<(f64, f64)> =
        result.ticks_per_second.iter().enumerate().map(|(s, &n)| (s as f64, n as f64)).collect();
    let top = result.ticks_per_second.iter().copied().max().unwrap_or(1) as f64;
    let mark = |at: f64| vec![(at, 0.0), (at, top)];
    Chart {
        file: file.to_owned(),
        title: title.to_owned(),
        x_label: "seconds from the clients' start".to_owned(),
        y_label: "ticks read per second".to_owned(),
        lines: vec![
            ("ticks".to_owned(), ticks),
            ("fault made".to_owned(), mark(fault.0)),
            ("fault healed".to_owned(), mark(fault.1)),
        ],
    }
}
