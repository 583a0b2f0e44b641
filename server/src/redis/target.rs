//! `REDIS_URL`, parsed once at start-up: one Redis, a Sentinel group, or a Redis Cluster.
//!
//! The Sentinel form is the one the Lettuce client uses,
//! `redis-sentinel://[user:pass@]host:port[,host:port…][/db]#<master-name>`, and the cluster
//! form follows it, `redis-cluster://[user:pass@]host:port[,host:port…]`. Anything else is
//! the `redis` crate's own form (`redis://`, `rediss://`, `unix://`), but for its
//! credentials, which every form reads the same way (up to the last `@`). Neither an
//! error nor a description of a target ever repeats the credentials.

use std::fmt;

use percent_encoding::percent_decode_str;
use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo as _, RedisConnectionInfo};

use super::tls::{RedisCa, TlsError};

/// The schemes the `redis` crate reads as one server over TCP; the first two are plain, the
/// others TLS.
const TCP_SCHEMES: [&str; 4] = ["redis", "valkey", "rediss", "valkeys"];
/// The schemes the `redis` crate reads as one server on a Unix socket (credentials in
/// the query: `?user=…&pass=…`).
const UNIX_SCHEMES: [&str; 3] = ["redis+unix", "valkey+unix", "unix"];
/// The port of a sentinel whose address names none (Redis's default for sentinels).
const SENTINEL_PORT: u16 = 26379;
/// The port of a cluster node whose address names none.
const REDIS_PORT: u16 = 6379;

/// Where the shared sessions live.
#[derive(Clone)]
pub enum RedisTarget {
    /// One Redis server.
    Single(ConnectionInfo),
    /// Whichever server a Sentinel group currently names as the master of `master`.
    Sentinel {
        sentinels: Vec<Address>,
        master: String,
        /// The database and credentials of the master (the sentinels are asked without).
        redis: RedisConnectionInfo,
    },
    /// A Redis Cluster, found through seed nodes.
    Cluster {
        nodes: Vec<Address>,
        /// The credentials of every node (a cluster has only database 0).
        redis: RedisConnectionInfo,
    },
}

/// A host and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub host: String,
    pub port: u16,
}

/// Why `REDIS_URL` cannot be used. No variant holds a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedisUrlError {
    #[error(
        "expected redis://host:port/db, redis-sentinel://host:port[,host:port…][/db]#master \
         or redis-cluster://host:port[,host:port…]"
    )]
    NotRedis,
    #[error("{0}")]
    Invalid(String),
    #[error("{0}:// needs at least one host:port")]
    NoHosts(&'static str),
    #[error("{0:?} is not host:port")]
    BadAddress(String),
    #[error("redis-sentinel:// needs the master's name after '#' (…#mymaster)")]
    NoMasterName,
    #[error("redis-cluster:// takes no '#' part")]
    ClusterFragment,
    #[error("{0:?} is not a database number")]
    BadDatabase(String),
    #[error("a Redis Cluster has only database 0")]
    ClusterDatabase,
    #[error("{0}:// takes no query parameters")]
    Query(&'static str),
    #[error("credentials must be written user:password@ or :password@")]
    Credentials,
    #[error("the credentials are not UTF-8 once percent-decoded")]
    CredentialsEncoding,
    #[error(
        "#insecure would skip the check of Redis's certificate: give the CA that signed it \
         with REDIS_CA_CERT instead"
    )]
    Insecure,
    #[error("TLS is for one Redis (rediss://host:port/db); a Sentinel group or a Redis Cluster is reached without it")]
    TlsForMany,
}

