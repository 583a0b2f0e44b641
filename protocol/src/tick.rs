//! The tick: the one message the server sends, once at open and then every second.

/// The text between the server's name and the count, as in the original post.
pub const MIDDLE: &str = ": you have been connected for ";
const SUFFIX: &str = " seconds";

/// A tick read back from its text: which server sent it and the session's age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tick<'a> {
    /// The sending server's name (`slimy-cardinal`).
    pub server: &'a str,
    /// Whole seconds the session has been connected.
    pub seconds: u64,
}

impl<'a> Tick<'a> {
    /// Reads `<server-name>: you have been connected for <n> seconds`; `None` for anything else.
    pub fn parse(text: &'a str) -> Option<Self> {
        let (server, rest) = text.split_once(MIDDLE)?;
        let seconds = rest.strip_suffix(SUFFIX)?;
        if server.is_empty() || seconds.is_empty() || !seconds.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Self { server, seconds: seconds.parse().ok()? })
    }
}

/// The text every tick starts with for a given server, built once per server so that a
/// tick costs one number to format and no other allocation.
pub fn prefix(server_name: &str) -> String {
    format!("{server_name}{MIDDLE}")
}

/// The rest of a tick after its [`prefix`]: `<n> seconds`, formatted on the stack. A server
/// sends one per socket per second, so it is written digit by digit, without `fmt`.
#[derive(Debug, Clone, Copy)]
pub struct Count {
    /// `u64::MAX` has 20 digits; the text ends at the end of the buffer.
    buf: [u8; 20 + SUFFIX.len()],
    start: usize,
}

impl Count {
    /// The text for `seconds`.
    pub fn new(mut seconds: u64) -> Self {
        let mut buf = [0; 20 + SUFFIX.len()];
        let mut start = buf.len() - SUFFIX.len();
        buf[start..].copy_from_slice(SUFFIX.as_bytes());
        loop {
            start -= 1;
            buf[start] = b'0' + (seconds % 10) as u8;
            seconds /= 10;
            if seconds == 0 {
                break;
            }
        }
        Self { buf, start }
    }

    /// The text, as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The full text of one tick, built the way the server builds it.
    fn format(server_name: &str, seconds: u64) -> String {
        let count = Count::new(seconds);
        prefix(server_name) + std::str::from_utf8(count.as_bytes()).unwrap()
    }

    #[test]
    fn counts_are_written_in_decimal_from_zero_to_the_largest() {
        for seconds in [0, 7, 10, 99, 1234, u64::MAX] {
            assert_eq!(Count::new(seconds).as_bytes(), format!("{seconds} seconds").as_bytes());
        }
    }

    #[test]
    fn the_text_is_the_posts_word_for_word() {
        assert_eq!(
            format("slimy-cardinal", 0),
            "slimy-cardinal: you have been connected for 0 seconds"
        );
    }

    #[test]
    fn parse_reads_back_what_format_writes() {
        let text = format("brave-otter", 1234);
        assert_eq!(Tick::parse(&text), Some(Tick { server: "brave-otter", seconds: 1234 }));
    }

    #[test]
    fn parse_refuses_other_text() {
        for other in [
            "",
            "connected to server",
            ": you have been connected for 1 seconds",
            "x: you have been connected for  seconds",
            "x: you have been connected for -1 seconds",
            "x: you have been connected for 1 second",
        ] {
            assert_eq!(Tick::parse(other), None, "{other:?}");
        }
    }
}
