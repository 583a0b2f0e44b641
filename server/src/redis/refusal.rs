//! When Redis answers but will not serve us: the credentials are wrong or missing, the ACL
//! user may not run a command wstime needs, or TLS cannot agree (an untrusted certificate).
//! Unlike an outage, waiting cannot mend these, so the first connection at start-up stops
//! the server with one of them instead of falling back to memory.

use std::error::Error;

use redis::{ErrorKind, RedisError, ServerErrorKind};

/// Why Redis refused us. The text is one line that says what to change; it never holds a
/// credential (Redis's own messages name the user, never the password).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("refused the user or password in REDIS_URL")]
    WrongCredentials,
    #[error("requires a password: put it in REDIS_URL (redis://user:password@host:port/db)")]
    NoCredentials,
    #[error(
        "does not let the REDIS_URL user do what wstime needs ({0}): give it the ACL in \
         docs/deploying.md (\"Redis: a password, an ACL user, TLS\")"
    )]
    NoPermission(String),
    #[error(
        "could not agree TLS ({0}): set REDIS_CA_CERT to the CA that signed Redis's \
         certificate, and name Redis in REDIS_URL as the certificate does"
    )]
    Tls(String),
}

impl Refusal {
    /// The refusal `error` is, or `None` for anything else (an outage, a timeout, a
    /// failover under way), which is worth retrying.
    pub fn of(error: &RedisError) -> Option<Self> {
        match error.kind() {
            ErrorKind::AuthenticationFailed => return Some(Self::WrongCredentials),
            ErrorKind::Server(ServerErrorKind::NoPerm) => {
                return Some(Self::NoPermission(server_text(error)))
            }
            _ => {}
        }
        match error.code() {
            Some("WRONGPASS") => return Some(Self::WrongCredentials),
            Some("NOAUTH") => return Some(Self::NoCredentials),
            _ => {}
        }
        // A script that calls a command the user may not run fails with a plain ERR.
        if error.detail().is_some_and(|detail| detail.contains(SCRIPT_NOT_PERMITTED)) {
            return Some(Self::NoPermission(server_text(error)));
        }
        if let Some(tls) = tls_failure(error) {
            return Some(Self::Tls(tls));
        }
        Self::in_text(&error.to_string())
    }

    /// Some refusals reach us only as text: the cluster client reports why it reached no
    /// node inside an I/O error ("Failed to create initial connections - Io: Password
    /// authentication failed - AuthenticationFailed"), and the redis crate rewords a
    /// refused `SELECT` ("Redis server refused to switch database: this user has no
    /// permissions to run the 'select' command").
    fn in_text(text: &str) -> Option<Self> {
        if text.contains("AuthenticationFailed") || text.contains("WRONGPASS") {
            Some(Self::WrongCredentials)
        } else if text.contains("NOAUTH") {
            Some(Self::NoCredentials)
        } else if let Some(at) = NOT_PERMITTED.iter().find_map(|said| text.find(said)) {
            let said = text[at..].split(" - ").next().unwrap_or_default();
            Some(Self::NoPermission(said.trim_end_matches(['.', ' ']).to_owned()))
        } else {
            None
        }
    }
}

/// How Redis says a script called a command its user may not run.
const SCRIPT_NOT_PERMITTED: &str = "can't run this command";
/// How Redis words a permission it does not give, in any of the texts above.
const NOT_PERMITTED: [&str; 3] = ["NOPERM", "no permissions", SCRIPT_NOT_PERMITTED];

/// Redis's own words: the code and the first sentence of its message.
fn server_text(error: &RedisError) -> String {
    let code = error.code().unwrap_or("ERR");
    let detail = error.detail().unwrap_or_default();
    let sentence = detail.split(" script: ").next().unwrap_or(detail);
    format!("{code} {sentence}").trim_end_matches(['.', ' ']).to_owned()
}

/// What rustls said, when `error` is a failed TLS handshake.
fn tls_failure(error: &RedisError) -> Option<String> {
    let mut cause: Option<&(dyn Error + 'static)> = error.source();
    while let Some(current) = cause {
        // The redis crate keeps an I/O error behind an `Arc`, and an I/O error hides the
        // error it wraps from `source()`: look through both.
        let current: &(dyn Error + 'static) = match current.downcast_ref::<SharedError>() {
            Some(shared) => &**shared,
            None => current,
        };
        let wrapped = current.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref());
        let tls = wrapped.and_then(|inner| inner.downcast_ref::<rustls::Error>());
        if let Some(tls) = tls.or_else(|| current.downcast_ref::<rustls::Error>()) {
            return Some(tls.to_string());
        }
        cause = current.source();
    }
    None
}

/// How the redis crate holds the error under one of its own.
type SharedError = std::sync::Arc<dyn Error + Send + Sync>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_is_no_refusal() {
        let down = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(Refusal::of(&RedisError::from(down)), None);
        let timeout = std::io::Error::from(std::io::ErrorKind::TimedOut);
        assert_eq!(Refusal::of(&RedisError::from(timeout)), None);
    }

    #[test]
    fn the_cluster_clients_text_is_read_too() {
        let failed = "Failed to create initial connections - Io: Password authentication \
                      failed - AuthenticationFailed";
        assert_eq!(Refusal::in_text(failed), Some(Refusal::WrongCredentials));
        let noperm = "Failed to create initial connections - Io: NOPERM this user has no \
                      permissions to run the 'cluster|slots' command - NoPerm";
        assert_eq!(
            Refusal::in_text(noperm),
            Some(Refusal::NoPermission(
                "NOPERM this user has no permissions to run the 'cluster|slots' command".into()
            ))
        );
        assert_eq!(Refusal::in_text("Connection refused (os error 111)"), None);
    }
}