impl RedisTarget {
    /// Parses a `REDIS_URL`.
    pub fn parse(raw: &str) -> Result<Self, RedisUrlError> {
        let raw = raw.trim();
        if let Some(rest) = raw.strip_prefix("redis-sentinel://") {
            let parts = MultiHost::parse("redis-sentinel", rest, SENTINEL_PORT)?;
            let master = match parts.fragment {
                Some(name) if !name.is_empty() => name.to_owned(),
                _ => return Err(RedisUrlError::NoMasterName),
            };
            let redis = parts.redis.set_db(parts.db);
            Ok(Self::Sentinel { sentinels: parts.hosts, master, redis })
        } else if let Some(rest) = raw.strip_prefix("redis-cluster://") {
            let parts = MultiHost::parse("redis-cluster", rest, REDIS_PORT)?;
            if parts.fragment.is_some() {
                return Err(RedisUrlError::ClusterFragment);
            }
            if parts.db != 0 {
                return Err(RedisUrlError::ClusterDatabase);
            }
            Ok(Self::Cluster { nodes: parts.hosts, redis: parts.redis })
        } else {
            let (scheme, rest) = raw.split_once("://").unwrap_or(("", raw));
            if UNIX_SCHEMES.contains(&scheme) {
                return raw.into_connection_info().map(Self::Single).map_err(crate_error);
            }
            if !TCP_SCHEMES.contains(&scheme) {
                return Err(match scheme {
                    "rediss-sentinel" | "rediss-cluster" => RedisUrlError::TlsForMany,
                    _ => RedisUrlError::NotRedis,
                });
            }
            // The credentials are taken off before the crate sees the URL: it would end them
            // at the first '/', '?' or '#', and read the rest of a password as a host.
            let (credentials, address) = match rest.rsplit_once('@') {
                Some((credentials, address)) => (Some(credentials), address),
                None => (None, rest),
            };
            let info =
                format!("{scheme}://{address}").into_connection_info().map_err(crate_error)?;
            if matches!(info.addr(), ConnectionAddr::TcpTls { insecure: true, .. }) {
                return Err(RedisUrlError::Insecure);
            }
            Ok(Self::Single(match credentials {
                None => info,
                Some(credentials) => {
                    let redis = with_credentials(info.redis_settings().clone(), credentials)?;
                    info.set_redis_settings(redis)
                }
            }))
        }
    }

    /// Checks Redis's certificate against `ca` rather than the system's trusted roots.
    /// Only a TLS target (`rediss://`) has a certificate to check.
    pub fn trusting(self, ca: &RedisCa) -> Result<Self, TlsError> {
        match self {
            Self::Single(info) if matches!(info.addr(), ConnectionAddr::TcpTls { .. }) => {
                ca.client_for(info).map(Self::Single)
            }
            _ => Err(TlsError::NotTls),
        }
    }

    /// Whether the connection to Redis is TLS.
    pub fn uses_tls(&self) -> bool {
        matches!(self, Self::Single(info) if matches!(info.addr(), ConnectionAddr::TcpTls { .. }))
    }

    /// The kind of store, as the health check reports it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Single(_) => "redis",
            Self::Sentinel { .. } => "redis-sentinel",
            Self::Cluster { .. } => "redis-cluster",
        }
    }
}

/// The target without its credentials, for logs.
impl fmt::Display for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list =
            |hosts: &[Address]| hosts.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
        match self {
            Self::Single(info) => {
                let db = info.redis_settings().db();
                match info.addr() {
                    ConnectionAddr::TcpTls { .. } => write!(f, "rediss://{}/{db}", info.addr()),
                    ConnectionAddr::Unix(path) => write!(f, "unix://{}?db={db}", path.display()),
                    addr => write!(f, "redis://{addr}/{db}"),
                }
            }
            Self::Sentinel { sentinels, master, redis } => {
                write!(f, "redis-sentinel://{}/{}#{master}", list(sentinels), redis.db())
            }
            Self::Cluster { nodes, .. } => write!(f, "redis-cluster://{}", list(nodes)),
        }
    }
}

/// Like [`fmt::Display`]: `Config` is `Debug`, and a debug print must not show a password.
impl fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisTarget({self})")
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// The parts of a URL that names several hosts:
/// `[user:pass@]host:port[,host:port…][/db][#fragment]`, after its scheme.
struct MultiHost<'a> {
    hosts: Vec<Address>,
    db: i64,
    fragment: Option<&'a str>,
    /// The credentials (database not set).
    redis: RedisConnectionInfo,
}

impl<'a> MultiHost<'a> {
    fn parse(
        scheme: &'static str,
        rest: &'a str,
        default_port: u16,
    ) -> Result<Self, RedisUrlError> {
        // The last '@' ends the credentials, so a password may hold any character; nothing
        // after it is a credential, so errors may quote it.
        let (credentials, rest) = match rest.rsplit_once('@') {
            Some((credentials, rest)) => (Some(credentials), rest),
            None => (None, rest),
        };
        let (rest, fragment) = match rest.split_once('#') {
            Some((rest, fragment)) => (rest, Some(fragment)),
            None => (rest, None),
        };
        if rest.contains('?') {
            return Err(RedisUrlError::Query(scheme));
        }
        let (host_list, path) = rest.split_once('/').unwrap_or((rest, ""));
        let hosts = host_list
            .split(',')
            .filter(|host| !host.is_empty())
            .map(|host| Address::parse(host, default_port))
            .collect::<Result<Vec<_>, _>>()?;
        if hosts.is_empty() {
            return Err(RedisUrlError::NoHosts(scheme));
        }
        let db = match path {
            "" => 0,
            db => db.parse().map_err(|_| RedisUrlError::BadDatabase(db.to_owned()))?,
        };
        let redis = match credentials {
            None => RedisConnectionInfo::default(),
            Some(credentials) => with_credentials(RedisConnectionInfo::default(), credentials)?,
        };
        Ok(Self { hosts, db, fragment, redis })
    }
}

