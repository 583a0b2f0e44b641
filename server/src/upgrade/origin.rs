//! Which web pages may open WebSockets here (`ALLOWED_ORIGINS`), checked on the upgrade's
//! `Origin` header, which every browser sends and no page can forge.
//!
//! Without this, any page on the internet could open sockets to the service from its
//! visitors' browsers. The default, like gorilla/websocket's and Phoenix's, is the page's
//! own origin only: the `Origin`'s host and port are the request's `Host` (or, from a
//! trusted proxy, its `X-Forwarded-Host`). A request without `Origin` is not a browser's,
//! and the rule does not apply to it.
//!
//! A host is a host name or an IP literal, on both sides: an `Origin` whose host holds
//! anything else (`#`, `?`, `\`, `%`, `@`, …, where a URL's host ends or is escaped) is
//! no origin, so `https://evil.com#.example.com` cannot pass for a subdomain of
//! `example.com`, and a list entry that is not one is a configuration error.

use std::{fmt, net::Ipv6Addr, str::FromStr};

/// The configured rule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// Only the page's own origin.
    #[default]
    SameOrigin,
    /// Any origin (`*`).
    Any,
    /// The page's own origin and these.
    Listed(Vec<OriginPattern>),
}

/// One entry of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginPattern {
    /// Exactly this origin: `https://app.example.com` (default ports implied).
    Exact(Origin),
    /// Any subdomain of `suffix` (not `suffix` itself), under `scheme` if given:
    /// `*.example.com`, `https://*.example.com`.
    Subdomains { scheme: Option<String>, suffix: String },
}

/// A parsed origin: scheme, host and port (the scheme's default when not written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    /// Parses `scheme://host[:port]` (what a browser's `Origin` header holds).
    pub fn parse(raw: &str) -> Option<Self> {
        let (scheme, authority) = raw.trim().split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        let (host, port) = split_authority(authority, default_port(&scheme)?)?;
        Some(Self { scheme, host, port })
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

/// The port a scheme an origin may have implies.
fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    }
}

/// `host[:port]` → (lowercase host, port), `default_port` when none is written; `None`
/// unless the host [`is_host`] and the port is digits. Brackets around an IPv6 host are
/// kept, so `[::1]:80` and `[::1]` compare as hosts.
fn split_authority(authority: &str, default_port: u16) -> Option<(String, u16)> {
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => {
            // `u16`'s parser would take `+443` too.
            if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (host, port.parse().ok()?)
        }
        _ => (authority, default_port),
    };
    let host = host.to_ascii_lowercase();
    is_host(&host).then_some((host, port))
}

/// Whether `host` is one a browser writes in an origin: a host name ([`is_host_name`]; an
/// IPv4 address is one too) or a bracketed IPv6 address.
fn is_host(host: &str) -> bool {
    match host.strip_prefix('[') {
        Some(literal) => literal.strip_suffix(']').is_some_and(|v6| v6.parse::<Ipv6Addr>().is_ok()),
        None => is_host_name(host),
    }
}

/// Whether `name` is a DNS host name: labels of 1 to 63 letters, digits, hyphens and
/// underscores, joined by dots, at most 253 characters, with at most one trailing dot.
///
/// Underscores are not in the host names of RFC 1123, but browsers open pages at them
/// (`http://web_app:8080`, a docker-compose service's name), and no URL gives them a meaning:
/// what matters is that no delimiter (`#`, `?`, `/`, `\`, `@`, `%`, a space) passes.
///
/// The trailing dot (an absolute name) is kept, not dropped: to a browser
/// `https://x.example.com.` is another origin than `https://x.example.com`, with its own
/// storage, so it matches neither `https://x.example.com` nor `*.example.com`, only an
/// entry written with the dot (`*.example.com.`). Refusing a page that was not listed as
/// written is the safe side of the choice.
fn is_host_name(name: &str) -> bool {
    let relative = name.strip_suffix('.').unwrap_or(name);
    relative.len() <= 253
        && relative.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

impl FromStr for AllowedOrigins {
    type Err = String;

    /// `same-origin` (the default), `*`, or a comma-separated list of origins and
    /// `*.domain` patterns.
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let entries: Vec<&str> =
            raw.split(',').map(str::trim).filter(|entry| !entry.is_empty()).collect();
        match entries.as_slice() {
            [] | ["same-origin"] => return Ok(Self::SameOrigin),
            ["*"] => return Ok(Self::Any),
            _ => {}
        }
        let patterns: Result<Vec<_>, _> =
            entries.iter().map(|entry| OriginPattern::parse(entry)).collect();
        patterns.map(Self::Listed)
    }
}

