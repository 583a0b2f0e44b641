//! The load generator's herd mode (`--herd`): every client holds its connection until the
//! drop, closes it, and reconnects to the same server with the same id, either at once and
//! again at once after every failure, or as the page does (its retry policy). Each records
//! when its handshake completed, when its first tick came and whether the count went on.

use std::{net::Ipv4Addr, time::Duration};

use futures_util::StreamExt as _;
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use wstime_bench::{results::HerdResult, stats::Summary};
use wstime_protocol::{
    retry::{Next, CONNECT_TIMEOUT},
    Disconnect, RetryPolicy, Tick,
};

use super::{open, Socket, Target};

/// How a herd client comes back after the drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Retry {
    /// At once, and at once again after a failed attempt: the worst a server can meet.
    Immediate,
    /// As the page does: [`RetryPolicy::DEFAULT`], full jitter from the first attempt.
    Page,
}

/// What one herd client saw.
#[derive(Debug, Default)]
pub struct Rejoined {
    /// The count of the last tick before the drop.
    last_before: Option<u64>,
    /// The connection ended before the drop (the client took no part in the herd).
    lost_before: bool,
    /// Attempts after the drop that gave no tick: refused, reset, timed out.
    failed_attempts: usize,
    /// The attempt that gave a tick: when its handshake completed, how long its start took
    /// to reach the first tick, and when that tick arrived with which count.
    handshake_at: Option<Instant>,
    connect_to_tick: Option<Duration>,
    first_tick: Option<(Instant, u64)>,
    /// Ticks after the first whose count was not the previous one plus one.
    out_of_order: usize,
    /// The policy said to give up (or stop, for a refusal).
    gave_up: bool,
}

/// Holds `socket` until `dropping`, then closes it and comes back with the same `id` as
/// `retry` says, reading ticks until `stop`.
pub async fn rejoin(
    mut socket: Socket,
    target: &Target,
    source: Ipv4Addr,
    id: &str,
    retry: Retry,
    dropping: CancellationToken,
    stop: CancellationToken,
) -> Rejoined {
    let mut rejoined = Rejoined::default();
    loop {
        let message = tokio::select! {
            () = dropping.cancelled() => break,
            message = socket.next() => message,
        };
        match message {
            Some(Ok(Message::Text(text))) => {
                if let Some(tick) = Tick::parse(&text) {
                    rejoined.last_before = Some(tick.seconds);
                }
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => {
                rejoined.lost_before = true;
                return rejoined;
            }
        }
    }
    // Closed before the next one opens, as a page's socket is gone when it reconnects: the
    // generator then holds one socket per client, far under its open-file limit.
    drop(socket);
    let policy = RetryPolicy::DEFAULT;
    let mut attempt = 0;
    // The page's first attempt after a loss waits its jittered delay too.
    let mut delay = match retry {
        Retry::Immediate => Duration::ZERO,
        Retry::Page => delay_after(&policy, 0, Disconnect::Lost).unwrap_or_default(),
    };
    loop {
        tokio::select! {
            () = stop.cancelled() => return rejoined,
            () = tokio::time::sleep(delay) => {}
        }
        let started = Instant::now();
        let outcome = tokio::select! {
            () = stop.cancelled() => return rejoined,
            outcome = first_tick(target, source, id) => outcome,
        };
        match outcome {
            Ok((socket, handshake_at, tick_at, count)) => {
                rejoined.handshake_at = Some(handshake_at);
                rejoined.connect_to_tick = Some(tick_at - started);
                rejoined.first_tick = Some((tick_at, count));
                rejoined.out_of_order = follow(socket, count, &stop).await;
                return rejoined;
            }
            Err(why) => {
                rejoined.failed_attempts += 1;
                attempt += 1;
                delay = match retry {
                    Retry::Immediate => Duration::ZERO,
                    Retry::Page => match delay_after(&policy, attempt, why) {
                        Some(delay) => delay,
                        None => {
                            rejoined.gave_up = true;
                            return rejoined;
                        }
                    },
                };
            }
        }
    }
}

/// The page's delay before the attempt after `attempt` ended for `why`; `None` when it
/// would give up.
fn delay_after(policy: &RetryPolicy, attempt: u32, why: Disconnect) -> Option<Duration> {
    match policy.next(attempt, why, rand::random()) {
        Next::RetryIn(delay) => Some(delay),
        Next::GiveUp | Next::Stop => None,
    }
}

/// One attempt: the socket, when its handshake completed, and when its first tick came with
/// which count; or why it ended without one.
async fn first_tick(
    target: &Target,
    source: Ipv4Addr,
    id: &str,
) -> Result<(Socket, Instant, Instant, u64), Disconnect> {
    let mut socket = open(target, source, id).await.map_err(|_| Disconnect::Lost)?;
    let handshake_at = Instant::now();
    let deadline = handshake_at + CONNECT_TIMEOUT;
    loop {
        match tokio::time::timeout_at(deadline, socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                if let Some(tick) = Tick::parse(&text) {
                    return Ok((socket, handshake_at, Instant::now(), tick.seconds));
                }
            }
            Ok(Some(Ok(Message::Close(frame)))) => {
                return Err(frame.map_or(Disconnect::Lost, |frame| {
                    Disconnect::from_close(Some(u16::from(frame.code)), &frame.reason)
                }))
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_)) | None) | Err(_) => return Err(Disconnect::Lost),
        }
    }
}

