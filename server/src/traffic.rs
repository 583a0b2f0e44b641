//! One worker's traffic: the ticks and bytes it sent, and how late its ticks were.
//!
//! This is the hot path's only bookkeeping, so it costs no lock and moves no cache line
//! between cores: each worker has its own counters, on a line of their own, and only that
//! worker writes them (a load and a store, not a locked add). The capacity sampler and the
//! `/metrics` scrape sum the workers' counters when they read them.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

/// Upper bounds of the tick-lateness histogram's buckets, in seconds: ticks are due on a
/// 10 ms grid, so anything much past 10 ms is a worker that was held up.
pub const LATENESS_BOUNDS: [f64; 11] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// One worker's counters.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Traffic {
    ticks: AtomicU64,
    bytes: AtomicU64,
    late_nanos: AtomicU64,
    /// Ticks per lateness bucket (the last one: later than every bound).
    late: [AtomicU64; LATENESS_BOUNDS.len() + 1],
}

/// The sum of every worker's counters.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct TrafficTotals {
    pub ticks: u64,
    pub bytes: u64,
    pub late_seconds: f64,
    pub late: [u64; LATENESS_BOUNDS.len() + 1],
}

impl Traffic {
    /// Counts a tick of `bytes` bytes, sent `late` after its moment. Only the worker that
    /// owns these counters may call this. Without the `tick-metrics` feature only the bytes
    /// are counted (the capacity model needs them).
    pub fn record_tick(&self, bytes: usize, late: Duration) {
        bump(&self.bytes, bytes as u64);
        if cfg!(feature = "tick-metrics") {
            bump(&self.ticks, 1);
            bump(&self.late_nanos, u64::try_from(late.as_nanos()).unwrap_or(u64::MAX));
            let seconds = late.as_secs_f64();
            let bucket = LATENESS_BOUNDS.iter().position(|&bound| seconds <= bound);
            bump(&self.late[bucket.unwrap_or(LATENESS_BOUNDS.len())], 1);
        }
    }

    /// Bytes of ticks sent so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Adds these counters to `totals`.
    pub fn add_to(&self, totals: &mut TrafficTotals) {
        totals.ticks += self.ticks.load(Ordering::Relaxed);
        totals.bytes += self.bytes();
        totals.late_seconds += self.late_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        for (total, count) in totals.late.iter_mut().zip(&self.late) {
            *total += count.load(Ordering::Relaxed);
        }
    }
}

/// Adds `by` to a counter that only one thread writes.
fn bump(counter: &AtomicU64, by: u64) {
    counter.store(counter.load(Ordering::Relaxed).wrapping_add(by), Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(feature = "tick-metrics")]
    fn ticks_fall_in_the_bucket_of_their_lateness() {
        let traffic = Traffic::default();
        traffic.record_tick(40, Duration::from_micros(300));
        traffic.record_tick(40, Duration::from_millis(8));
        traffic.record_tick(41, Duration::from_secs(4));
        let mut totals = TrafficTotals::default();
        traffic.add_to(&mut totals);
        traffic.add_to(&mut totals);
        assert_eq!((totals.ticks, totals.bytes), (6, 242), "two workers' worth");
        assert_eq!((totals.late[0], totals.late[3], totals.late[11]), (2, 2, 2));
        assert!((totals.late_seconds - 2.0 * 4.0083).abs() < 1e-9);
    }
}