impl OriginPattern {
    fn parse(entry: &str) -> Result<Self, String> {
        let (scheme, rest) = match entry.split_once("://") {
            Some((scheme, rest)) => (Some(scheme.to_ascii_lowercase()), rest),
            None => (None, entry),
        };
        if let Some(suffix) = rest.strip_prefix("*.") {
            let suffix = suffix.to_ascii_lowercase();
            let known_scheme = scheme.as_deref().is_none_or(|s| default_port(s).is_some());
            if !known_scheme || !is_host_name(&suffix) {
                return Err(format!(
                    "{entry:?}: a pattern is *.domain with a host name for domain, such as \
                     *.example.com or https://*.example.com"
                ));
            }
            return Ok(Self::Subdomains { scheme, suffix: format!(".{suffix}") });
        }
        Origin::parse(entry).map(Self::Exact).ok_or_else(|| {
            format!("{entry:?} is not an origin such as https://app.example.com or *.example.com")
        })
    }

    fn matches(&self, origin: &Origin) -> bool {
        match self {
            Self::Exact(allowed) => allowed == origin,
            Self::Subdomains { scheme, suffix } => {
                scheme.as_ref().is_none_or(|scheme| *scheme == origin.scheme)
                    && origin.host.ends_with(suffix.as_str())
            }
        }
    }
}

