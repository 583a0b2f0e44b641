//! A client id as the logs show it: the first eight hex digits of its SHA-256. An id is a
//! bearer token for its session's count (whoever sends it resumes the count), so logs, which
//! more people and systems read than the sessions' owners, carry only its hash: the same on
//! every instance, so one session can still be followed across them
//! (`printf %s "$id" | sha256sum | cut -c1-8` finds a given id's lines).

use std::fmt;

use sha2::{Digest as _, Sha256};
use wstime_protocol::ClientId;

/// `id`, for a log line.
pub struct LoggedId<'a>(pub &'a ClientId);

impl fmt::Display for LoggedId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digest = Sha256::digest(self.0.as_str().as_bytes());
        digest[..4].iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_shows_as_the_start_of_its_sha256() {
        // printf %s Robert_Zhu-42 | sha256sum
        let id = ClientId::parse("Robert_Zhu-42").unwrap();
        let expected = format!("{:x}", Sha256::digest(b"Robert_Zhu-42"));
        assert_eq!(LoggedId(&id).to_string(), expected[..8]);
        assert!(!LoggedId(&id).to_string().contains("Robert"));
    }
}
