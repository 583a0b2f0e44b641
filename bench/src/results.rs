//! What a load generator reports. Both binaries use these types, so the driver reads
//! exactly what the generator wrote.

use serde::{Deserialize, Serialize};

use crate::stats::Summary;

/// A steady-load run: connections held, ticks measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SteadyResult {
    pub connections: usize,
    pub failed_connects: usize,
    /// Seconds from the first connect to the last.
    pub connect_secs: f64,
    /// Interval lateness of each tick, in ms: the interval since the previous tick less 1 s
    /// (0 when it came early). See [`crate::lateness`].
    pub lateness_ms: Summary,
    /// Schedule lateness of each tick, in ms: how much later than its connection's best
    /// tick its count says it should be. See [`crate::lateness`].
    #[serde(default)]
    pub schedule_lateness_ms: Summary,
    /// For each connection, how many of the generator's connections (itself included) have
    /// their ticks arrive in the same millisecond of the second. See [`crate::lateness`].
    #[serde(default)]
    pub crowding: Summary,
    /// Ticks whose count was not the previous one plus one.
    pub out_of_order: usize,
    pub ticks: usize,
    /// Connections that ended while they were supposed to be held.
    pub dropped: usize,
}

/// A failover run: clients that lost their instance and what happened next.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FailoverResult {
    pub clients: usize,
    /// Clients whose first connection opened (the others are not in any other figure).
    #[serde(default)]
    pub connected: usize,
    /// Clients whose connection ended at least once.
    pub affected: usize,
    /// Milliseconds from the last tick before a loss to the first after it.
    pub gap_ms: Vec<f64>,
    /// Reconnects whose first tick continued the count.
    pub resumed: usize,
    /// Reconnects whose first tick said 0: the session was lost.
    pub restarted: usize,
    /// Clients that used every attempt.
    pub gave_up: usize,
    /// Successful reconnects per 100 ms, from the first loss on.
    pub reconnects_per_100ms: Vec<usize>,
    /// Ticks whose count was below the same client's previous one: a session gone back.
    #[serde(default)]
    pub backwards: usize,
    /// Ticks read by all clients in each second from the generator's start.
    #[serde(default)]
    pub ticks_per_second: Vec<usize>,
    /// Interval lateness of every tick that followed another on the same connection, in ms
    /// (see [`crate::lateness`]): what a lossy or crowded link costs the ticks that do arrive.
    #[serde(default)]
    pub lateness_ms: Summary,
    /// The worst such lateness among the ticks read in each second from the generator's
    /// start, in ms: when, through a fault, the ticks were late.
    #[serde(default)]
    pub worst_lateness_ms_per_second: Vec<f64>,
}

/// Adds `part` into `total` position by position, growing `total` to `part`'s length: for
/// per-interval counts from several clients or generators, which each end when they end.
pub fn sum_into(total: &mut Vec<usize>, part: &[usize]) {
    if total.len() < part.len() {
        total.resize(part.len(), 0);
    }
    for (total, n) in total.iter_mut().zip(part) {
        *total += n;
    }
}

/// A reconnect herd: clients that all closed their connection at one moment (the drop) and
/// came back to the same server with the same id (see docs/benchmarks.md).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HerdResult {
    pub clients: usize,
    /// Clients whose connection ended before the drop.
    pub lost_before: usize,
    /// Clients ticking again after the drop.
    pub rejoined: usize,
    /// Attempts after the drop that gave no tick (refused, reset, timed out).
    pub failed_attempts: usize,
    /// Clients whose retry policy gave up.
    pub gave_up: usize,
    /// Rejoined clients whose first count was not above their last one before the drop: the
    /// count restarted or went back instead of going on.
    pub count_resets: usize,
    /// Ticks after a client's first one whose count was not the previous one plus one.
    pub out_of_order: usize,
    /// Milliseconds from the drop until the last client's first tick; `None` unless every
    /// client came back.
    pub all_ticking_ms: Option<f64>,
    /// Milliseconds from the drop to each client's first tick.
    pub drop_to_tick_ms: Summary,
    /// Milliseconds from the start of the attempt that succeeded to its first tick.
    pub connect_to_tick_ms: Summary,
    /// Handshakes completed per 100 ms, from the drop on.
    pub handshakes_per_100ms: Vec<usize>,
}

/// Keeps in `worst` the larger of it and `part`, position by position, growing `worst` to
/// `part`'s length: for per-interval worst figures from several clients or generators.
pub fn max_into(worst: &mut Vec<f64>, part: &[f64]) {
    if worst.len() < part.len() {
        worst.resize(part.len(), 0.0);
    }
    for (worst, &n) in worst.iter_mut().zip(part) {
        *worst = worst.max(n);
    }
}