/// `redis` with the credentials `user:password` or `:password`, percent-decoded: the text
/// before the URL's last '@', so a password may hold any character ('%' written `%25`). A
/// bare `name@` is refused: the `redis` crate reads it as a user name and Lettuce as a
/// password, and guessing wrong would send a password where a user name goes.
fn with_credentials(
    redis: RedisConnectionInfo,
    credentials: &str,
) -> Result<RedisConnectionInfo, RedisUrlError> {
    let (user, password) = credentials.split_once(':').ok_or(RedisUrlError::Credentials)?;
    let decode = |part: &str| {
        percent_decode_str(part)
            .decode_utf8()
            .map(|text| text.into_owned())
            .map_err(|_| RedisUrlError::CredentialsEncoding)
    };
    let mut redis = redis.set_password(decode(password)?);
    if !user.is_empty() {
        redis = redis.set_username(decode(user)?);
    }
    Ok(redis)
}

/// The `redis` crate's refusal of a URL in plain words. The crate's text ends in its error
/// kind ("… - InvalidClientConfig"), and it never quotes the credentials (which are not in
/// what it is given for a TCP URL anyway).
fn crate_error(error: redis::RedisError) -> RedisUrlError {
    let text = error.to_string();
    let what = text.split(" - ").next().unwrap_or_default();
    RedisUrlError::Invalid(match error.detail() {
        Some(detail) => format!("{what}: {detail}"),
        None => what.to_owned(),
    })
}

impl Address {
    /// `host:port`, `host` (the default port) or `[v6]:port`.
    fn parse(raw: &str, default_port: u16) -> Result<Self, RedisUrlError> {
        let bad = || RedisUrlError::BadAddress(raw.to_owned());
        let (host, port) = match raw.strip_prefix('[') {
            Some(v6) => {
                let (host, after) = v6.split_once(']').ok_or_else(bad)?;
                match after {
                    "" => (host, None),
                    port => (host, Some(port.strip_prefix(':').ok_or_else(bad)?)),
                }
            }
            None => match raw.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (raw, None),
            },
        };
        let port = match port {
            None => default_port,
            Some(port) => port.parse().ok().filter(|&port| port != 0).ok_or_else(bad)?,
        };
        if host.is_empty() {
            return Err(bad());
        }
        Ok(Self { host: host.to_owned(), port })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(host: &str, port: u16) -> Address {
        Address { host: host.into(), port }
    }

    #[test]
    fn a_sentinel_group_in_lettuce_form() {
        let url = "redis-sentinel://app:s%40cret@10.0.0.1:26380,10.0.0.2,[::1]:26381/3#prod-main";
        let Ok(RedisTarget::Sentinel { sentinels, master, redis }) = RedisTarget::parse(url) else {
            panic!("not a sentinel target");
        };
        assert_eq!(
            sentinels,
            [address("10.0.0.1", 26380), address("10.0.0.2", 26379), address("::1", 26381)]
        );
        assert_eq!(master, "prod-main");
        assert_eq!(
            (redis.username(), redis.password(), redis.db()),
            (Some("app"), Some("s@cret"), 3)
        );
    }

    #[test]
    fn a_cluster_by_its_seed_nodes() {
        let url = "redis-cluster://:pw@127.0.0.1:7000,127.0.0.1:7001/";
        let Ok(RedisTarget::Cluster { nodes, redis }) = RedisTarget::parse(url) else {
            panic!("not a cluster target");
        };
        assert_eq!(nodes, [address("127.0.0.1", 7000), address("127.0.0.1", 7001)]);
        assert_eq!((redis.username(), redis.password()), (None, Some("pw")));
        let Ok(RedisTarget::Cluster { redis, .. }) =
            RedisTarget::parse("redis-cluster://:a#b/c?d@h")
        else {
            panic!("a password with URL delimiters in it");
        };
        assert_eq!(redis.password(), Some("a#b/c?d"));
    }

    #[test]
    fn one_redis_is_the_redis_crates_own_form() {
        let target = RedisTarget::parse("redis://:pw@127.0.0.1:6390/2").unwrap();
        assert!(matches!(&target, RedisTarget::Single(info) if info.redis_settings().db() == 2));
        assert_eq!(target.kind(), "redis");
    }

