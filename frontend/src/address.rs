//! The address box: what it starts as, and turning what a person types into a WebSocket URL.

/// Why a typed address cannot be used; the text is shown in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressError {
    /// Nothing was typed.
    Empty,
    /// `ws://http://…`: the mistake the post warns about.
    DoubleScheme(String),
    /// A scheme other than ws, wss, http or https.
    UnsupportedScheme(String),
    /// Spaces or other characters no host can contain.
    Malformed(String),
}

// Quoted with plain quotes, not `{:?}`: `Debug` for `str` links Rust's escaping tables
// into the page. The log shows the text as typed, and `Malformed` is the only error whose
// text may hold a control character.
impl std::fmt::Display for AddressError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Empty => write!(f, "Type a server address, for example ws://localhost:8080/"),
            Self::DoubleScheme(typed) => write!(
                f,
                "The address \"{typed}\" has two schemes: write ws://<host>/ without the http:// part"
            ),
            Self::UnsupportedScheme(scheme) => write!(
                f,
                "Unsupported scheme \"{scheme}\": use ws:// or wss:// (http:// and https:// are converted)"
            ),
            Self::Malformed(typed) => {
                write!(f, "\"{typed}\" is not a server address: use ws://<host>[:port]/")
            }
        }
    }
}

/// The address the box starts with: the page's own host, so that opening the load
/// balancer's name in a browser and pressing Connect just works. `page_protocol` is
/// `location.protocol` (`"https:"` selects `wss://`).
pub fn default_for_page(page_protocol: &str, page_host: &str) -> String {
    let scheme = if page_protocol == "https:" { "wss" } else { "ws" };
    let host = if page_host.is_empty() { "localhost:8080" } else { page_host };
    format!("{scheme}://{host}/")
}

/// `text` split around its first `://`. By hand: `str::split_once` with a `&str` pattern
/// links a two-way searcher and its panic messages into the page's wasm, which has no room
/// to spare (frontend/tests/weight.rs).
pub fn split_scheme(text: &str) -> Option<(&str, &str)> {
    let at = text.as_bytes().windows(3).position(|window| window == b"://")?;
    Some((text.get(..at)?, text.get(at + 3..)?))
}

/// Turns a typed address into a WebSocket URL: `http://` becomes `ws://`, `https://`
/// becomes `wss://`, a bare host gets `ws://` and a trailing `/`.
pub fn normalise(typed: &str) -> Result<String, AddressError> {
    let trimmed = typed.trim();
    if trimmed.is_empty() {
        return Err(AddressError::Empty);
    }
    let (scheme, rest) = match split_scheme(trimmed) {
        Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
        None => ("ws".to_owned(), trimmed),
    };
    let scheme = match scheme.as_str() {
        "ws" | "http" => "ws",
        "wss" | "https" => "wss",
        _ => return Err(AddressError::UnsupportedScheme(scheme)),
    };
    if split_scheme(rest).is_some()
        || ["http:", "https:", "ws:", "wss:"].iter().any(|s| rest.starts_with(s))
    {
        return Err(AddressError::DoubleScheme(trimmed.to_owned()));
    }
    let (host, path) = match rest.find(['/', '?']) {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(AddressError::Malformed(trimmed.to_owned()));
    }
    let path = if path.starts_with('/') { path.to_owned() } else { format!("/{path}") };
    Ok(format!("{scheme}://{host}{path}"))
}

