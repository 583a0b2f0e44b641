//! The opening handshake of RFC 6455 (section 4.2): whether a request is one, and the `101`
//! that accepts it.
//!
//! actix-http hands every request carrying `Upgrade: websocket` to the upgrade service, well
//! formed or not; a client's mistake here must be a 4xx that says what is wrong, never a 500.

use actix_http::{
    header::{self, HeaderMap},
    Method, RequestHead, Version,
};
use base64::Engine as _;

/// The only protocol version this server speaks (RFC 6455's).
pub const VERSION: &str = "13";

/// What is wrong with a handshake. The `Display` text is the refusal's one-line body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadHandshake {
    #[error("a WebSocket handshake must be a GET request")]
    NotGet,
    #[error("a WebSocket handshake needs HTTP/1.1")]
    OldHttp,
    #[error("the Connection header must include \"Upgrade\"")]
    NoConnectionUpgrade,
    #[error("Sec-WebSocket-Key is missing")]
    NoKey,
    #[error("Sec-WebSocket-Key must be the base64 encoding of 16 bytes")]
    BadKey,
    #[error("Sec-WebSocket-Version is missing; this server speaks version 13")]
    NoVersion,
    #[error("WebSocket version {0:?} is not supported; this server speaks version 13")]
    UnsupportedVersion(VersionText),
}

/// A client's `Sec-WebSocket-Version`, kept short enough to quote in a refusal.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct VersionText {
    bytes: [u8; 8],
    len: u8,
}

impl VersionText {
    /// The first bytes of `raw`.
    pub(super) fn new(raw: &[u8]) -> Self {
        let mut bytes = [0; 8];
        let len = raw.len().min(bytes.len());
        bytes[..len].copy_from_slice(&raw[..len]);
        Self { bytes, len: len as u8 }
    }
}

impl std::fmt::Debug for VersionText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        String::from_utf8_lossy(&self.bytes[..usize::from(self.len)]).fmt(f)
    }
}

/// A handshake that passed every check: what the `101` needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    /// `Sec-WebSocket-Accept`: the key's SHA-1 with the protocol's GUID, in base64.
    accept: [u8; 28],
}

/// Checks `head` against RFC 6455 section 4.2.1. The `Upgrade: websocket` header is not
/// checked here: actix-http sends nothing else to the upgrade service.
pub fn check(head: &RequestHead) -> Result<Accepted, BadHandshake> {
    if head.method != Method::GET {
        return Err(BadHandshake::NotGet);
    }
    if head.version < Version::HTTP_11 {
        return Err(BadHandshake::OldHttp);
    }
    let headers = head.headers();
    if !has_token(headers, &header::CONNECTION, "upgrade") {
        return Err(BadHandshake::NoConnectionUpgrade);
    }
    let key = headers.get(header::SEC_WEBSOCKET_KEY).ok_or(BadHandshake::NoKey)?;
    if !is_valid_key(key.as_bytes()) {
        return Err(BadHandshake::BadKey);
    }
    match headers.get(header::SEC_WEBSOCKET_VERSION) {
        None => return Err(BadHandshake::NoVersion),
        Some(version) if version.as_bytes().trim_ascii() != VERSION.as_bytes() => {
            return Err(BadHandshake::UnsupportedVersion(VersionText::new(version.as_bytes())))
        }
        Some(_) => {}
    }
    Ok(Accepted { accept: actix_http::ws::hash_key(key.as_bytes()) })
}

/// Whether any `name` header lists `token` (comma-separated, without regard to case).
fn has_token(headers: &HeaderMap, name: &header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|item| item.trim().eq_ignore_ascii_case(token))
}

/// RFC 6455 section 4.1: the key is a random 16-byte value, base64-encoded (24 characters).
fn is_valid_key(key: &[u8]) -> bool {
    let mut decoded = [0u8; 18];
    key.len() == 24
        && base64::engine::general_purpose::STANDARD.decode_slice(key, &mut decoded) == Ok(16)
}