    #[test]
    fn one_redis_reads_its_credentials_like_the_other_forms() {
        // The crate alone would end the password at '/', '?' or '#' and take the rest for
        // the host; here the last '@' ends it, as in the Sentinel and cluster forms.
        let url = "rediss://app:a/b?c#d@e%25f@redis.internal:6390/2?protocol=resp3";
        let Ok(RedisTarget::Single(info)) = RedisTarget::parse(url) else {
            panic!("one TLS Redis");
        };
        let redis = info.redis_settings();
        assert_eq!(
            (redis.username(), redis.password(), redis.db()),
            (Some("app"), Some("a/b?c#d@e%f"), 2)
        );
        assert_eq!(redis.protocol(), redis::ProtocolVersion::RESP3, "the crate's query is kept");
        assert!(
            matches!(info.addr(), ConnectionAddr::TcpTls { host, port: 6390, insecure: false, .. } if host == "redis.internal")
        );
        assert_eq!(RedisTarget::parse(url).unwrap().to_string(), "rediss://redis.internal:6390/2");
        assert_eq!(
            RedisTarget::parse("redis://hunter2@h:1/0").expect_err("a bare name"),
            RedisUrlError::Credentials
        );
    }

    #[test]
    fn tls_is_checked_or_refused() {
        let error = RedisTarget::parse("rediss://:pw@h:6390/#insecure").expect_err("#insecure");
        assert_eq!(error, RedisUrlError::Insecure);
        for url in ["rediss-sentinel://h:26379#m", "rediss-cluster://h:7000"] {
            assert_eq!(RedisTarget::parse(url).expect_err(url), RedisUrlError::TlsForMany);
        }
        assert!(RedisTarget::parse("rediss://h:6390/0").unwrap().uses_tls());
        assert!(!RedisTarget::parse("redis://h:6390/0").unwrap().uses_tls());
    }

    #[test]
    fn descriptions_never_show_the_password() {
        for url in [
            "redis://user:hunter2@127.0.0.1:6390/0",
            "redis-sentinel://user:hunter2@127.0.0.1:26379#m",
            "redis-cluster://user:hunter2@127.0.0.1:7000",
        ] {
            let target = RedisTarget::parse(url).unwrap();
            for shown in [target.to_string(), format!("{target:?}")] {
                assert!(!shown.contains("hunter2"), "{shown}");
            }
        }
        let shown = RedisTarget::parse("redis-sentinel://u:pw@h1:1,h2:2/0#m").unwrap().to_string();
        assert_eq!(shown, "redis-sentinel://h1:1,h2:2/0#m");
    }

    #[test]
    fn mistakes_are_named_without_repeating_the_credentials() {
        for (url, expected) in [
            ("redis-sentinel://127.0.0.1:26379", RedisUrlError::NoMasterName),
            ("redis-sentinel://127.0.0.1:26379#", RedisUrlError::NoMasterName),
            ("redis-sentinel://:hunter2@#m", RedisUrlError::NoHosts("redis-sentinel")),
            ("redis-sentinel://h:port#m", RedisUrlError::BadAddress("h:port".into())),
            ("redis-sentinel://h:0#m", RedisUrlError::BadAddress("h:0".into())),
            ("redis-sentinel://h:1/x#m", RedisUrlError::BadDatabase("x".into())),
            ("redis-sentinel://hunter2@h:1#m", RedisUrlError::Credentials),
            ("redis-sentinel://h:1?timeout=5#m", RedisUrlError::Query("redis-sentinel")),
            ("redis-cluster://h:1/2", RedisUrlError::ClusterDatabase),
            ("redis-cluster://h:1#m", RedisUrlError::ClusterFragment),
            ("redis-cluster://:%ff@h:1", RedisUrlError::CredentialsEncoding),
            ("redis-cluster://:hun#ter/2?@h:x", RedisUrlError::BadAddress("h:x".into())),
        ] {
            let error = RedisTarget::parse(url).expect_err(url);
            assert_eq!(error, expected, "{url}");
            assert!(!error.to_string().contains("hunter2"), "{error}");
        }
        let error = RedisTarget::parse("http://user:hunter2@127.0.0.1").expect_err("http");
        assert_eq!(error, RedisUrlError::NotRedis);
        let error = RedisTarget::parse("redis://user:hunter2@127.0.0.1/x").expect_err("a bad db");
        assert_eq!(error, RedisUrlError::Invalid("Invalid database number".into()));
    }

