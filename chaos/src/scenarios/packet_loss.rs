//! Packet loss on the clients' link (nftables `numgen random`, both ways), under load: 5 % and
//! 20 %.
//!
//! What TCP and the page's retry policy say: a lost segment is sent again after the
//! retransmission timeout (200 ms at least on Linux, doubling with each loss of the same
//! segment), so a tick behind a loss arrives late, in order, on the same socket; only a
//! segment lost four times running keeps a client 5 s without a tick, the page's dead-peer
//! timeout (the second to the tick, then 0.2 + 0.4 + 0.8 + 1.6 s of timeouts, the fifth try
//! 3.2 s later), which is the one way a loss turns into a reconnect.

use std::time::Duration;

use super::{all_connected, counts_went_on, ticks_chart};
use crate::{clients::Riders, deployment::Deployment, outcome::Check, Outcome, Size};

pub const NAME_5: &str = "5 % packet loss on the clients' link";
pub const NAME_20: &str = "20 % packet loss on the clients' link";

pub fn run_5(size: Size) -> anyhow::Result<Outcome> {
    run(size, 5)
}

pub fn run_20(size: Size) -> anyhow::Result<Outcome> {
    run(size, 20)
}

/// The most reconnects `clients` clients may make in `seconds` of `percent` % loss: a
/// reconnect needs a tick's segment lost four times running (p⁴ per tick: the 5 s dead-peer
/// timeout passes before the fifth try), and the bound allows twice that, for lost
/// acknowledgements, which back the timer off further; plus one, so a small run is not
/// judged on a single unlucky client. A storm would be more reconnects than clients.
fn reconnect_bound(clients: usize, seconds: f64, percent: u8) -> f64 {
    let p = f64::from(percent) / 100.0;
    clients as f64 * seconds * p.powi(4) * 2.0 + 1.0
}

/// The bound on the 99th percentile of the ticks' lateness: the retransmission timeouts of
/// `k` losses of the same segment in a row, `k` the first for which p^k falls below 1 %
/// (two at 5 %, three at 20 %), each timeout counted twice for the same busy machine.
fn p99_bound_ms(percent: u8) -> f64 {
    let p = f64::from(percent) / 100.0;
    let mut k = 1;
    while p.powi(k) >= 0.01 {
        k += 1;
    }
    // 200 ms, 400 ms, 800 ms, …: 200 · (2^k − 1) ms in all.
    2.0 * 200.0 * f64::from((1 << k) - 1)
}

fn run(size: Size, percent: u8) -> anyhow::Result<Outcome> {
    let name = if percent == 5 { NAME_5 } else { NAME_20 };
    let clients = size.pick(60, 3000);
    let lossy_for = size.pick(Duration::from_secs(20), Duration::from_secs(60));
    let (reconnects_limit, p99_limit) =
        (reconnect_bound(clients, lossy_for.as_secs_f64(), percent), p99_bound_ms(percent));
    let promise = format!(
        "With {percent} % of the packets lost each way for {} s under {clients} clients: \
         every tick arrives, in order (no count goes backwards, no session is lost, no client \
         gives up); late, the 99th percentile of the ticks' interval lateness within \
         {:.1} s (the retransmission timeouts of the losses in a row that 99 % of ticks \
         stay under); no reconnect storm: at most {reconnects_limit:.0} reconnects (a tick \
         lost four times running, p⁴ per tick, twice over).",
        lossy_for.as_secs(),
        p99_limit / 1000.0
    );
    let deployment = Deployment::start(&[])?;
    // Measured through the loss, not after: the lateness is the loss's.
    let before = Duration::from_secs(4);
    let riders = Riders::start(&deployment, &deployment.url(), clients, "pl", before + lossy_for)?;
    std::thread::sleep(before);
    let fault = deployment.clients.lose(percent)?;
    let lossy_at = riders.now();
    std::thread::sleep(lossy_for);
    let healed_at = riders.now();
    let result = riders.finish()?;
    fault.heal()?;

    let reconnects = result.resumed + result.restarted;
    let late = result.lateness_ms;
    let checks = [
        all_connected(&result, "clients"),
        counts_went_on(&result),
        Check::new(
            late.count > 0 && late.p99 <= p99_limit,
            format!(
                "{} ticks followed another on their socket, late by {:.0} ms at the median, \
                 {:.0} ms at the 99th percentile, {:.1} s at most",
                late.count,
                late.p50,
                late.p99,
                late.max / 1000.0
            ),
        ),
        Check::new(
            reconnects as f64 <= reconnects_limit,
            format!("{reconnects} reconnects by {} of {clients} clients", result.affected),
        ),
    ];
    let chart = ticks_chart(
        &format!("packet-loss-{percent}-ticks"),
        &format!("Ticks per second, {percent} % loss on the clients' link"),
        &result,
        (lossy_at, healed_at),
    );
    Ok(Outcome::from_checks(name, &promise, &checks, vec![chart]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bounds_follow_the_loss() {
        assert_eq!(p99_bound_ms(5), 1200.0, "two losses in a row: 200 + 400 ms, twice");
        assert_eq!(p99_bound_ms(20), 2800.0, "three in a row: 200 + 400 + 800 ms, twice");
        assert!(reconnect_bound(3000, 60.0, 5) < 4.0, "5 %: hardly a reconnect");
        let at_20 = reconnect_bound(3000, 60.0, 20);
        assert!((576.0..578.0).contains(&at_20), "20 %: {at_20}");
    }
}
