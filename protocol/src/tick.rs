//! The tick: the one message the server sends, once at open and then every second.

/// The text between the server's name and the count, as in the original post.
const MIDDLE: &str = ": you have been connected for ";
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

/// Appends the count and suffix of a tick to `buf`, which holds [`prefix`].
pub fn push_count(buf: &mut String, seconds: u64) {
    use std::fmt::Write as _;
    write!(buf, "{seconds}{SUFFIX}").expect("writing to a String cannot fail");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The full text of one tick, built the way the server builds it.
    fn format(server_name: &str, seconds: u64) -> String {
        let mut text = prefix(server_name);
        push_count(&mut text, seconds);
        text
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