/// Adds `id=<client id>` to the URL's query, unless the person typed an id themselves.
pub fn with_client_id(url: &str, client_id: &str) -> String {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    if query.split('&').any(|pair| pair.starts_with("id=")) {
        return url.to_owned();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}id={client_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_box_starts_with_the_pages_own_host() {
        assert_eq!(default_for_page("http:", "lb.example:8080"), "ws://lb.example:8080/");
        assert_eq!(default_for_page("https:", "lb.example"), "wss://lb.example/");
        assert_eq!(default_for_page("file:", ""), "ws://localhost:8080/");
    }

    #[test]
    fn typed_addresses_become_websocket_urls() {
        for (typed, url) in [
            ("ws://host/", "ws://host/"),
            ("ws://host", "ws://host/"),
            ("  wss://host:8443/ws  ", "wss://host:8443/ws"),
            ("http://host:8080", "ws://host:8080/"),
            ("https://lb.example/", "wss://lb.example/"),
            ("HTTP://Host", "ws://Host/"),
            ("host:8080", "ws://host:8080/"),
            ("127.0.0.1:8080/ws", "ws://127.0.0.1:8080/ws"),
            ("host?id=abc", "ws://host/?id=abc"),
            ("[::1]:8080", "ws://[::1]:8080/"),
        ] {
            assert_eq!(normalise(typed).as_deref(), Ok(url), "{typed:?}");
        }
    }

    #[test]
    fn the_posts_double_scheme_mistake_is_caught() {
        for typed in ["ws://http://lb.example", "ws://https://lb.example/", "http://ws://x"] {
            let error = normalise(typed).unwrap_err();
            assert!(matches!(error, AddressError::DoubleScheme(_)), "{typed:?}");
            assert!(error.to_string().contains("without the http:// part"));
        }
    }

    #[test]
    fn other_mistakes_are_explained() {
        assert_eq!(normalise("   "), Err(AddressError::Empty));
        assert!(
            matches!(normalise("ftp://host"), Err(AddressError::UnsupportedScheme(s)) if s == "ftp")
        );
        assert!(matches!(normalise("my host"), Err(AddressError::Malformed(_))));
        assert!(matches!(normalise("ws:///path"), Err(AddressError::Malformed(_))));
    }

    #[test]
    fn the_client_id_is_added_once() {
        assert_eq!(with_client_id("ws://h/", "abc"), "ws://h/?id=abc");
        assert_eq!(with_client_id("ws://h/?x=1", "abc"), "ws://h/?x=1&id=abc");
        assert_eq!(with_client_id("ws://h/?id=mine", "abc"), "ws://h/?id=mine");
    }

    /// Property tests, on the host (`cargo test --workspace`): see `Cargo.toml`.
    #[cfg(not(target_arch = "wasm32"))]
    mod properties {
        use proptest::prelude::*;

        use super::*;

        /// Something like what a person types: maybe spaces, maybe a scheme in any case,
        /// a host, maybe a port, path and query, maybe spaces again; now and then a second
        /// scheme, a stray character or nothing at all where one of those goes.
        fn typed() -> impl Strategy<Value = String> {
            let space = prop_oneof![Just(""), Just(" "), Just("\t\n "), Just("\u{a0}")];
            let scheme = prop_oneof![
                Just(""),
                Just("ws://"),
                Just("wss://"),
                Just("http://"),
                Just("HTTPS://"),
                Just("ftp://"),
                Just("ws://http://"),
                Just("://"),
                Just("ws:/"),
            ];
            let host = prop_oneof!["[a-z0-9.-]{0,12}", "\\[[0-9a-f:]{2,8}\\]", ".{0,6}"];
            let port = prop_oneof![Just(String::new()), "(:[0-9]{0,6})"];
            let path = prop_oneof![Just(String::new()), "[/?][ -~]{0,12}", ".{0,8}"];
            (space.clone(), scheme, host, port, path, space)
                .prop_map(|(a, s, h, p, q, b)| format!("{a}{s}{h}{p}{q}{b}"))
        }

        fn address() -> impl Strategy<Value = String> {
            prop_oneof![typed(), any::<String>()]
        }

        proptest! {
            /// Any text: no panic; an accepted address is a WebSocket URL with a host that
            /// has neither spaces nor a second scheme, and a path that starts with '/'.
            #[test]
            fn an_accepted_address_is_a_websocket_url(raw in address()) {
                if let Ok(url) = normalise(&raw) {
                    let rest = url
                        .strip_prefix("ws://")
                        .or_else(|| url.strip_prefix("wss://"))
                        .ok_or_else(|| TestCaseError::fail(format!("{url:?} from {raw:?}")))?;
                    let (host, path) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
                    prop_assert!(!host.is_empty(), "{url:?}");
                    prop_assert!(!host.contains(char::is_whitespace), "{url:?}");
                    prop_assert!(path.starts_with('/'), "{url:?}");
                    prop_assert!(!rest.contains("://"), "{url:?}");
                }
            }

            /// Normalising twice changes nothing more than normalising once: the box can
            /// show the normalised address, and pressing Connect again connects to it.
            #[test]
            fn normalising_is_idempotent(raw in address()) {
                if let Ok(url) = normalise(&raw) {
                    prop_assert_eq!(normalise(&url), Ok(url.clone()), "from {:?}", raw);
                }
            }

            /// http:// and https:// mean the same address as ws:// and wss://.
            #[test]
            fn http_schemes_become_websocket_schemes(rest in "[a-z0-9.:/?=-]{0,20}") {
                // Refusals quote what was typed, so only accepted addresses are compared.
                for (http, ws) in [("http", "ws"), ("https", "wss")] {
                    let by_http = normalise(&format!("{http}://{rest}")).ok();
                    prop_assert_eq!(by_http, normalise(&format!("{ws}://{rest}")).ok());
                }
            }

            /// The client id is added once, at the end, and never to a URL that has one.
            #[test]
            fn the_client_id_is_added_exactly_once(raw in address(), id in "[A-Za-z0-9_-]{1,8}") {
                if let Ok(url) = normalise(&raw) {
                    let with_id = with_client_id(&url, &id);
                    let query = url.split_once('?').map_or("", |(_, query)| query);
                    if query.split('&').any(|pair| pair.starts_with("id=")) {
                        prop_assert_eq!(&with_id, &url, "the person's own id is kept");
                    } else {
                        prop_assert!(with_id.starts_with(&url), "{:?}", with_id);
                        prop_assert!(with_id.ends_with(&format!("id={id}")), "{:?}", with_id);
                    }
                    prop_assert_eq!(with_client_id(&with_id, "other"), with_id.clone());
                }
            }
        }
    }
}
