//! A healed partition's herd: every client of one instance silently cut from it (both ways)
//! until the instance has freed their sockets and they are deep in the page's backoff; then
//! the partition heals and releases them together, while the other clients ride on.
//!
//! The herd's clients connect to that instance directly (from a host of their own, so the cut
//! is theirs alone), and rebalancing is off: it would move the herd off its instance and
//! straight back, since their address names it. The survivors go through HAProxy, to all
//! three instances, a third of them to the herd's.

use std::time::Duration;

use wstime_cluster::lab::Direction;
use wstime_protocol::{
    retry::{CONNECT_TIMEOUT, DEAD_PEER_TIMEOUT},
    RetryPolicy,
};

use super::{
    all_connected,
    client_gone::{idle_env, idle_settings},
    connections, counts_went_on, longest_gap, ticks_chart, time_until, took,
};
use crate::{clients::Riders, deployment::Deployment, outcome::Check, Outcome, Size};

pub const NAME: &str = "a healed partition's herd";

/// The survivors' bound: no tick of theirs is more than half a tick late, through the herd.
const SURVIVOR_LATENESS_MS: f64 = 500.0;

pub fn run(size: Size) -> anyhow::Result<Outcome> {
    let (herd, survivors) = (size.pick(60, 3000), size.pick(60, 3000));
    let (idle, ping) = idle_settings(size);
    // Long enough for the instance to free the herd's sockets (idle + ping + the second the
    // ticks are spread over), and for the herd's retries to be a few attempts deep.
    let cut_for = idle + ping + Duration::from_secs(1) + DEAD_PEER_TIMEOUT;
    // After the heal, a client waits out at most the backoff's cap, then connects.
    let back_limit = RetryPolicy::DEFAULT.cap + CONNECT_TIMEOUT;
    let promise = format!(
        "With IDLE_TIMEOUT_SECS={} and PING_INTERVAL_SECS={}: {herd} clients of one instance \
         cut from it for {} s, then released at once among {survivors} others: every one of \
         the herd resumes its session with its count within {} s of the heal (the page's \
         backoff cap, {} s, and a connect, {} s); no survivor loses its socket, and no \
         survivor's tick is more than {:.1} s late from the heal until the herd is back; no \
         count goes backwards.",
        idle.as_secs(),
        ping.as_secs(),
        cut_for.as_secs(),
        back_limit.as_secs(),
        RetryPolicy::DEFAULT.cap.as_secs(),
        CONNECT_TIMEOUT.as_secs(),
        SURVIVOR_LATENESS_MS / 1000.0,
    );
    let mut env = idle_env(size).to_vec();
    env.push(("REBALANCE".to_owned(), "off".to_owned()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut deployment = Deployment::start(&env)?;
    let herd_host = deployment.lab.add_host("herd")?;

    let before = Duration::from_secs(4);
    let hold = before + cut_for + back_limit + Duration::from_secs(5);
    let riders = Riders::start(&deployment, &deployment.url(), survivors, "sv", hold)?;
    let herders =
        Riders::start_from(&deployment, &herd_host, &deployment.instance_url(0), herd, "hd", hold)?;
    std::thread::sleep(before);

    let cut = herd_host.cut(&deployment.nodes[0], Direction::Both)?;
    let cut_at = herders.now();
    std::thread::sleep(cut_for);
    let freed = connections(&deployment, 0);
    cut.heal()?;
    let (healed_at, survivors_healed_at) = (herders.now(), riders.now());
    // Back: the herd's instance holds its share of survivors and the whole herd again.
    let expected = freed.unwrap_or(0) + herd as u64;
    let back = time_until(back_limit + Duration::from_secs(5), || {
        connections(&deployment, 0).is_some_and(|held| held >= expected)
    });
    let herd_result = herders.finish()?;
    let result = riders.finish()?;

    // The survivors' worst lateness in the seconds from the heal until the herd was back.
    let from = survivors_healed_at.floor() as usize;
    let until = (survivors_healed_at + back.unwrap_or(back_limit).as_secs_f64()).ceil() as usize;
    let during = result.worst_lateness_ms_per_second.iter().take(until + 1).skip(from);
    let worst_during = during.copied().fold(0.0, f64::max);
    let worst_before = result.worst_lateness_ms_per_second.iter().take(from).copied();
    let worst_before = worst_before.fold(0.0, f64::max);
    let peak = herd_result.reconnects_per_100ms.iter().copied().max().unwrap_or(0);
    let gap = longest_gap(&herd_result);
    let checks = [
        all_connected(&herd_result, "of the herd"),
        all_connected(&result, "survivors"),
        Check::new(
            herd_result.resumed >= herd && back.is_some_and(|t| t <= back_limit),
            format!(
                "{} of {herd} resumed their count ({}; at most {peak} in one 100 ms), away at \
                 most {gap:.1} s",
                herd_result.resumed,
                took("all back", back, back_limit + Duration::from_secs(5)),
            ),
        ),
        counts_went_on(&herd_result),
        Check::new(
            result.affected == 0 && worst_during <= SURVIVOR_LATENESS_MS,
            format!(
                "{} of {survivors} survivors lost their socket; their worst tick {:.0} ms late \
                 through the herd ({:.0} ms before the cut)",
                result.affected, worst_during, worst_before
            ),
        ),
        counts_went_on(&result),
    ];
    let chart = ticks_chart(
        "herd-ticks",
        "Ticks per second read by the herd, cut from its instance and released",
        &herd_result,
        (cut_at, healed_at),
    );
    let lateness: Vec<(f64, f64)> = result
        .worst_lateness_ms_per_second
        .iter()
        .enumerate()
        .map(|(s, &late)| (s as f64, late))
        .collect();
    let survivors_chart = crate::Chart {
        file: "herd-survivors-lateness".to_owned(),
        title: "The survivors' worst tick lateness in each second".to_owned(),
        x_label: "seconds from the survivors' start".to_owned(),
        y_label: "worst lateness (ms)".to_owned(),
        lines: vec![("worst lateness".to_owned(), lateness)],
    };
    Ok(Outcome::from_checks(NAME, &promise, &checks, vec![chart, survivors_chart]))
}
