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
}
