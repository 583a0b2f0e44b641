//! `REDIS_URL`, parsed once at start-up: one Redis, a Sentinel group, or a Redis Cluster.
//!
//! The Sentinel form is the one the Lettuce client uses,
//! `redis-sentinel://[user:pass@]host:port[,host:port…][/db]#<master-name>`, and the cluster
//! form follows it, `redis-cluster://[user:pass@]host:port[,host:port…]`. Anything else is
//! the `redis` crate's own form (`redis://`, `rediss://`, `unix://`). Neither an error nor
//! a description of a target ever repeats the credentials.

use std::fmt;

use percent_encoding::percent_decode_str;
use redis::{ConnectionInfo, IntoConnectionInfo as _, RedisConnectionInfo};

/// The schemes the `redis` crate reads as one server.
const SINGLE_SCHEMES: [&str; 7] =
    ["redis", "rediss", "valkey", "valkeys", "redis+unix", "valkey+unix", "unix"];
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
            let scheme = raw.split_once("://").map_or("", |(scheme, _)| scheme);
            if !SINGLE_SCHEMES.contains(&scheme) {
                return Err(RedisUrlError::NotRedis);
            }
            raw.into_connection_info().map(Self::Single).map_err(|error| {
                // The crate's text ends in its error kind ("… - InvalidClientConfig").
                let text = error.to_string();
                let what = text.split(" - ").next().unwrap_or_default();
                RedisUrlError::Invalid(match error.detail() {
                    Some(detail) => format!("{what}: {detail}"),
                    None => what.to_owned(),
                })
            })
        }
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
                write!(f, "redis://{}/{}", info.addr(), info.redis_settings().db())
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
            Some(credentials) => with_credentials(credentials)?,
        };
        Ok(Self { hosts, db, fragment, redis })
    }
}

/// `user:password` or `:password`, percent-decoded. A bare `name@` is refused: the `redis`
/// crate reads it as a user name and Lettuce as a password, and guessing wrong would send
/// a password where a user name goes.
fn with_credentials(credentials: &str) -> Result<RedisConnectionInfo, RedisUrlError> {
    let (user, password) = credentials.split_once(':').ok_or(RedisUrlError::Credentials)?;
    let decode = |part: &str| {
        percent_decode_str(part)
            .decode_utf8()
            .map(|text| text.into_owned())
            .map_err(|_| RedisUrlError::CredentialsEncoding)
    };
    let mut redis = RedisConnectionInfo::default().set_password(decode(password)?);
    if !user.is_empty() {
        redis = redis.set_username(decode(user)?);
    }
    Ok(redis)
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
}