impl Accepted {
    /// Appends the `101 Switching Protocols` response to `out`.
    pub fn response(&self, out: &mut bytes::BytesMut) {
        out.extend_from_slice(
            b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\
              connection: Upgrade\r\nsec-websocket-accept: ",
        );
        out.extend_from_slice(&self.accept);
        out.extend_from_slice(b"\r\n\r\n");
    }
}

#[cfg(test)]
mod tests {
    use actix_http::{header::HeaderValue, Uri};

    use super::*;

    /// RFC 6455 section 1.3's example key and its accept value.
    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    fn head(edit: impl FnOnce(&mut RequestHead)) -> RequestHead {
        let mut head = RequestHead::default();
        head.method = Method::GET;
        head.version = Version::HTTP_11;
        head.uri = Uri::from_static("/");
        let headers = head.headers_mut();
        headers.insert(header::HOST, HeaderValue::from_static("example.com"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, Upgrade"));
        headers.insert(header::SEC_WEBSOCKET_KEY, HeaderValue::from_static(KEY));
        headers.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        edit(&mut head);
        head
    }

    fn set(head: &mut RequestHead, name: header::HeaderName, value: &'static str) {
        head.headers_mut().insert(name, HeaderValue::from_static(value));
    }

    #[test]
    fn a_browser_handshake_is_accepted_with_the_rfc_accept_value() {
        let accepted = check(&head(|_| {})).expect("the RFC's example handshake");
        let mut out = bytes::BytesMut::new();
        accepted.response(&mut out);
        let response = String::from_utf8(out.to_vec()).unwrap();
        assert!(response.starts_with("HTTP/1.1 101 Switching Protocols\r\n"), "{response}");
        assert!(response.contains(&format!("sec-websocket-accept: {ACCEPT}\r\n")), "{response}");
        assert!(response.ends_with("\r\n\r\n"), "{response}");
    }

    #[test]
    fn each_mistake_is_named() {
        type Edit = fn(&mut RequestHead);
        let cases: [(Edit, BadHandshake); 7] = [
            (|h| h.method = Method::POST, BadHandshake::NotGet),
            (|h| h.version = Version::HTTP_10, BadHandshake::OldHttp),
            (
                |h| {
                    h.headers_mut().remove(header::CONNECTION);
                },
                BadHandshake::NoConnectionUpgrade,
            ),
            (|h| set(h, header::CONNECTION, "keep-alive"), BadHandshake::NoConnectionUpgrade),
            (
                |h| {
                    h.headers_mut().remove(header::SEC_WEBSOCKET_KEY);
                },
                BadHandshake::NoKey,
            ),
            (
                |h| {
                    h.headers_mut().remove(header::SEC_WEBSOCKET_VERSION);
                },
                BadHandshake::NoVersion,
            ),
            (
                |h| set(h, header::SEC_WEBSOCKET_VERSION, "8"),
                BadHandshake::UnsupportedVersion(VersionText::new(b"8")),
            ),
        ];
        for (edit, expected) in cases {
            assert_eq!(check(&head(edit)), Err(expected));
        }
    }

    #[test]
    fn keys_must_be_sixteen_bytes_of_base64() {
        for bad in [
            "not base64!",
            "dGhlIHNhbXBsZSBub25jZQ",     // unpadded
            "dGhlIHNhbXBsZSBub25jZXg=",   // 17 bytes
            "dGhlIHNhbXBsZSBub25j",       // 15 bytes
            "dGhlIHNhbXBsZSBub25jZQ==\0", // trailing byte
        ] {
            assert!(!is_valid_key(bad.as_bytes()), "{bad:?}");
        }
        assert!(is_valid_key(KEY.as_bytes()));
    }

    #[test]
    fn an_unsupported_version_is_quoted_briefly() {
        let long = BadHandshake::UnsupportedVersion(VersionText::new(b"13, 8, 7, 100000"));
        assert_eq!(
            long.to_string(),
            "WebSocket version \"13, 8, 7\" is not supported; this server speaks version 13"
        );
    }
}
