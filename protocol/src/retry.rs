//! The client's reconnect schedule: exponential backoff with full jitter, close-code aware,
//! and the timeouts after which an attempt or a connection counts as lost.
//!
//! The page and the load generator both follow this schedule, so the benchmark's thundering
//! herd is the one real browsers would cause. The schedule is pure: the caller supplies the
//! random number, which keeps it testable and lets each side use its own source of randomness.

use std::time::Duration;

use crate::CloseCode;

/// How long an attempt may take to deliver its first tick (the server sends one at open).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Ticks come every second: this long without one means the peer is dead, even if the TCP
/// connection has not said so (a dead host or a partition sends no FIN).
pub const DEAD_PEER_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the last attempt ended, as far as the retry schedule cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disconnect {
    /// No connection, a timeout, or a close without a code that asks for anything special.
    Lost,
    /// 1012: the instance is draining; the others are fine, so come back promptly.
    Restart,
    /// 1013: the instance is shedding load; coming back at once would add to it.
    Overloaded,
    /// 1013 with a retry hint: the instance moved this client to balance the cluster and
    /// said when to come back (the load balancer then sends it to an emptier instance).
    MovedOn { after: Duration },
    /// 1008: the server refused this client; retrying cannot help.
    Refused,
}

impl Disconnect {
    /// Classifies a close: its code (`None` when the connection ended without one) and its
    /// reason, which may carry a retry hint ([`crate::close::retry_hint`]).
    pub fn from_close(code: Option<u16>, reason: &str) -> Self {
        match Self::from_close_code(code) {
            Self::Overloaded => match crate::close::retry_hint(reason) {
                Some(after) => Self::MovedOn { after },
                None => Self::Overloaded,
            },
            other => other,
        }
    }

    /// Classifies a close code (`None` when the connection ended without one).
    pub fn from_close_code(code: Option<u16>) -> Self {
        match code {
            Some(c) if c == CloseCode::ServiceRestart.code() => Self::Restart,
            Some(c) if c == CloseCode::TryAgainLater.code() => Self::Overloaded,
            Some(c) if c == CloseCode::PolicyViolation.code() => Self::Refused,
            _ => Self::Lost,
        }
    }
}

/// What to do after an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Wait this long, then make the next attempt.
    RetryIn(Duration),
    /// Every attempt has been used: `Reached maximum retries, giving up.`
    GiveUp,
    /// The server refused the client (1008): stop and say why.
    Stop,
}

/// The reconnect schedule's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The ceiling of the first delay: a lost server is retried within this long.
    pub base: Duration,
    /// The largest ceiling any delay can have, however many attempts failed.
    pub cap: Duration,
    /// Attempts before giving up (the post's 50).
    pub max_attempts: u32,
    /// After a 1012 the delay is uniform in `[0, restart_spread)`: prompt, yet spread.
    pub restart_spread: Duration,
    /// After a 1013 the delay is at least this long, plus the ordinary backoff.
    pub overload_floor: Duration,
}

impl RetryPolicy {
    /// The schedule the page uses.
    pub const DEFAULT: Self = Self {
        base: Duration::from_secs(1),
        cap: Duration::from_secs(30),
        max_attempts: 50,
        restart_spread: Duration::from_millis(500),
        overload_floor: Duration::from_secs(5),
    };

    /// The ceiling of the delay after attempt `attempt` (0-based): `base · 2^attempt`, capped.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// What to do after attempt `attempt` (0-based) ended because of `why`.
    ///
    /// `jitter` is a uniform random number in `[0, 1)`; full jitter means the whole delay is
    /// random, which spreads a crowd of clients that lost the same server far better than a
    /// fixed delay plus a little noise. A jitter outside that range is clamped into it, and
    /// NaN counts as 1 (the longest wait): a broken random source must not panic the page
    /// or make it retry at once.
    pub fn next(&self, attempt: u32, why: Disconnect, jitter: f64) -> Next {
        if why == Disconnect::Refused {
            return Next::Stop;
        }
        if attempt.saturating_add(1) >= self.max_attempts {
            return Next::GiveUp;
        }
        let jitter = if jitter.is_nan() { 1.0 } else { jitter.clamp(0.0, 1.0) };
        let delay = match why {
            Disconnect::Restart => spread(self.restart_spread, jitter),
            Disconnect::Overloaded => self.overload_floor + spread(self.ceiling(attempt), jitter),
            // The hint, spread by up to a restart's spread so the moved clients do not
            // arrive together.
            Disconnect::MovedOn { after } => after + spread(self.restart_spread, jitter),
            Disconnect::Lost | Disconnect::Refused => spread(self.ceiling(attempt), jitter),
        };
        Next::RetryIn(delay)
    }
}

