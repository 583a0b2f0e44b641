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
    let after = decimal_seconds(after.strip_suffix(" s")?.trim())?;
    (after <= std::time::Duration::from_secs(60)).then_some(after)
}

/// Reads `<whole>[.<fraction>]` seconds, the only form [`with_retry_hint`] writes (an
/// `f64`'s `Display` never uses an exponent), to the nanosecond. Not `str::parse::<f64>`:
/// the page reads hints, and the float parser's power-of-ten tables were about 4 KB of
/// its gzipped wasm.
fn decimal_seconds(text: &str) -> Option<std::time::Duration> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !digits(whole) || !digits(fraction) {
        return None;
    }
    let seconds = if whole.is_empty() { 0 } else { whole.parse().ok()? };
    // The first nine digits are the nanoseconds; any further ones are below a nanosecond.
    let nanos = fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(9)
        .fold(0, |nanos, digit| nanos * 10 + u32::from(digit - b'0'));
    Some(std::time::Duration::new(seconds, nanos))
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

        /// The reader without floats reads a decimal as the float parser did, to within
        /// what a float holds.
        #[test]
        fn decimals_read_as_the_float_parser_reads_them(number in "[0-9]{0,3}(\\.[0-9]{0,12})?") {
            let by_float = number.parse::<f64>().ok().map(Duration::from_secs_f64);
            match (decimal_seconds(&number), by_float) {
                (Some(read), Some(float)) => prop_assert!(read.abs_diff(float) < Duration::from_nanos(10)),
                (read, float) => prop_assert_eq!(read, float, "{:?}", number),
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
        for reason in [
            "",
            "server restarting",
            "retry in soon s",
            "retry in 3600 s",
            "retry in -1 s",
            "retry in 60.000000001 s",
        ] {
            assert_eq!(retry_hint(reason), None, "{reason:?}");
        }
    }
}
