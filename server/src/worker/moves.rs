//! Sockets the workers are to move to other instances: set once a second by the rebalancer
//! ([`crate::rebalance`]), taken a little at each turn of every worker's wheel, and closed
//! with 1013 and a reason that tells the client when to come back.

use std::{
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

/// How often a worker takes its share of the moves: a hundred times a second whatever the
/// wheel's resolution, so that with [`Moves::take_for_a_turn`]'s fiftieth the closes spread
/// over the second.
pub const TAKE_EVERY: Duration = Duration::from_millis(10);

/// How long a moved client is asked to wait before reconnecting (it adds jitter).
pub const RETRY_HINT: Duration = Duration::from_millis(500);

/// The close reason of a moved socket, hint included.
pub fn close_reason() -> &'static str {
    static REASON: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    REASON.get_or_init(|| wstime_protocol::close::with_retry_hint("rebalancing", RETRY_HINT))
}

/// The sockets still to move this second, shared by every worker of the instance.
#[derive(Debug, Default)]
pub struct Moves(AtomicUsize);

impl Moves {
    /// Asks for `sockets` to be moved, in place of what is left of the last ask.
    pub fn set(&self, sockets: usize) {
        self.0.store(sockets, Ordering::Relaxed);
    }

    /// Takes some of what is left for one turn of a worker's wheel: about a fiftieth, so
    /// the closes spread over the second (a worker takes every [`TAKE_EVERY`]).
    pub fn take_for_a_turn(&self) -> usize {
        let mut left = self.0.load(Ordering::Relaxed);
        while left > 0 {
            let take = (left / 50).max(1);
            match self.0.compare_exchange_weak(
                left,
                left - take,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return take,
                Err(now) => left = now,
            }
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_are_taken_a_little_at_a_time() {
        let moves = Moves::default();
        moves.set(150);
        assert_eq!(moves.take_for_a_turn(), 3);
        let mut taken = 3;
        while moves.take_for_a_turn() > 0 {
            taken += 1;
        }
        assert!(taken > 50, "spread over many turns: {taken}");
    }

    #[test]
    fn the_reason_carries_the_hint() {
        assert_eq!(wstime_protocol::close::retry_hint(close_reason()), Some(RETRY_HINT));
    }
}
