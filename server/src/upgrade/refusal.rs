//! Why an upgrade was refused, and the HTTP response that says so.
//!
//! Every refusal happens before the `101`, as a plain-text one-line reason with the status a
//! client or load balancer can act on: a 4xx for the client's own mistakes, a 503 with
//! `Retry-After` for "not now, not here" (HAProxy retries those on another instance).

use std::{collections::HashMap, fmt::Write as _, time::Duration};

use actix_http::StatusCode;
use tokio::time::Instant;
use wstime_protocol::{CloseCode, InvalidClientId};

use super::handshake::{self, BadHandshake};
use crate::{
    log_throttle::{LogThrottle, LOG_EVERY},
    metrics::RefusalReason,
    session::StoreError,
};

/// How long a client refused with a 503 is asked to wait (`Retry-After`).
pub const RETRY_AFTER_SECS: u32 = 5;

/// Why an upgrade was refused. The `Display` text is the response's body.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    Handshake(#[from] BadHandshake),
    #[error("no WebSocket endpoint here: connect to / or /ws")]
    NotAnEndpoint,
    #[error("pages from {0:?} may not open WebSockets here (ALLOWED_ORIGINS)")]
    OriginNotAllowed(String),
    #[error(transparent)]
    InvalidId(#[from] InvalidClientId),
    #[error("too many connections from your address; try again later")]
    ClientLimit,
    #[error("too many connection attempts from your address; try again later")]
    RateLimited(Duration),
    #[error("server is draining for a restart; connect again to reach another instance")]
    Draining,
    #[error("server is at its connection limit; try again shortly")]
    Full,
    #[error("sessions cannot be opened right now ({0}); try again shortly")]
    Store(#[from] StoreError),
}

impl Refusal {
    /// The response's status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Handshake(BadHandshake::NotGet) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Handshake(BadHandshake::UnsupportedVersion(_)) => StatusCode::UPGRADE_REQUIRED,
            Self::Handshake(_) | Self::InvalidId(_) => StatusCode::BAD_REQUEST,
            Self::NotAnEndpoint => StatusCode::NOT_FOUND,
            Self::OriginNotAllowed(_) => StatusCode::FORBIDDEN,
            Self::ClientLimit | Self::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Draining | Self::Full | Self::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The kind of refusal, as logs and the `reason` label of
    /// `wstime_upgrades_refused_total` name it.
    pub fn reason(&self) -> RefusalReason {
        match self {
            Self::Handshake(_) => RefusalReason::BadHandshake,
            Self::NotAnEndpoint => RefusalReason::NotAnEndpoint,
            Self::InvalidId(_) => RefusalReason::BadClientId,
            Self::OriginNotAllowed(_) => RefusalReason::OriginNotAllowed,
            Self::ClientLimit => RefusalReason::ClientLimit,
            Self::RateLimited(_) => RefusalReason::RateLimited,
            Self::Draining => RefusalReason::Draining,
            Self::Full => RefusalReason::Full,
            Self::Store(_) => RefusalReason::StoreUnavailable,
        }
    }

    /// For a refusal a browser page must understand: the close code to send it after
    /// accepting the upgrade. A browser is never told a failed handshake's status, so a
    /// 429 would look to the page like any lost connection; a 1013 tells it to back off.
    pub fn close_code_for_browsers(&self) -> Option<CloseCode> {
        matches!(self, Self::ClientLimit | Self::RateLimited(_)).then_some(CloseCode::TryAgainLater)
    }

    /// The whole HTTP/1.1 response. The connection closes after it: the client's next try
    /// may belong on another instance.
    pub fn response(&self) -> Vec<u8> {
        let status = self.status();
        let body = self.to_string();
        let mut head = format!(
            "HTTP/1.1 {} {}\r\ncontent-type: text/plain; charset=utf-8\r\n\
             content-length: {}\r\nconnection: close\r\n",
            status.as_str(),
            status.canonical_reason().unwrap_or(""),
            body.len()
        );
        let extra = match self {
            // At least a second, and at most a day: no wait, however it was made, prints as
            // a number a client cannot read.
            Self::RateLimited(wait) => {
                format!("retry-after: {}", wait.as_secs_f64().ceil().clamp(1.0, 86_400.0))
            }
            _ if matches!(
                status,
                StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
            ) =>
            {
                format!("retry-after: {RETRY_AFTER_SECS}")
            }
            Self::Handshake(BadHandshake::NotGet) => "allow: GET".into(),
            // RFC 6455 section 4.4: say which version the server speaks.
            Self::Handshake(BadHandshake::UnsupportedVersion(_) | BadHandshake::NoVersion) => {
                format!("sec-websocket-version: {}", handshake::VERSION)
            }
            _ => String::new(),
        };
        if !extra.is_empty() {
            let _ = write!(head, "{extra}\r\n");
        }
        head.push_str("\r\n");
        head.push_str(&body);
        head.into_bytes()
    }
}

/// Refused origins remembered at once, each its own kind; a flood of new ones is not
/// remembered, just not logged. The fixed kinds have places of their own, which no number
/// of origins can take.
const REMEMBERED_ORIGINS: usize = 64;

/// The longest origin a refusal keeps (and its response and log line show): an `Origin`
/// header may be as long as every header together, 128 KiB.
pub const ORIGIN_SHOWN: usize = 100;

/// An origin as a refusal keeps it: at most [`ORIGIN_SHOWN`] bytes, cut at a character.
pub fn shown_origin(origin: &str) -> String {
    if origin.len() <= ORIGIN_SHOWN {
        return origin.to_owned();
    }
    let cut = (0..=ORIGIN_SHOWN).rev().find(|&at| origin.is_char_boundary(at)).unwrap_or(0);
    format!("{}…", &origin[..cut])
}

/// Logs refusals, at most once a minute per kind (each fixed reason, and each refused
/// origin), each line saying how many of that kind went unlogged since the last: a flood
/// of bad clients cannot flood the log, nor keep a refusal of another kind out of it.
#[derive(Debug, Default)]
pub struct RefusalLog {
    reasons: [LogThrottle; RefusalReason::ALL.len()],
    origins: HashMap<String, LogThrottle>,
}

impl RefusalLog {
    /// Records `refusal` at `now`: `Some(unlogged)` when it is to be logged (with that many
    /// of its kind refused unlogged since the last line), `None` otherwise.
    pub fn record(&mut self, refusal: &Refusal, now: Instant) -> Option<u64> {
        let Refusal::OriginNotAllowed(origin) = refusal else {
            return self.reasons[refusal.reason() as usize].turn(now);
        };
        if !self.origins.contains_key(origin) && self.origins.len() >= REMEMBERED_ORIGINS {
            self.origins.retain(|_, logged| {
                logged.last().is_some_and(|at| now.duration_since(at) < LOG_EVERY)
            });
            if self.origins.len() >= REMEMBERED_ORIGINS {
                return None;
            }
        }
        self.origins.entry(origin.clone()).or_default().turn(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(refusal: Refusal) -> String {
        String::from_utf8(refusal.response()).unwrap()
    }

    #[test]
    fn a_503_asks_the_client_to_come_back_later() {
        let text = response(Refusal::Full);
        assert!(text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{text}");
        assert!(text.contains("\r\nretry-after: 5\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\nserver is at its connection limit; try again shortly"));
    }

    #[test]
    fn a_missing_or_unsupported_version_names_version_13() {
        let eight = BadHandshake::UnsupportedVersion(handshake::VersionText::new(b"8"));
        for (bad, status) in
            [(eight, "426 Upgrade Required"), (BadHandshake::NoVersion, "400 Bad Request")]
        {
            let text = response(Refusal::Handshake(bad));
            assert!(text.starts_with(&format!("HTTP/1.1 {status}\r\n")), "{text}");
            assert!(text.contains("\r\nsec-websocket-version: 13\r\n"), "{text}");
        }
    }

    #[test]
    fn each_kind_of_refusal_has_its_own_minute() {
        let mut log = RefusalLog::default();
        let start = Instant::now();
        let at = |secs| start + Duration::from_secs(secs);
        assert_eq!(log.record(&Refusal::Full, at(0)), Some(0));
        assert_eq!(log.record(&Refusal::Full, at(1)), None);
        assert_eq!(log.record(&Refusal::Draining, at(2)), Some(0), "another kind");
        let origin = |name: &str| Refusal::OriginNotAllowed(format!("https://{name}"));
        assert_eq!(log.record(&origin("a.example"), at(3)), Some(0), "an origin");
        assert_eq!(log.record(&origin("b.example"), at(3)), Some(0), "another origin");
        assert_eq!(log.record(&origin("a.example"), at(4)), None);
        assert_eq!(log.record(&Refusal::Full, at(61)), Some(1), "one went unlogged");
    }

    #[test]
    fn a_flood_of_origins_cannot_keep_the_fixed_kinds_out_of_the_log() {
        let mut log = RefusalLog::default();
        let now = Instant::now();
        let origin = |i| Refusal::OriginNotAllowed(format!("https://{i}.example"));
        let logged = (0..1000).filter(|&i| log.record(&origin(i), now).is_some()).count();
        assert_eq!(logged, REMEMBERED_ORIGINS, "each remembered origin once, the rest not");
        for refusal in [Refusal::Full, Refusal::Draining, Refusal::Store(StoreError::Busy)] {
            assert_eq!(log.record(&refusal, now), Some(0), "{refusal} still has its place");
        }
    }

    #[test]
    fn a_long_origin_is_kept_short_and_cut_at_a_character() {
        let long = format!("https://{}.example", "é".repeat(100_000));
        let shown = shown_origin(&long);
        assert!(shown.len() <= ORIGIN_SHOWN + "…".len(), "{}", shown.len());
        assert!(shown.starts_with("https://é") && shown.ends_with('…'));
        assert_eq!(shown_origin("https://a.example"), "https://a.example");
    }

    #[test]
    fn every_refusal_has_its_own_reason_and_every_reason_a_refusal() {
        let every_refusal = [
            Refusal::Handshake(BadHandshake::NotGet),
            Refusal::NotAnEndpoint,
            Refusal::InvalidId(InvalidClientId::Empty),
            Refusal::OriginNotAllowed("https://elsewhere.example".into()),
            Refusal::ClientLimit,
            Refusal::RateLimited(Duration::from_secs(1)),
            Refusal::Draining,
            Refusal::Full,
            Refusal::Store(StoreError::Busy),
        ];
        let reasons: Vec<_> = every_refusal.iter().map(Refusal::reason).collect();
        assert_eq!(reasons, RefusalReason::ALL);
    }

    #[test]
    fn the_length_is_the_bodys() {
        let text = response(Refusal::InvalidId(InvalidClientId::Empty));
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}\r\n", body.len())), "{text}");
    }
}
