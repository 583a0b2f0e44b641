//! Client ids: the `?id=` that names a session across reconnects.

use std::fmt;

/// The longest id accepted. Long enough for a UUID with a prefix, short enough that an id
/// is never a meaningful amount of memory or of a store key.
pub const MAX_LEN: usize = 64;

/// A validated client id: 1 to [`MAX_LEN`] characters from `[A-Za-z0-9_-]`.
///
/// The character set keeps ids safe to log, to put in a URL unescaped and to embed in a
/// store key without quoting.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientId(String);

/// Why a client id was refused; the `Display` text is what the HTTP 400 body says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidClientId {
    #[error("invalid client id: it is empty; send 1 to {MAX_LEN} characters from [A-Za-z0-9_-], or no id at all")]
    Empty,
    #[error("invalid client id: it is {0} characters long; the limit is {MAX_LEN}")]
    TooLong(usize),
    #[error("invalid client id: {0:?} is not allowed; use only letters, digits, '_' and '-'")]
    BadCharacter(char),
}

impl ClientId {
    /// Checks `raw` against the id rules.
    pub fn parse(raw: &str) -> Result<Self, InvalidClientId> {
        if raw.is_empty() {
            return Err(InvalidClientId::Empty);
        }
        let len = raw.chars().count();
        if len > MAX_LEN {
            return Err(InvalidClientId::TooLong(len));
        }
        if let Some(bad) =
            raw.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
        {
            return Err(InvalidClientId::BadCharacter(bad));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The id as sent on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_allowed_alphabet_up_to_the_limit() {
        for ok in ["a", "slimy-cardinal_42", "550e8400-e29b-41d4-a716-446655440000"] {
            assert_eq!(ClientId::parse(ok).unwrap().as_str(), ok);
        }
        assert!(ClientId::parse(&"x".repeat(MAX_LEN)).is_ok());
    }

    #[test]
    fn refuses_empty_long_and_foreign_characters() {
        assert_eq!(ClientId::parse(""), Err(InvalidClientId::Empty));
        assert_eq!(
            ClientId::parse(&"x".repeat(MAX_LEN + 1)),
            Err(InvalidClientId::TooLong(MAX_LEN + 1))
        );
        for (bad, ch) in [("a b", ' '), ("a/b", '/'), ("é", 'é'), ("a:b", ':'), ("a\nb", '\n')] {
            assert_eq!(ClientId::parse(bad), Err(InvalidClientId::BadCharacter(ch)));
        }
    }

    #[test]
    fn refusals_say_what_to_do() {
        assert!(InvalidClientId::Empty.to_string().contains("[A-Za-z0-9_-]"));
        assert!(InvalidClientId::TooLong(65).to_string().contains("64"));
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        /// The rule, written independently of the parser: what it must accept.
        fn allowed(raw: &str) -> bool {
            (1..=MAX_LEN).contains(&raw.len())
                && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        }

        proptest! {
            /// Any text at all: no panic, and accepted exactly when the rule allows it.
            #[test]
            fn exactly_the_allowed_strings_are_accepted(raw in any::<String>()) {
                prop_assert_eq!(ClientId::parse(&raw).is_ok(), allowed(&raw));
            }

            /// Text near the rule's edges (the alphabet, a stray character, 0 to 70 long),
            /// which random text almost never is.
            #[test]
            fn near_misses_are_judged_like_the_rule(raw in "[A-Za-z0-9_-]{0,70}[ -~é]?") {
                prop_assert_eq!(ClientId::parse(&raw).is_ok(), allowed(&raw));
            }

            /// An accepted id is the text it was parsed from, as `as_str` and `Display`
            /// give it back, and parses again to the same id.
            #[test]
            fn accepted_ids_round_trip(raw in "[A-Za-z0-9_-]{1,64}") {
                let id = ClientId::parse(&raw).expect("an allowed id");
                prop_assert_eq!(id.as_str(), raw.as_str());
                prop_assert_eq!(id.to_string(), raw.clone());
                prop_assert_eq!(ClientId::parse(&id.to_string()), Ok(id));
            }

            /// A refusal names a character that is really in the text, or its real length.
            #[test]
            fn refusals_describe_the_text(raw in any::<String>()) {
                match ClientId::parse(&raw) {
                    Ok(_) | Err(InvalidClientId::Empty) => {}
                    Err(InvalidClientId::TooLong(len)) => {
                        prop_assert_eq!(len, raw.chars().count());
                        prop_assert!(len > MAX_LEN);
                    }
                    Err(InvalidClientId::BadCharacter(bad)) => prop_assert!(raw.contains(bad)),
                }
            }
        }
    }
}
