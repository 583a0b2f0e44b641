//! Close codes the server sends, and what each one asks of a client.

/// A WebSocket close code (RFC 6455 §7.4) with its meaning in wstime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum CloseCode {
    /// The client hung up on purpose.
    Normal = 1000,
    /// The peer stopped answering (no frame, not even a pong, within the idle timeout).
    GoingAway = 1001,
    /// The client broke the WebSocket protocol (an unmasked or malformed frame).
    ProtocolError = 1002,
    /// The client broke a rule (for example a disallowed origin): retrying will not help.
    PolicyViolation = 1008,
    /// The client sent a frame over the size limit.
    MessageTooBig = 1009,
    /// The instance is draining for a restart: reconnect promptly, elsewhere.
    ServiceRestart = 1012,
    /// The instance is shedding load: come back, but later.
    TryAgainLater = 1013,
}

impl CloseCode {
    /// The code as sent on the wire.
    pub fn code(self) -> u16 {
        self as u16
    }
}

/// How a close reason carries a retry hint: `… retry in <seconds> s`.
const RETRY_HINT: &str = "retry in ";

/// A close reason saying `text` and asking the client to come back in `after`: the server
/// moving a client to balance its load says when to come back.
pub fn with_retry_hint(text: &str, after: std::time::Duration) -> String {
    format!("{text}; {RETRY_HINT}{} s", after.as_secs_f64())
}

/// The retry hint in a close reason, if it has one (as [`with_retry_hint`] writes it). A
/// hint is believed only up to a minute: a client is never told to stay away for long.
pub fn retry_hint(reason: &str) -> Option<std::time::Duration> {
    let (_, after) = reason.rsplit_once(RETRY_HINT)?;
    let seconds: f64 = after.strip_suffix(" s")?.trim().parse().ok()?;
    (seconds.is_finite() && (0.0..=60.0).contains(&seconds))
        .then(|| std::time::Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn any_text_with_any_believable_hint_reads_back(
            text in any::<String>(),
            micros in 0u64..=60_000_000,
        ) {
            let after = Duration::from_micros(micros);
            let read = retry_hint(&with_retry_hint(&text, after)).expect("a hint");
            prop_assert!(read.abs_diff(after) < Duration::from_nanos(10), "{read:?} for {after:?}");
        }

        #[test]
        fn any_reason_gives_a_hint_of_at_most_a_minute_or_none(reason in any::<String>()) {
            if let Some(after) = retry_hint(&reason) {
                prop_assert!(after <= Duration::from_secs(60));
            }
        }

        #[test]
        fn reasons_shaped_like_a_hint_never_panic(
            text in "[ -~]{0,20}",
            number in "[-+0-9.eEinfNa]{0,12}",
        ) {
            let reason = format!("{text}retry in {number} s");
            if let Some(after) = retry_hint(&reason) {
                prop_assert!(after <= Duration::from_secs(60));
            }
        }
    }

    #[test]
    fn a_retry_hint_reads_back_from_the_reason_it_is_written_into() {
        let reason = with_retry_hint("rebalancing", Duration::from_millis(1500));
        assert_eq!(reason, "rebalancing; retry in 1.5 s");
        assert_eq!(retry_hint(&reason), Some(Duration::from_millis(1500)));
    }

    #[test]
    fn reasons_without_a_believable_hint_have_none() {
        for reason in
            ["", "server restarting", "retry in soon s", "retry in 3600 s", "retry in -1 s"]
        {
            assert_eq!(retry_hint(reason), None, "{reason:?}");
        }
    }
}