    mod properties {
        use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
        use proptest::prelude::*;

        use super::*;

        /// The password a target holds, whatever its form.
        fn password_of(target: &RedisTarget) -> Option<&str> {
            match target {
                RedisTarget::Single(info) => info.redis_settings().password(),
                RedisTarget::Sentinel { redis, .. } | RedisTarget::Cluster { redis, .. } => {
                    redis.password()
                }
            }
        }

        /// What follows the credentials in each form: well formed, or now and then not.
        fn scheme_and_rest() -> impl Strategy<Value = (&'static str, String)> {
            let host = "[a-z][a-z0-9.-]{0,10}|127\\.0\\.0\\.1|\\[::1\\]";
            let port = prop_oneof![Just(String::new()), "(:[1-9][0-9]{0,4})"];
            let address = (host, port).prop_map(|(host, port)| format!("{host}{port}"));
            let hosts = prop::collection::vec(address.clone(), 1..4).prop_map(|h| h.join(","));
            // Anything but '@', which would make the rest part of the credentials.
            let garbage = "[ -?A-~]{0,16}";
            prop_oneof![
                (
                    prop_oneof![Just("redis"), Just("rediss"), Just("valkey")],
                    address,
                    "(/[0-9]{1,2})?"
                )
                    .prop_map(|(scheme, address, db)| (scheme, format!("{address}{db}"))),
                (hosts.clone(), "(/[0-9])?", "#[a-z]{0,6}").prop_map(|(hosts, db, master)| {
                    ("redis-sentinel", format!("{hosts}{db}{master}"))
                }),
                hosts.prop_map(|hosts| ("redis-cluster", hosts)),
                (
                    prop_oneof![Just("redis"), Just("redis-sentinel"), Just("redis-cluster")],
                    garbage
                )
                    .prop_map(|(scheme, rest)| (scheme, rest.to_owned())),
            ]
        }

        proptest! {
            /// Any text at all: parsed or refused, never a panic.
            #[test]
            fn no_text_panics_the_parser(raw in any::<String>()) {
                let _ = RedisTarget::parse(&raw);
            }

            /// Text that starts like a Redis URL, so the parsers behind each scheme are
            /// reached, which random text almost never does.
            #[test]
            fn no_redis_like_text_panics_the_parser(
                scheme in "(redis|rediss|valkeys|unix|redis\\+unix|redis-sentinel|redis-cluster|rediss-cluster)://",
                rest in ".{0,40}",
            ) {
                let _ = RedisTarget::parse(&format!("{scheme}{rest}"));
            }

            /// Whatever the password holds (URL delimiters, '@', spaces, any script), it is
            /// read whole, as written or percent-encoded, and neither a description of the
            /// target nor an error ever shows it.
            #[test]
            fn a_password_is_read_whole_and_never_shown(
                (scheme, rest) in scheme_and_rest(),
                user in "[A-Za-z0-9_-]{0,8}",
                // A marker no host or error text holds, so "shown" cannot be a coincidence.
                secret in "[^%]{1,16}",
                encoded in any::<bool>(),
            ) {
                let password = format!("Zq{secret}");
                let written = match encoded {
                    true => utf8_percent_encode(&password, NON_ALPHANUMERIC).to_string(),
                    false => password.clone(),
                };
                let url = format!("{scheme}://{user}:{written}@{rest}");
                let shown = match RedisTarget::parse(&url) {
                    Ok(target) => {
                        prop_assert_eq!(password_of(&target), Some(password.as_str()), "{}", url);
                        format!("{target} {target:?}")
                    }
                    Err(error) => format!("{error} {error:?}"),
                };
                prop_assert!(!shown.contains(&password), "{:?} shows the password of {:?}", shown, url);
                prop_assert!(!shown.contains(&written), "{:?} shows the password of {:?}", shown, url);
            }

            /// A Unix socket's credentials are in its query: never shown either.
            #[test]
            fn a_unix_sockets_password_is_never_shown(secret in "[ -~]{1,16}", db in 0..16u8) {
                let password = format!("Zq{secret}");
                let pass: String = form_urlencoded::byte_serialize(password.as_bytes()).collect();
                let url = format!("unix:///run/redis.sock?db={db}&user=app&pass={pass}");
                let target = RedisTarget::parse(&url).expect("a Unix socket URL");
                prop_assert_eq!(password_of(&target), Some(password.as_str()));
                let shown = format!("{target} {target:?}");
                prop_assert!(!shown.contains(&password) && !shown.contains(&pass), "{}", shown);
            }
        }
    }
}
