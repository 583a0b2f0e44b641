//! Configuration: every setting is a flag and an environment variable, with its default here
//! and nowhere else. `docs/configuration.md` is generated from this definition (`make
//! config-docs`), and a test fails when it is stale.

mod parse;
#[cfg(test)]
mod reference;

use std::{net::IpAddr, path::PathBuf, process::ExitCode, time::Duration};

use clap::{error::ErrorKind, Args, Parser};

pub use self::parse::RateSetting;
use self::parse::{
    parse_fraction, parse_rate, parse_seconds, parse_seconds_or_zero, parse_server_name,
    parse_switch, read_redis_ca, unusable, RedisUrlParser,
};
use crate::{
    client_addr::TrustedProxies,
    rebalance::Rebalancing,
    redis::{target::RedisTarget, tls::RedisCa},
    upgrade::origin::AllowedOrigins,
};

/// How one wstime-server instance runs. The environment variable names are part of the
/// contract: deploy files, tests and users set them.
#[derive(Debug, Clone, Parser)]
#[command(name = "wstime-server", version, about)]
pub struct Config {
    /// TCP port for the page, the WebSocket endpoint and the health check (0: any free port).
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,

    /// Address to listen on.
    #[arg(long, env = "BIND", default_value = "0.0.0.0")]
    pub bind: IpAddr,

    /// Directory of the built page (trunk's output), served at `/`.
    #[arg(long, env = "STATIC_DIR", default_value = "dist")]
    pub static_dir: PathBuf,

    /// Name shown in every tick; a random adjective-animal pair when unset.
    #[arg(long, env = "SERVER_NAME", value_parser = parse_server_name)]
    pub server_name: Option<String>,

    /// Redis shared by every instance: `redis://host:6379/0`, a Sentinel group
    /// (`redis-sentinel://host:26379[,host:port…][/db]#master`) or a Redis Cluster
    /// (`redis-cluster://host:6379[,host:port…]`); unset: sessions in memory.
    #[arg(long, env = "REDIS_URL", value_parser = RedisUrlParser)]
    pub redis_url: Option<RedisTarget>,

    /// A PEM file of the CA that signed the certificate of a `rediss://` Redis; unset: the
    /// system's trusted roots.
    #[arg(long, env = "REDIS_CA_CERT", value_parser = read_redis_ca)]
    pub redis_ca_cert: Option<RedisCa>,

    /// How long a session outlives its last socket: a reconnect within it resumes the count.
    #[arg(long = "resume-window-secs", env = "RESUME_WINDOW_SECS", default_value = "300", value_parser = parse_seconds)]
    pub resume_window: Duration,

    /// Seconds between the server's pings to each client (they go out with ticks, so at
    /// most once a second).
    #[arg(long = "ping-interval-secs", env = "PING_INTERVAL_SECS", default_value = "10", value_parser = parse_seconds)]
    pub ping_interval: Duration,

    /// A client that sends nothing (not even a pong) for this long is disconnected.
    #[arg(long = "idle-timeout-secs", env = "IDLE_TIMEOUT_SECS", default_value = "30", value_parser = parse_seconds)]
    pub idle_timeout: Duration,

    /// The hard limit on open WebSockets; beyond it upgrades get 503 with Retry-After.
    /// Default: what the open-file limit allows, less a reserve for everything else.
    #[arg(long, env = "MAX_CONNECTIONS", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: Option<u64>,

    /// The health check turns 503 once load reaches this fraction (the post's buffer).
    #[arg(long, env = "HEALTHY_BELOW", default_value_t = 0.6, value_parser = parse_fraction)]
    pub healthy_below: f64,

    /// ... and turns 200 again only once load falls below this one (no flapping).
    #[arg(long, env = "RECOVER_BELOW", default_value_t = 0.5, value_parser = parse_fraction)]
    pub recover_below: f64,

