//! Which web pages may open WebSockets here (`ALLOWED_ORIGINS`), checked on the upgrade's
//! `Origin` header, which every browser sends and no page can forge.
//!
//! Without this, any page on the internet could open sockets to the service from its
//! visitors' browsers. The default, like gorilla/websocket's and Phoenix's, is the page's
//! own origin only: the `Origin`'s host and port are the request's `Host` (or, from a
//! trusted proxy, its `X-Forwarded-Host`). A request without `Origin` is not a browser's,
//! and the rule does not apply to it.

use std::{fmt, str::FromStr};

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
        let default_port = match scheme.as_str() {
            "http" | "ws" => 80,
            "https" | "wss" => 443,
            _ => return None,
        };
        let (host, port) = split_authority(authority, default_port)?;
        Some(Self { scheme, host, port })
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

/// `host[:port]` → (lowercase host, port), `default_port` when none is written. Brackets
/// around an IPv6 host are kept, so `[::1]:80` and `[::1]` compare as hosts.
fn split_authority(authority: &str, default_port: u16) -> Option<(String, u16)> {
    if authority.is_empty() || authority.contains(['/', '@', ' ']) {
        return None;
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (host, port.parse().ok()?),
        _ => (authority, default_port),
    };
    (!host.is_empty()).then(|| (host.to_ascii_lowercase(), port))
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
            if suffix.is_empty() || suffix.contains(['*', '/', ':']) {
                return Err(format!("{entry:?}: a pattern is *.domain, such as *.example.com"));
            }
            return Ok(Self::Subdomains {
                scheme,
                suffix: format!(".{}", suffix.to_ascii_lowercase()),
            });
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
            Self::Any => true,
            Self::SameOrigin => same,
            Self::Listed(patterns) => same || patterns.iter().any(|p| p.matches(&origin)),
        }
    }
}

#[cfg(test)]
mod tests {
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
}
