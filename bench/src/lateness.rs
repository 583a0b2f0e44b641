//! How late each tick is, two ways, for one connection.
//!
//! - **Interval lateness**: the time since the connection's previous tick, less 1 s. It sees
//!   a tick that comes late and the next one on time, but not a schedule that drifts or moves
//!   to a later phase: after the shift every interval is a clean second again.
//! - **Schedule lateness**: each tick carries its count `k`, so `offset_k = arrival_k − k·1 s`
//!   is the moment the connection's count would have said 0. The smallest offset over every
//!   tick since the socket opened (up to the end of the window) is the connection's best
//!   tick, its anchor; each tick is late by `offset_k − anchor`. A drift, or a phase moved
//!   by a stall, stays late for every tick after it.
//!
//! - **Crowding**: how many of a generator's connections have their ticks arrive in the
//!   same millisecond of the second ([`TickLog::phase_ms`]). It shows how a server spreads
//!   its ticks: a server sending on a coarse grid crowds each tick among many, and a client
//!   reading a crowd reads its last tick a crowd's worth after its first.
//!
//! The Node client (`bench/node-client/client.js`) measures the same two ways, so the two
//! clients can be compared figure by figure.

/// Where a tick arrived relative to the measuring window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// Before the window opened (or before it is known): only the anchor learns from it.
    Before,
    /// Inside the window: measured.
    Inside,
    /// After the window closed: ignored.
    After,
}

/// One connection's ticks, as they arrive.
#[derive(Debug)]
pub struct TickLog {
    /// Arrival (ms) and count of the last tick.
    previous: Option<(f64, u64)>,
    /// The smallest `arrival − count·1 s` so far, in ms.
    anchor_ms: f64,
    /// `arrival − count·1 s` of each tick in the window, in ms.
    offsets_ms: Vec<f64>,
    /// Interval lateness of each tick in the window after the first, in ms (0 when early).
    pub interval_lateness_ms: Vec<f64>,
    /// Ticks in the window whose count was not the previous one plus one.
    pub out_of_order: usize,
    /// Ticks measured by interval: in the window and after another tick.
    pub ticks: usize,
}

impl Default for TickLog {
    fn default() -> Self {
        Self {
            previous: None,
            anchor_ms: f64::INFINITY,
            offsets_ms: Vec::new(),
            interval_lateness_ms: Vec::new(),
            out_of_order: 0,
            ticks: 0,
        }
    }
}

impl TickLog {
    /// Records a tick saying `count` that arrived at `at_ms` (from any fixed origin).
    pub fn record(&mut self, at_ms: f64, count: u64, window: Window) {
        let offset = at_ms - count as f64 * 1000.0;
        if window != Window::After {
            self.anchor_ms = self.anchor_ms.min(offset);
        }
        if window == Window::Inside {
            self.offsets_ms.push(offset);
            if let Some((previous_at, previous_count)) = self.previous {
                self.ticks += 1;
                self.interval_lateness_ms.push((at_ms - previous_at - 1000.0).max(0.0));
                if count != previous_count + 1 {
                    self.out_of_order += 1;
                }
            }
        }
        self.previous = Some((at_ms, count));
    }

    /// The millisecond of the second (0–999) this connection's ticks arrive in: its best
    /// tick's, once it has had a tick.
    pub fn phase_ms(&self) -> Option<usize> {
        self.anchor_ms.is_finite().then(|| self.anchor_ms.rem_euclid(1000.0) as usize % 1000)
    }

    /// Schedule lateness of each tick in the window, in ms.
    pub fn schedule_lateness_ms(&self) -> impl Iterator<Item = f64> + '_ {
        self.offsets_ms.iter().map(|offset| offset - self.anchor_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log of ticks 0, 1, 2, … arriving at `arrivals` (ms), all in the window.
    fn log_of(arrivals: &[f64]) -> TickLog {
        let mut log = TickLog::default();
        for (count, at) in arrivals.iter().enumerate() {
            log.record(*at, count as u64, Window::Inside);
        }
        log
    }

    #[test]
    fn a_drifting_schedule_is_late_by_schedule_but_not_by_interval() {
        // 5 ms later every second: each interval is 5 ms long, the fourth tick 15 ms late.
        let log = log_of(&[0.0, 1005.0, 2010.0, 3015.0]);
        assert_eq!(log.interval_lateness_ms, [5.0, 5.0, 5.0]);
        assert_eq!(log.schedule_lateness_ms().collect::<Vec<_>>(), [0.0, 5.0, 10.0, 15.0]);
    }

    #[test]
    fn a_phase_moved_by_a_stall_stays_late_by_schedule_only() {
        // One tick 300 ms late, and the schedule keeps the new phase after it.
        let log = log_of(&[0.0, 1000.0, 2300.0, 3300.0, 4300.0]);
        assert_eq!(log.interval_lateness_ms, [0.0, 300.0, 0.0, 0.0]);
        assert_eq!(log.schedule_lateness_ms().collect::<Vec<_>>(), [0.0, 0.0, 300.0, 300.0, 300.0]);
    }

    #[test]
    fn ticks_before_the_window_set_the_anchor_and_later_ones_are_ignored() {
        let mut log = TickLog::default();
        log.record(0.0, 0, Window::Before);
        log.record(1040.0, 1, Window::Inside);
        log.record(2040.0, 2, Window::Inside);
        log.record(2500.0, 3, Window::After);
        assert_eq!(log.schedule_lateness_ms().collect::<Vec<_>>(), [40.0, 40.0]);
        assert_eq!((log.ticks, log.interval_lateness_ms.clone()), (2, vec![40.0, 0.0]));
    }

    #[test]
    fn a_count_that_skips_is_out_of_order() {
        let mut log = TickLog::default();
        for (at, count) in [(0.0, 0), (1000.0, 1), (2000.0, 3), (3000.0, 4)] {
            log.record(at, count, Window::Inside);
        }
        assert_eq!(log.out_of_order, 1);
    }
}