    /// Web pages that may open WebSockets here: `same-origin` (the page's own origin: the
    /// default), `*` (any), or a comma-separated list of origins and `*.domain` patterns
    /// (`https://app.example.com,*.example.org`), which the page's own origin joins.
    #[arg(long, env = "ALLOWED_ORIGINS", default_value = "same-origin")]
    pub allowed_origins: AllowedOrigins,

    /// Proxies whose word on the client's address is taken (PROXY protocol v2 or
    /// `X-Forwarded-For`): a comma-separated list of addresses and networks
    /// (`127.0.0.1,10.0.0.0/8`). Default: none, the socket's peer is the client.
    #[arg(long, env = "TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: TrustedProxies,

    /// Sockets one client address may hold on this instance (0: no limit). Beyond it,
    /// upgrades get 429 (a browser page: a 1013 close).
    #[arg(long, env = "MAX_CONNECTIONS_PER_CLIENT", default_value_t = 2000)]
    pub max_connections_per_client: u32,

    /// Upgrades per second one client address may make, as `RATE` or `RATE/BURST`, RATE
    /// from 0.001 to 1000000 (`0`: no limit). Beyond it, upgrades get 429 with Retry-After.
    #[arg(long, env = "CONNECT_RATE_PER_CLIENT", default_value = "50/1000", value_parser = parse_rate)]
    pub connect_rate_per_client: RateSetting,

    /// Connections in their HTTP phase (handshakes, page loads, health checks: one request
    /// each) one instance works on at once; more wait to be accepted. With the 5 s deadline
    /// on every request head and actix-http's 128 KiB header cap, this bounds what slow or
    /// bloated requests can cost.
    #[arg(long, env = "MAX_PENDING_HANDSHAKES", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_pending_handshakes: u32,

    /// Of those, how many one client address (an IPv6 /64; its /48 four times as many) may
    /// hold; beyond it its new connections are closed at once (a 429 for plain HTTP), so one
    /// address cannot keep the health check and everyone else's handshakes waiting. Must be
    /// below MAX_PENDING_HANDSHAKES (0: no limit). Default: a sixteenth of it (64 of 1,024).
    #[arg(long, env = "MAX_PENDING_HANDSHAKES_PER_CLIENT")]
    pub max_pending_handshakes_per_client: Option<u32>,

    /// TLS on the instance itself, when both files are given.
    #[command(flatten)]
    pub tls: Option<TlsFiles>,

    /// A port for HAProxy's agent check: the instance answers with its headroom as a
    /// weight (`up ready 37%`), `drain` while draining, and `maxconn` (its hard limit).
    /// It listens on BIND's address, or on ADMIN_BIND's when that is set.
    #[arg(long, env = "AGENT_PORT")]
    pub agent_port: Option<u16>,

    /// An address (`host:port`, such as `10.0.0.5:9100`) that serves `/metrics`, `/cluster`
    /// and the health check's JSON instead of the app port, which then serves the page, the
    /// WebSockets and the plain-text health check only: for an app port that faces the
    /// internet. Unset: the app port serves everything.
    #[arg(long, env = "ADMIN_BIND")]
    pub admin_bind: Option<std::net::SocketAddr>,

    /// Rebalancing after a scale-out: read it with [`Config::rebalancing`].
    #[command(flatten)]
    rebalance: RebalanceSettings,

    /// Where clients and tools can reach this instance, as the cluster registry shows it
    /// (`http://host:port`). Default: `http://<BIND>:<PORT>`, with the host name when
    /// BIND is 0.0.0.0 or ::.
    #[arg(long, env = "ADVERTISE_ADDR")]
    pub advertise_addr: Option<String>,

    /// Once listening, write `{"port", "name", "pid"}` here as JSON, for a supervisor or a
    /// test harness that started the instance on port 0.
    #[arg(long, env = "READY_FILE")]
    pub ready_file: Option<PathBuf>,

