//! Clients on a 16 kbit/s link (tc `tbf` on both ends of their host's link), sharing an
//! instance with clients on a fast one.
//!
//! What the server's design says (server/src/connection): a tick is written straight to the
//! socket; what the kernel refuses is parked, at most `MAX_PARKED_BYTES` per socket, and a
//! peer that lets more pile up is dropped; no other per-client queue exists. So a slow client
//! costs the instance its socket and at most that many bytes, and the ticks of the others,
//! written in the same pass of the tick wheel, do not wait for it. Both groups connect to the
//! instance directly: through HAProxy, HAProxy's buffers would take the slow clients' backlog
//! first and the server would never see it.
//!
//! A tick stream is about 50 bytes a second, so a slow socket's backlog grows by at most
//! that: it sits in the kernel's send buffer (16 KiB to start) for minutes before a byte is
//! parked, and the cap itself (a peer that never reads) is the server's own test's
//! (`a_peer_that_never_reads_is_dropped_once_its_parked_bytes_pass_the_cap`). What the lab
//! shows is the rest: the instance's memory while its slow peers lag, and the fast ones'
//! ticks beside them.

use std::time::{Duration, Instant};

use wstime_bench::proc::rss_bytes;
use wstime_server::connection::MAX_PARKED_BYTES;

use super::{all_connected, connections, counts_went_on, ticks_chart};
use crate::{clients::Riders, deployment::Deployment, outcome::Check, Outcome, Size};

pub const NAME: &str = "clients on a 16 kbit/s link";

/// The slow link's rate.
const SLOW_BITS_PER_SECOND: u64 = 16_000;
/// A socket's own state in the instance, beside its parked bytes: docs/benchmarks.md measures
/// 1.3–1.4 KB; the bound allows three times that.
const SOCKET_STATE_BYTES: u64 = 4 * 1024;
/// The allocator's own slack: arenas and pages it keeps once touched.
const ALLOCATOR_SLACK_BYTES: u64 = 4 * 1024 * 1024;
/// The fast clients' bound: no tick of theirs more than half a tick late.
const FAST_LATENESS_MS: f64 = 500.0;

pub fn run(size: Size) -> anyhow::Result<Outcome> {
    let (fast, slow) = (size.pick(60, 3000), size.pick(20, 300));
    let slow_for = size.pick(Duration::from_secs(20), Duration::from_secs(60));
    let promise = format!(
        "{slow} clients on a {} kbit/s link and {fast} on a fast one, on the same instance, \
         for {} s: the instance's resident memory grows by at most its sockets' state \
         ({} KiB each) and MAX_PARKED_BYTES ({} KiB) for each socket it holds beyond those \
         it held before, plus {} MiB of allocator slack; no fast client loses its socket, \
         their ticks' 99th-percentile interval lateness stays within {:.1} s, and no count \
         goes backwards.",
        SLOW_BITS_PER_SECOND / 1000,
        slow_for.as_secs(),
        SOCKET_STATE_BYTES / 1024,
        MAX_PARKED_BYTES / 1024,
        ALLOCATOR_SLACK_BYTES / 1024 / 1024,
        FAST_LATENESS_MS / 1000.0,
    );
    // Rebalancing off: with every client on one instance it would move them to the others,
    // and a client whose address names the instance comes straight back (the first run
    // here: 68 reconnects by 19 of 60 fast clients).
    let mut deployment = Deployment::start(&[("REBALANCE", "off")])?;
    let slow_host = deployment.lab.add_host("slow")?;
    let pid = deployment.instances[0].process.pid();
    let url = deployment.instance_url(0);

    let before = Duration::from_secs(4);
    let hold = before + slow_for;
    let riders = Riders::start(&deployment, &url, fast, "fa", hold)?;
    // Opened before the link is slowed: over 16 kbit/s the handshakes alone would take a
    // minute, and the scenario is clients whose link turns slow, not clients that never came.
    let laggards = Riders::start_from(&deployment, &slow_host, &url, slow, "sl", hold)?;
    std::thread::sleep(before);
    let (rss_before, held_before) = (rss_bytes(pid)?, connections(&deployment, 0).unwrap_or(0));

    let fault = slow_host.slow(&deployment.lab, SLOW_BITS_PER_SECOND)?;
    let slowed_at = riders.now();
    let (mut rss_most, mut held_most) = (rss_before, held_before);
    let started = Instant::now();
    while started.elapsed() < slow_for {
        std::thread::sleep(Duration::from_millis(500));
        rss_most = rss_most.max(rss_bytes(pid)?);
        held_most = held_most.max(connections(&deployment, 0).unwrap_or(0));
    }
    let healed_at = riders.now();
    let result = riders.finish()?;
    let slow_result = laggards.finish()?;
    fault.heal()?;

    let grown = rss_most.saturating_sub(rss_before);
    let extra_sockets = held_most.saturating_sub(held_before) + slow as u64;
    let memory_limit =
        extra_sockets * (SOCKET_STATE_BYTES + MAX_PARKED_BYTES as u64) + ALLOCATOR_SLACK_BYTES;
    let late = result.lateness_ms;
    let slow_ticks: usize = slow_result.ticks_per_second.iter().sum();
    let checks = [
        all_connected(&result, "fast clients"),
        all_connected(&slow_result, "slow clients"),
        Check::new(
            grown <= memory_limit,
            format!(
                "resident memory {:.1} → at most {:.1} MiB (+{:.0} KiB, bound {:.0} KiB), \
                 {held_before} → at most {held_most} sockets; the slow clients read {slow_ticks} \
                 ticks, {} reconnects",
                rss_before as f64 / 1048576.0,
                rss_most as f64 / 1048576.0,
                grown as f64 / 1024.0,
                memory_limit as f64 / 1024.0,
                slow_result.resumed + slow_result.restarted,
            ),
        ),
        Check::new(
            result.affected == 0 && late.count > 0 && late.p99 <= FAST_LATENESS_MS,
            format!(
                "{} of {fast} fast clients lost their socket; their ticks late by {:.0} ms at \
                 the 99th percentile, {:.0} ms at most",
                result.affected, late.p99, late.max
            ),
        ),
        counts_went_on(&result),
    ];
    let chart = ticks_chart(
        "slow-clients-ticks",
        "Ticks per second read by the fast clients beside slow ones",
        &result,
        (slowed_at, healed_at),
    );
    Ok(Outcome::from_checks(NAME, &promise, &checks, vec![chart]))
}
