//! The clients' host silently gone (cut from HAProxy both ways: no FIN, no RST), then back.
//!
//! What the server's settings say: a client that sends nothing, not even a pong, for
//! `IDLE_TIMEOUT_SECS` is dropped at the next ping (`PING_INTERVAL_SECS`), so its socket is
//! freed within the sum; its session outlives the socket for `RESUME_WINDOW_SECS` (300 s).

use std::time::Duration;

use wstime_cluster::lab::Direction;

use super::{all_connections, counts_went_on, longest_gap, ticks_chart, time_until, took};
use crate::{clients::Riders, deployment::Deployment, outcome::Check, Outcome, Size};

pub const NAME: &str = "a client silently gone";

/// The resume window the deployment runs with (the default).
const RESUME_WINDOW_SECS: f64 = 300.0;

/// The idle timeout and ping interval for `size`: the defaults (30 s, 10 s) at the realistic
/// size, shorter ones for the tests.
pub fn idle_settings(size: Size) -> (Duration, Duration) {
    size.pick(
        (Duration::from_secs(8), Duration::from_secs(2)),
        (Duration::from_secs(30), Duration::from_secs(10)),
    )
}

/// The instances' environment for `idle_settings(size)`.
pub fn idle_env(size: Size) -> [(String, String); 2] {
    let (idle, ping) = idle_settings(size);
    [
        ("IDLE_TIMEOUT_SECS".to_owned(), idle.as_secs().to_string()),
        ("PING_INTERVAL_SECS".to_owned(), ping.as_secs().to_string()),
    ]
}

pub fn run(size: Size) -> anyhow::Result<Outcome> {
    let clients = size.pick(60, 3000);
    let (idle, ping) = idle_settings(size);
    // One second over the bound: the sockets' tick phases spread their pings over a second.
    let freed_limit = idle + ping + Duration::from_secs(1);
    let promise = format!(
        "With IDLE_TIMEOUT_SECS={} and PING_INTERVAL_SECS={}: every socket of the vanished \
         clients is freed within {} s (idle timeout + ping interval + the second the ticks \
         are spread over); once back, every client resumes its session with its count \
         (the resume window is {RESUME_WINDOW_SECS:.0} s), following the page's backoff; no \
         count goes backwards.",
        idle.as_secs(),
        ping.as_secs(),
        freed_limit.as_secs()
    );
    let env = idle_env(size);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let deployment = Deployment::start(&env)?;
    // Long enough after the heal for the page's backoff (attempts of 5 s each, delays up to
    // 2^n s) to bring every client back.
    let (before, after) =
        (Duration::from_secs(4), size.pick(Duration::from_secs(25), Duration::from_secs(45)));
    let cut_for = freed_limit + Duration::from_secs(2);
    let riders =
        Riders::start(&deployment, &deployment.url(), clients, "cg", before + cut_for + after)?;
    std::thread::sleep(before);

    let held_before = all_connections(&deployment).unwrap_or(0);
    let cut = deployment.clients.cut(&deployment.balancer, Direction::Both)?;
    let cut_at = riders.now();
    let freed = time_until(cut_for, || all_connections(&deployment) == Some(0));
    std::thread::sleep(cut_for.saturating_sub(freed.unwrap_or(cut_for)));
    cut.heal()?;
    let healed_at = riders.now();
    let result = riders.finish()?;

    let gap = longest_gap(&result);
    let checks = [
        Check::new(
            held_before >= clients as u64 && freed.is_some_and(|t| t <= freed_limit),
            format!("{held_before} sockets {}", took("all freed", freed, cut_for)),
        ),
        Check::new(
            result.resumed >= clients && gap < RESUME_WINDOW_SECS,
            format!(
                "{} of {clients} clients resumed with their count, away at most {gap:.1} s",
                result.resumed
            ),
        ),
        counts_went_on(&result),
    ];
    let chart = ticks_chart(
        "client-gone-ticks",
        "Ticks per second, the clients' host gone and back",
        &result,
        (cut_at, healed_at),
    );
    Ok(Outcome::from_checks(NAME, &promise, &checks, vec![chart]))
}