    /// Outbound bytes per second this instance can send; when set, its use counts as load.
    #[arg(long, env = "NETWORK_CAPACITY_BPS", value_parser = clap::value_parser!(u64).range(1..))]
    pub network_capacity_bps: Option<u64>,

    /// On SIGTERM, how long sockets keep ticking after the health check turns 503: the
    /// load balancer's time to notice.
    #[arg(long = "drain-grace-secs", env = "DRAIN_GRACE_SECS", default_value = "5", value_parser = parse_seconds_or_zero)]
    pub drain_grace: Duration,

    /// ... then the window over which the sockets are closed (with 1012), spread so the
    /// surviving instances are not hit by all the reconnects at once.
    #[arg(long = "drain-window-secs", env = "DRAIN_WINDOW_SECS", default_value = "5", value_parser = parse_seconds_or_zero)]
    pub drain_window: Duration,
}

/// The instance's own certificate and key: it serves HTTPS and WSS itself. Either both are
/// given or neither (the group is `None`).
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct TlsFiles {
    /// A PEM certificate chain: with TLS_KEY, the instance serves HTTPS and WSS itself.
    #[arg(
        id = "tls_cert",
        long = "tls-cert",
        env = "TLS_CERT",
        value_name = "TLS_CERT",
        required = false,
        requires = "tls_key"
    )]
    pub cert: PathBuf,

    /// The PEM private key of TLS_CERT.
    #[arg(
        id = "tls_key",
        long = "tls-key",
        env = "TLS_KEY",
        value_name = "TLS_KEY",
        required = false,
        requires = "tls_cert"
    )]
    pub key: PathBuf,
}

/// Rebalancing's switch and settings, as given. Not an optional group like [`TlsFiles`]:
/// it is on by default, and clap makes an optional group only of flags someone wrote, so
/// [`Config::rebalancing`] turns the three into `Option<Rebalancing>`.
#[derive(Debug, Clone, Copy, PartialEq, Args)]
struct RebalanceSettings {
    /// Move sockets from instances holding clearly more than the cluster's mean to the
    /// others, after a scale-out (`on` or `off`; needs the cluster registry, so Redis).
    #[arg(long = "rebalance", env = "REBALANCE", default_value = "on", value_parser = parse_switch, action = clap::ArgAction::Set)]
    enabled: bool,

    /// How far above the cluster's mean an instance may hold before it moves sockets
    /// (0.05: 5%).
    #[arg(long = "rebalance-tolerance", env = "REBALANCE_TOLERANCE", default_value_t = 0.05, value_parser = parse_fraction)]
    tolerance: f64,

    /// The most of its sockets an instance moves in a second while rebalancing (0.05: 5%).
    #[arg(long = "rebalance-pace", env = "REBALANCE_PACE", default_value_t = 0.05, value_parser = parse_fraction)]
    pace: f64,
}

impl Config {
    /// How many connections in their HTTP phase one client may hold (`None`: no limit).
    /// The default, a sixteenth of the pool, is no limit for a pool too small to share
    /// (one place): the same rule [`Config::checked`] holds a written value to.
    pub fn pending_share(&self) -> Option<u32> {
        match self.max_pending_handshakes_per_client {
            Some(0) => None,
            Some(share) => Some(share),
            None => Some((self.max_pending_handshakes / 16).max(1))
                .filter(|&share| share < self.max_pending_handshakes),
        }
    }

    /// How the instance rebalances, or `None` when `REBALANCE=off`.
    pub fn rebalancing(&self) -> Option<Rebalancing> {
        let RebalanceSettings { enabled, tolerance, pace } = self.rebalance;
        enabled.then_some(Rebalancing { tolerance, pace })
    }