impl AllowedOrigins {
    /// Whether a browser page at `origin` may connect to `host` (the `Host` the request was
    /// sent to, or the trusted proxy's `X-Forwarded-Host`). `None`: not a browser.
    pub fn allows(&self, origin: Option<&str>, host: Option<&str>) -> bool {
        let Some(raw) = origin else { return true };
        if *self == Self::Any {
            return true;
        }
        let Some(origin) = Origin::parse(raw) else { return false };
        // A Host without a port names the default port of the scheme the page used.
        let default_port = if origin.scheme == "https" { 443 } else { 80 };
        let same = host
            .and_then(|host| split_authority(host, default_port))
            .is_some_and(|(host, port)| host == origin.host && port == origin.port);
        match self {
            Self::Listed(patterns) => same || patterns.iter().any(|p| p.matches(&origin)),
            Self::SameOrigin | Self::Any => same,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn by_default_only_the_pages_own_origin_connects() {
        let rule = AllowedOrigins::default();
        assert!(rule.allows(Some("http://lb.example:8080"), Some("lb.example:8080")));
        assert!(rule.allows(Some("https://LB.example"), Some("lb.example")), "default port");
        assert!(rule.allows(None, Some("lb.example")), "no Origin: not a browser");
        assert!(!rule.allows(Some("https://evil.example"), Some("lb.example")));
        assert!(!rule.allows(Some("http://lb.example:8081"), Some("lb.example:8080")));
        assert!(!rule.allows(Some("null"), Some("lb.example")), "sandboxed pages");
        assert!(!rule.allows(Some("http://lb.example"), None));
    }

    #[test]
    fn lists_take_exact_origins_and_subdomain_patterns() {
        let rule: AllowedOrigins = "https://app.example.com, *.partner.org".parse().unwrap();
        assert!(rule.allows(Some("https://app.example.com"), Some("ws.example.com")));
        assert!(!rule.allows(Some("http://app.example.com"), Some("ws.example.com")), "scheme");
        assert!(rule.allows(Some("http://a.b.partner.org:3000"), Some("ws.example.com")));
        assert!(!rule.allows(Some("https://partner.org"), Some("ws.example.com")), "not itself");
        assert!(!rule.allows(Some("https://evilpartner.org"), Some("ws.example.com")));
        assert!(rule.allows(Some("http://ws.example.com"), Some("ws.example.com")), "own page");
        let scoped: AllowedOrigins = "https://*.example.com".parse().unwrap();
        assert!(!scoped.allows(Some("http://a.example.com"), Some("x")));
        assert!(scoped.allows(Some("https://a.example.com"), Some("x")));
    }

    #[test]
    fn star_allows_anything_and_bad_entries_are_refused() {
        let any: AllowedOrigins = "*".parse().unwrap();
        assert!(any.allows(Some("null"), None));
        assert_eq!("".parse::<AllowedOrigins>().unwrap(), AllowedOrigins::SameOrigin);
        for bad in ["example.com", "ftp://x.org", "*.", "https://*.a/b", "http://"] {
            assert!(bad.parse::<AllowedOrigins>().is_err(), "{bad}");
        }
    }

    /// Characters no host name or IP literal holds (`:` is left out: it ends the host).
    const NOT_IN_A_HOST: &[char] = &[
        '#', '?', '\\', '@', '%', '/', ' ', '\t', '[', ']', '*', ',', ';', '!', '$', '&', '\'',
        '(', ')', '+', '=', '~', '`', '"', '<', '>', '^', '{', '}', '|', '\0', 'é', 'ß',
    ];

    #[test]
    fn a_host_with_characters_no_host_has_is_not_a_subdomain() {
        let rule: AllowedOrigins = "*.example.com".parse().unwrap();
        let long_label = format!("https://{}.example.com", "a".repeat(64));
        for forged in [
            "https://evil.com#.example.com",
            "https://evil.com?.example.com",
            "https://evil.com\\.example.com",
            "https://user@x.example.com",
            "https://evil.com%23.example.com",
            "https://evil.com/.example.com",
            "https://x..example.com",
            "https://[::1].example.com",
            "https://x.example.com:+443",
            "https://x.example.com:",
            &long_label,
        ] {
            assert!(!rule.allows(Some(forged), Some("ws.example.org")), "{forged}");
        }
        assert!(rule.allows(Some("https://X.Example.COM"), Some("ws.example.org")), "case");
        assert!(rule.allows(Some("https://x-1.example.com:8443"), Some("ws.example.org")));
        let own = AllowedOrigins::SameOrigin;
        assert!(own.allows(Some("http://web_app:8080"), Some("web_app:8080")), "compose names");
    }

    #[test]
    fn a_trailing_dot_is_another_origin_unless_listed_with_one() {
        let rule: AllowedOrigins = "*.example.com, https://app.example.org".parse().unwrap();
        assert!(!rule.allows(Some("https://x.example.com."), Some("ws.example.net")));
        assert!(!rule.allows(Some("https://app.example.org."), Some("ws.example.net")));
        let absolute: AllowedOrigins = "*.example.com.".parse().unwrap();
        assert!(absolute.allows(Some("https://x.example.com."), Some("ws.example.net")));
        let own = AllowedOrigins::SameOrigin;
        assert!(own.allows(Some("https://ws.example.net."), Some("ws.example.net.")));
    }

    #[test]
    fn ip_literals_are_hosts() {
        let rule: AllowedOrigins = "http://127.0.0.1:8080, http://[::1]:8080".parse().unwrap();
        assert!(rule.allows(Some("http://127.0.0.1:8080"), Some("x")));
        assert!(rule.allows(Some("http://[::1]:8080"), Some("x")));
        assert!(!rule.allows(Some("http://[::1]:8081"), Some("x")));
        assert!(!rule.allows(Some("http://[::1"), Some("x")));
        assert!(!rule.allows(Some("http://[example.com]:8080"), Some("x")));
    }

    #[test]
    fn list_entries_must_be_host_names() {
        for bad in [
            "*.exa#mple.com",
            "*.example.com?",
            "*.ex ample.com",
            "*.ex%41mple.com",
            "https://*.a\\b",
            "*.user@example.com",
            "*.a..b",
            "*.example.com:443",
            "https://app.example.com#x",
            "https://app.example.com?",
            "ftp://*.example.com",
        ] {
            assert!(bad.parse::<AllowedOrigins>().is_err(), "{bad}");
        }
    }

    proptest! {
        /// `https://S.example.com` with a character no host has in S never passes for a
        /// subdomain, whatever else S holds.
        #[test]
        fn a_character_no_host_has_never_passes_for_a_subdomain(
            before in ".{0,12}",
            forbidden in prop::sample::select(NOT_IN_A_HOST),
            after in ".{0,12}",
        ) {
            let rule: AllowedOrigins = "*.example.com".parse().unwrap();
            let origin = format!("https://{before}{forbidden}{after}.example.com");
            prop_assert!(!rule.allows(Some(&origin), Some("ws.example.org")), "{}", origin);
        }

        /// What passes for a subdomain is made of a host name's characters.
        #[test]
        fn only_host_names_pass_for_a_subdomain(name in ".{0,24}") {
            let rule: AllowedOrigins = "*.example.com".parse().unwrap();
            let origin = format!("https://{name}.example.com");
            if rule.allows(Some(&origin), Some("ws.example.org")) {
                let host_name = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
                prop_assert!(name.chars().all(host_name), "{}", origin);
            }
        }
    }
}
