//! What the page tells the person: the status line, and the extra log lines the post's page
//! did not have.

use std::time::Duration;

use wstime_protocol::Tick;

/// What the client is doing right now, shown in `#status`.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// Not connected, and not trying to be.
    Idle,
    /// Attempt `attempt` (1-based) of `of` is under way.
    Connecting { attempt: u32, of: u32 },
    /// Ticks are arriving from `server`.
    Connected { server: String },
    /// Waiting `delay` before attempt `attempt` of `of`.
    Retrying { delay: Duration, attempt: u32, of: u32 },
    /// Every attempt failed.
    GaveUp { attempts: u32 },
    /// The server refused this client; retrying would not help.
    Refused { reason: String },
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Idle => write!(f, "not connected"),
            Self::Connecting { attempt, of } => write!(f, "connecting (attempt {attempt} of {of})"),
            Self::Connected { server } => write!(f, "connected to {server}"),
            Self::Retrying { delay, attempt, of } => {
                write!(f, "retrying in {} s (attempt {attempt} of {of})", tenths(*delay))
            }
            Self::GaveUp { attempts } => write!(f, "gave up after {attempts} attempts"),
            Self::Refused { reason } => write!(f, "refused by the server: {reason}"),
        }
    }
}

/// A delay in seconds to the nearest tenth (`2.3`), as `{:.1}` writes it but with integers:
/// `{:.1}` on an `f64` links Rust's float formatting, about 10 KB of the page's wasm. (An
/// exact half, such as 2.25 s, rounds up here; Rust's float formatting rounds it to even.)
pub fn tenths(delay: Duration) -> String {
    // In u64, not `as_nanos`'s u128: formatting a u128 is another 1.3 KB of wasm.
    const TENTH_NS: u32 = 100_000_000;
    let tenths = delay.as_secs() * 10 + u64::from((delay.subsec_nanos() + TENTH_NS / 2) / TENTH_NS);
    format!("{}.{}", tenths / 10, tenths % 10)
}

/// What the page says a refusal's reason was: the server's words, or that it gave none.
pub fn refusal_reason(reason: &str) -> String {
    match reason.trim() {
        "" => "no reason given".to_owned(),
        reason => reason.to_owned(),
    }
}

/// The line to log on the first tick of a reconnection, given the last count seen before it:
/// either the session resumed (the count went on) or it started again at 0.
pub fn reconnection_line(previous: Option<u64>, first: &Tick<'_>) -> Option<String> {
    let previous = previous?;
    Some(if first.seconds > 0 {
        format!("resumed on {} at {} seconds", first.server, first.seconds)
    } else {
        format!("new session on {} (the count of {previous} seconds was lost)", first.server)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_line_says_what_is_happening() {
        assert_eq!(
            Status::Connecting { attempt: 1, of: 50 }.to_string(),
            "connecting (attempt 1 of 50)"
        );
        assert_eq!(
            Status::Connected { server: "slimy-cardinal".into() }.to_string(),
            "connected to slimy-cardinal"
        );
        assert_eq!(
            Status::Retrying { delay: Duration::from_millis(2340), attempt: 3, of: 50 }.to_string(),
            "retrying in 2.3 s (attempt 3 of 50)"
        );
        assert_eq!(Status::GaveUp { attempts: 50 }.to_string(), "gave up after 50 attempts");
    }

    #[test]
    fn a_continued_count_is_a_resume() {
        let tick = Tick { server: "brave-otter", seconds: 12 };
        assert_eq!(
            reconnection_line(Some(10), &tick).unwrap(),
            "resumed on brave-otter at 12 seconds"
        );
        assert_eq!(
            reconnection_line(None, &tick),
            None,
            "the first connection is not a reconnection"
        );
        let fresh = Tick { server: "brave-otter", seconds: 0 };
        assert!(reconnection_line(Some(10), &fresh).unwrap().contains("was lost"));
    }

    #[test]
    fn a_refusal_without_a_reason_says_so() {
        assert_eq!(refusal_reason(""), "no reason given");
        assert_eq!(refusal_reason("  \t"), "no reason given");
        assert_eq!(refusal_reason("origin not allowed"), "origin not allowed");
    }

    /// Property tests, on the host (`cargo test --workspace`): see `Cargo.toml`.
    #[cfg(not(target_arch = "wasm32"))]
    mod properties {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            /// Delays are written as float formatting would write them, except on an exact
            /// half tenth (where that rounds to even).
            #[test]
            fn delays_read_as_float_formatting_writes_them(nanos in 0u64..3_600_000_000_000) {
                prop_assume!(nanos % 100_000_000 != 50_000_000);
                let delay = Duration::from_nanos(nanos);
                prop_assert_eq!(tenths(delay), format!("{:.1}", delay.as_secs_f64()));
            }

            /// Whatever a server puts in its close frame (up to 123 bytes on the wire, any
            /// text here), the refusal says something, and it is the server's own words.
            #[test]
            fn a_refusal_always_says_why(reason in any::<String>()) {
                let said = refusal_reason(&reason);
                let line = Status::Refused { reason: said.clone() }.to_string();
                prop_assert!(!said.trim().is_empty());
                prop_assert!(line.ends_with(&said));
                if !reason.trim().is_empty() {
                    prop_assert_eq!(said, reason.trim());
                }
            }
        }
    }
}