/// Reads the rejoined connection's ticks until `stop`; returns how many did not go on from
/// the one before (the first said `first`).
async fn follow(mut socket: Socket, first: u64, stop: &CancellationToken) -> usize {
    let (mut previous, mut out_of_order) = (first, 0);
    loop {
        let message = tokio::select! {
            () = stop.cancelled() => break,
            message = timeout(CONNECT_TIMEOUT, socket.next()) => message,
        };
        match message {
            Ok(Some(Ok(Message::Text(text)))) => {
                if let Some(tick) = Tick::parse(&text) {
                    out_of_order += usize::from(tick.seconds != previous + 1);
                    previous = tick.seconds;
                }
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_)) | None) | Err(_) => {
                out_of_order += 1;
                break;
            }
        }
    }
    let _ = socket.close(None).await;
    out_of_order
}

/// What every client saw, from the drop at `dropped_at`.
pub fn result(clients: usize, dropped_at: Instant, rejoins: Vec<Rejoined>) -> HerdResult {
    let since_drop = |at: Instant| at.saturating_duration_since(dropped_at);
    let mut handshakes_per_100ms: Vec<usize> = Vec::new();
    for at in rejoins.iter().filter_map(|r| r.handshake_at) {
        let bucket = (since_drop(at).as_millis() / 100) as usize;
        if handshakes_per_100ms.len() <= bucket {
            handshakes_per_100ms.resize(bucket + 1, 0);
        }
        handshakes_per_100ms[bucket] += 1;
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let back: Vec<&Rejoined> = rejoins.iter().filter(|r| r.first_tick.is_some()).collect();
    let drop_to_tick: Vec<f64> =
        back.iter().filter_map(|r| r.first_tick).map(|(at, _)| ms(since_drop(at))).collect();
    HerdResult {
        clients,
        lost_before: rejoins.iter().filter(|r| r.lost_before).count(),
        rejoined: back.len(),
        failed_attempts: rejoins.iter().map(|r| r.failed_attempts).sum(),
        gave_up: rejoins.iter().filter(|r| r.gave_up).count(),
        count_resets: back
            .iter()
            .filter(|r| match (r.last_before, r.first_tick) {
                (Some(before), Some((_, after))) => after <= before,
                _ => false,
            })
            .count(),
        out_of_order: rejoins.iter().map(|r| r.out_of_order).sum(),
        all_ticking_ms: (back.len() == clients)
            .then(|| drop_to_tick.iter().copied().fold(0.0, f64::max)),
        drop_to_tick_ms: Summary::of(drop_to_tick),
        connect_to_tick_ms: Summary::of(
            back.iter().filter_map(|r| r.connect_to_tick).map(ms).collect(),
        ),
        handshakes_per_100ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client whose last tick before the drop said `before`, back `after_ms` after the
    /// drop at `dropped` with a first tick saying `first`, its handshake 1 ms before.
    fn back(dropped: Instant, before: u64, after_ms: u64, first: u64) -> Rejoined {
        let at = dropped + Duration::from_millis(after_ms);
        Rejoined {
            last_before: Some(before),
            handshake_at: Some(at - Duration::from_millis(1)),
            connect_to_tick: Some(Duration::from_millis(5)),
            first_tick: Some((at, first)),
            ..Rejoined::default()
        }
    }

    #[test]
    fn a_count_that_does_not_go_on_is_a_reset() {
        let dropped = Instant::now();
        let rejoins =
            vec![back(dropped, 7, 50, 8), back(dropped, 7, 60, 0), back(dropped, 7, 70, 7)];
        let three = result(3, dropped, rejoins);
        assert_eq!((three.rejoined, three.count_resets), (3, 2));
    }

    #[test]
    fn all_are_back_when_the_last_ticks_and_not_before() {
        let dropped = Instant::now();
        let rejoins = vec![back(dropped, 3, 150, 4), back(dropped, 3, 1250, 5)];
        let all = result(2, dropped, rejoins);
        assert_eq!(all.all_ticking_ms, Some(1250.0));
        assert_eq!(all.handshakes_per_100ms.iter().sum::<usize>(), 2);
        assert_eq!((all.handshakes_per_100ms[1], all.handshakes_per_100ms[12]), (1, 1));

        let stuck = Rejoined { last_before: Some(3), failed_attempts: 4, ..Rejoined::default() };
        let one_stuck = result(2, dropped, vec![back(dropped, 3, 150, 4), stuck]);
        assert_eq!((one_stuck.all_ticking_ms, one_stuck.failed_attempts), (None, 4));
    }
}