/// `delay · jitter` for a jitter in `[0, 1]`, to the nanosecond. Not `Duration::mul_f64`:
/// its float-to-`Duration` conversion, with the panics for products it cannot hold, is
/// linked into the page, and a product of at most `delay` needs none of it.
fn spread(delay: Duration, jitter: f64) -> Duration {
    let nanos = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
    // A float-to-integer cast saturates, so no product panics.
    Duration::from_nanos((nanos as f64 * jitter) as u64)
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: RetryPolicy = RetryPolicy::DEFAULT;

    fn delay(attempt: u32, why: Disconnect, jitter: f64) -> Duration {
        match P.next(attempt, why, jitter) {
            Next::RetryIn(d) => d,
            other => panic!("expected a retry, got {other:?}"),
        }
    }

    #[test]
    fn a_lost_server_is_retried_within_a_second_at_first() {
        assert!(delay(0, Disconnect::Lost, 0.999) < Duration::from_secs(1));
        assert_eq!(delay(0, Disconnect::Lost, 0.0), Duration::ZERO);
    }

    #[test]
    fn the_ceiling_doubles_until_the_cap() {
        let ceilings: Vec<u64> = (0..8).map(|a| P.ceiling(a).as_secs()).collect();
        assert_eq!(ceilings, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(P.ceiling(1000), P.cap, "huge attempt numbers must not overflow");
    }

    #[test]
    fn full_jitter_scales_the_whole_delay() {
        assert_eq!(delay(3, Disconnect::Lost, 0.5), Duration::from_secs(4));
        assert_eq!(delay(3, Disconnect::Lost, 7.0), Duration::from_secs(8), "jitter is clamped");
    }

    #[test]
    fn a_draining_server_is_left_promptly_but_spread() {
        assert!(delay(20, Disconnect::Restart, 0.999) < P.restart_spread);
        assert!(delay(20, Disconnect::Restart, 0.5) > Duration::ZERO);
    }

    #[test]
    fn an_overloaded_server_is_given_longer() {
        assert!(delay(0, Disconnect::Overloaded, 0.0) >= P.overload_floor);
        assert!(delay(0, Disconnect::Overloaded, 0.0) > delay(0, Disconnect::Lost, 0.999));
    }

    #[test]
    fn fifty_attempts_then_give_up() {
        assert!(matches!(P.next(48, Disconnect::Lost, 0.5), Next::RetryIn(_)));
        assert_eq!(P.next(49, Disconnect::Lost, 0.5), Next::GiveUp);
    }

    #[test]
    fn a_refusal_stops_at_once() {
        assert_eq!(P.next(0, Disconnect::Refused, 0.5), Next::Stop);
    }

    #[test]
    fn close_codes_map_to_reasons() {
        assert_eq!(Disconnect::from_close_code(Some(1012)), Disconnect::Restart);
        assert_eq!(Disconnect::from_close_code(Some(1013)), Disconnect::Overloaded);
        assert_eq!(Disconnect::from_close_code(Some(1008)), Disconnect::Refused);
        assert_eq!(Disconnect::from_close_code(Some(1006)), Disconnect::Lost);
        assert_eq!(Disconnect::from_close_code(None), Disconnect::Lost);
    }

    #[test]
    fn a_1013_with_a_retry_hint_comes_back_after_the_hint_and_a_little_jitter() {
        let hint = crate::close::with_retry_hint("rebalancing", Duration::from_secs(1));
        let why = Disconnect::from_close(Some(1013), &hint);
        assert_eq!(why, Disconnect::MovedOn { after: Duration::from_secs(1) });
        assert_eq!(delay(7, why, 0.0), Duration::from_secs(1), "whatever the attempt");
        assert_eq!(delay(0, why, 0.999_999).as_millis(), 1499);
        assert_eq!(Disconnect::from_close(Some(1013), "busy"), Disconnect::Overloaded);
        assert_eq!(Disconnect::from_close(Some(1012), &hint), Disconnect::Restart);
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        /// Any close code a peer can send (or none), any attempt number, any jitter the
        /// caller's random source could give (and some it should not).
        fn ending() -> impl Strategy<Value = (Option<u16>, u32, f64)> {
            let attempt = prop_oneof![0..60u32, any::<u32>(), Just(u32::MAX)];
            let jitter = prop_oneof![0.0..1.0f64, any::<f64>(), Just(f64::NAN)];
            (any::<Option<u16>>(), attempt, jitter)
        }

        proptest! {
            /// Whatever the close, the decision is made without a panic, and it is the one
            /// the code asks for: 1008 stops; otherwise the 50th attempt gives up; 1012
            /// comes back within the restart spread; 1013 waits at least the overload
            /// floor; anything else waits at most the backoff ceiling.
            #[test]
            fn every_close_code_gets_its_decision((code, attempt, jitter) in ending()) {
                let why = Disconnect::from_close_code(code);
                let next = P.next(attempt, why, jitter);
                let known = match code {
                    Some(1008) => Disconnect::Refused,
                    Some(1012) => Disconnect::Restart,
                    Some(1013) => Disconnect::Overloaded,
                    _ => Disconnect::Lost,
                };
                prop_assert_eq!(why, known);
                match (why, next) {
                    (Disconnect::Refused, next) => prop_assert_eq!(next, Next::Stop),
                    (_, Next::GiveUp) => prop_assert!(attempt >= P.max_attempts - 1),
                    (_, Next::Stop) => prop_assert!(false, "only 1008 stops"),
                    (Disconnect::Restart, Next::RetryIn(delay)) => {
                        prop_assert!(delay <= P.restart_spread)
                    }
                    (Disconnect::Overloaded, Next::RetryIn(delay)) => {
                        prop_assert!(delay >= P.overload_floor);
                        prop_assert!(delay <= P.overload_floor + P.cap);
                    }
                    (Disconnect::Lost, Next::RetryIn(delay)) => {
                        prop_assert!(delay <= P.ceiling(attempt))
                    }
                    (Disconnect::MovedOn { .. }, _) => {
                        prop_assert!(false, "a code alone never carries a retry hint")
                    }
                }
                if attempt < P.max_attempts - 1 && why != Disconnect::Refused {
                    prop_assert!(matches!(next, Next::RetryIn(_)), "gave up early: {next:?}");
                }
            }
        }
    }
}