    /// Parses flags and environment. On `--help`/`--version` it prints and returns success;
    /// on a bad value it prints one line naming the setting and returns failure, so a typo in
    /// a unit file is a clear message in the journal rather than a usage dump.
    pub fn from_env_and_args() -> Result<Self, ExitCode> {
        let config = Self::try_parse().and_then(|config| config.checked());
        config.map_err(|error| match error.kind() {
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                let _ = error.print();
                ExitCode::SUCCESS
            }
            _ => {
                eprintln!("{} (see --help)", one_line(&error));
                ExitCode::from(2)
            }
        })
    }
}

/// clap's message without its usage: its first paragraph (the error, and the arguments it
/// names on the lines below it, as for a missing `--tls-key`), on one line.
fn one_line(error: &clap::Error) -> String {
    let rendered = error.render().to_string();
    let words: Vec<&str> = rendered
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .flat_map(str::split_whitespace)
        .collect();
    match words.is_empty() {
        true => "invalid configuration".to_owned(),
        false => words.join(" "),
    }
}

impl Config {
    /// Checks the rules that involve more than one setting, and joins those that go
    /// together (the Redis target trusts `REDIS_CA_CERT`).
    pub fn checked(mut self) -> Result<Self, clap::Error> {
        if self.idle_timeout <= self.ping_interval {
            return Err(clap::Error::raw(
                ErrorKind::ValueValidation,
                "IDLE_TIMEOUT_SECS must be longer than PING_INTERVAL_SECS, or every \
                 client would be dropped between two pings\n",
            ));
        }
        if let Some(ca) = &self.redis_ca_cert {
            let unusable = |reason: &dyn std::fmt::Display| unusable("REDIS_CA_CERT", reason);
            let target = self.redis_url.take().ok_or_else(|| unusable(&"REDIS_URL is not set"))?;
            self.redis_url = Some(target.trusting(ca).map_err(|error| unusable(&error))?);
        }
        if self
            .max_pending_handshakes_per_client
            .is_some_and(|share| share >= self.max_pending_handshakes)
        {
            return Err(clap::Error::raw(
                ErrorKind::ValueValidation,
                "MAX_PENDING_HANDSHAKES_PER_CLIENT must be below MAX_PENDING_HANDSHAKES (one \
                 client may hold only a share of the pool; 0 turns the limit off)\n",
            ));
        }
        if self.recover_below > self.healthy_below {
            return Err(clap::Error::raw(
                ErrorKind::ValueValidation,
                "RECOVER_BELOW must not exceed HEALTHY_BELOW (the health check recovers \
                 below the level at which it failed)\n",
            ));
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client_limits::ConnectRate;

    #[test]
    fn defaults_match_the_documented_table() {
        let config = Config::try_parse_from(["wstime-server"]).unwrap();
        assert_eq!(config.port, 8080);
        assert_eq!(config.bind.to_string(), "0.0.0.0");
        assert_eq!(config.static_dir, PathBuf::from("dist"));
        assert!(config.redis_url.is_none());
        assert_eq!(config.resume_window, Duration::from_secs(300));
        assert_eq!(config.ping_interval, Duration::from_secs(10));
        assert_eq!(config.idle_timeout, Duration::from_secs(30));
        assert_eq!(config.max_connections, None);
        assert_eq!((config.healthy_below, config.recover_below), (0.6, 0.5));
        assert_eq!(config.network_capacity_bps, None);
        assert_eq!(config.drain_grace, Duration::from_secs(5));
        assert_eq!(config.drain_window, Duration::from_secs(5));
        assert_eq!(config.allowed_origins, AllowedOrigins::SameOrigin);
        assert!(config.trusted_proxies.is_empty());
        assert_eq!(config.max_connections_per_client, 2000);
        assert_eq!(
            config.connect_rate_per_client,
            RateSetting(Some(ConnectRate { per_second: 50.0, burst: 1000.0 }))
        );
        assert_eq!(config.max_pending_handshakes, 1024);
        assert_eq!(config.pending_share(), Some(64));
        assert_eq!(config.tls, None);
        assert_eq!(config.agent_port, None);
        assert_eq!(config.rebalancing(), Some(Rebalancing { tolerance: 0.05, pace: 0.05 }));
        assert_eq!((config.advertise_addr, config.ready_file), (None, None));
    }

    #[test]
    fn tls_needs_both_halves_and_rebalancing_can_be_switched_off() {
        for (half, missing) in [("--tls-cert", "--tls-key"), ("--tls-key", "--tls-cert")] {
            let error = Config::try_parse_from(["s", half, "f.pem"]).unwrap_err();
            let line = one_line(&error);
            assert!(line.contains(missing) && !line.contains('\n'), "{line}");
        }
        let both = Config::try_parse_from(["s", "--tls-cert", "c.pem", "--tls-key", "k.pem"]);
        let files = TlsFiles { cert: "c.pem".into(), key: "k.pem".into() };
        assert_eq!(both.unwrap().tls, Some(files));
        let off = Config::try_parse_from(["s", "--rebalance", "OFF", "--rebalance-pace", "0.1"]);
        assert_eq!(off.unwrap().rebalancing(), None);
        let paced = Config::try_parse_from(["s", "--rebalance-pace", "0.1"]).unwrap();
        assert_eq!(paced.rebalancing().map(|settings| settings.pace), Some(0.1));
    }

    #[test]
    fn a_clients_pending_share_is_below_the_pool() {
        let share = |args: &[&str]| {
            let args = ["s"].iter().chain(args).copied();
            Config::try_parse_from(args).unwrap().checked().map(|config| config.pending_share())
        };
        assert_eq!(share(&["--max-pending-handshakes", "32"]).unwrap(), Some(2));
        assert_eq!(share(&["--max-pending-handshakes", "2"]).unwrap(), Some(1));
        assert_eq!(share(&["--max-pending-handshakes", "1"]).unwrap(), None, "one place");
        let off = ["--max-pending-handshakes-per-client", "0"];
        assert_eq!(share(&off).unwrap(), None);
        let whole = ["--max-pending-handshakes", "8", "--max-pending-handshakes-per-client", "8"];
        assert!(share(&whole).is_err(), "a share of the whole pool is no share");
    }

    #[test]
    fn thresholds_must_leave_room_for_hysteresis() {
        assert!(parse_fraction("0").is_err());
        assert!(parse_fraction("1.5").is_err());
        assert_eq!(parse_seconds_or_zero("0").unwrap(), Duration::ZERO);
        let config =
            Config::try_parse_from(["s", "--healthy-below", "0.5", "--recover-below", "0.6"])
                .unwrap();
        assert!(config.checked().is_err());
    }

    #[test]
    fn durations_and_urls_are_checked() {
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("soon").is_err());
        assert_eq!(parse_seconds("0.5").unwrap(), Duration::from_millis(500));
        let config = Config::try_parse_from(["s", "--ping-interval-secs", "30"]).unwrap();
        assert!(config.checked().is_err(), "idle timeout must exceed the ping interval");
    }

    #[test]
    fn a_bad_redis_url_is_one_line_naming_redis_url_without_the_password() {
        let url = "redis-sentinel://app:hunter2@127.0.0.1:26379";
        let error = Config::try_parse_from(["s", "--redis-url", url]).unwrap_err().to_string();
        assert_eq!(error.lines().count(), 1, "{error}");
        assert!(error.contains("REDIS_URL") && error.contains("master's name"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
        let config =
            Config::try_parse_from(["s", "--redis-url", "redis-cluster://127.0.0.1:7000"]).unwrap();
        assert_eq!(config.redis_url.map(|target| target.kind()), Some("redis-cluster"));
    }

    #[test]
    fn server_names_are_one_visible_line() {
        assert_eq!(parse_server_name(" blue-whale ").unwrap(), "blue-whale");
        assert!(parse_server_name("  ").is_err());
        assert!(parse_server_name("a\nb").is_err());
    }
}
