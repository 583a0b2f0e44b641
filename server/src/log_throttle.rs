//! A log line that may come from a flood (refused upgrades, clients turned away, touches
//! dropped) is written at most once a minute per kind, and says how many like it went
//! unlogged since the last: a flood cannot flood the log, nor hide that it happened.

use std::time::Duration;

use tokio::time::Instant;

/// How often one kind of line is written, at most.
pub const LOG_EVERY: Duration = Duration::from_secs(60);

/// One kind of line's turn.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogThrottle {
    /// When it was last written; `None` before its first line.
    at: Option<Instant>,
    /// How many went unlogged since.
    unlogged: u64,
}

impl LogThrottle {
    /// Counts one more at `now`: `Some(unlogged)` when a line is due (the first, or a
    /// minute after the last), with how many went unlogged between; `None` otherwise.
    pub fn turn(&mut self, now: Instant) -> Option<u64> {
        if self.at.is_some_and(|at| now.duration_since(at) < LOG_EVERY) {
            self.unlogged += 1;
            return None;
        }
        self.at = Some(now);
        Some(std::mem::take(&mut self.unlogged))
    }

    /// When its last line was written, if ever.
    pub fn last(&self) -> Option<Instant> {
        self.at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_a_minute_with_the_count_between() {
        let mut throttle = LogThrottle::default();
        let start = Instant::now();
        let at = |secs| start + Duration::from_secs(secs);
        assert_eq!(throttle.turn(at(0)), Some(0));
        assert_eq!(throttle.turn(at(1)), None);
        assert_eq!(throttle.turn(at(59)), None);
        assert_eq!(throttle.turn(at(61)), Some(2), "two went unlogged");
        assert_eq!(throttle.turn(at(62)), None);
    }
}
