//! `GET /metrics`: what an operator of a service like this asks of it, in Prometheus's text
//! format (OpenMetrics), named by Prometheus's conventions (`wstime_` prefix, base units,
//! `_total` counters, labels with a bounded set of values).
//!
//! Two kinds of source. Events that happen per connection (upgrades, refusals, sessions,
//! closes, store operations) are counted here as they happen, by whichever part sees them.
//! What a tick costs is counted per worker without locks ([`crate::traffic`]), and the state
//! of the instance (connections, load, health, the cluster) is read at scrape time
//! ([`scrape`]): the hot path pays nothing for the scrape, and the scrape sees the values of
//! the moment.

pub mod scrape;

use std::time::Duration;

use prometheus_client::{
    collector::Collector,
    encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder},
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};
use wstime_protocol::CloseCode;

/// Bounds (seconds) of the histogram of how long resumed sessions were away: from a
/// reconnect within the same second to most of the default resume window.
const AWAY_BOUNDS: [f64; 12] = [0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];

/// Bounds (seconds) of the histogram of session-store operations, whose limit is 0.5 s.
const STORE_BOUNDS: [f64; 10] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5];

/// Why an upgrade was refused: the `reason` label of `wstime_upgrades_refused_total`, and
/// the kind its log lines name.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum RefusalReason {
    BadHandshake,
    NotAnEndpoint,
    BadClientId,
    OriginNotAllowed,
    ClientLimit,
    RateLimited,
    Draining,
    Full,
    StoreUnavailable,
}

impl RefusalReason {
    /// Every reason: each is exposed at 0 from the start, so a rate over them is defined
    /// before the first refusal of a kind.
    pub const ALL: [Self; 9] = [
        Self::BadHandshake,
        Self::NotAnEndpoint,
        Self::BadClientId,
        Self::OriginNotAllowed,
        Self::ClientLimit,
        Self::RateLimited,
        Self::Draining,
        Self::Full,
        Self::StoreUnavailable,
    ];

    /// Its name, as the label and the logs have it.
    pub fn name(self) -> &'static str {
        match self {
            Self::BadHandshake => "bad_handshake",
            Self::NotAnEndpoint => "not_an_endpoint",
            Self::BadClientId => "bad_client_id",
            Self::OriginNotAllowed => "origin_not_allowed",
            Self::ClientLimit => "client_limit",
            Self::RateLimited => "rate_limited",
            Self::Draining => "draining",
            Self::Full => "full",
            Self::StoreUnavailable => "store_unavailable",
        }
    }
}

impl EncodeLabelValue for RefusalReason {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.name(), encoder)
    }
}

/// Why an upgrade was refused, as a label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Refused {
    reason: RefusalReason,
}

/// Whether a session was new or resumed, as a label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SessionKind {
    kind: &'static str,
}

/// A close code the server sent, as a label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Closed {
    code: u16,
}

/// A session-store operation, as a label.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StoreOperation {
    operation: &'static str,
}

impl StoreOperation {
    /// A session opened (or resumed) by an upgrade.
    pub const OPEN: Self = Self { operation: "open" };
    /// A session's expiry restarted.
    pub const TOUCH: Self = Self { operation: "touch" };
    /// The registry's refresh of this instance's entry.
    pub const REGISTER: Self = Self { operation: "register" };
    const ALL: [Self; 3] = [Self::OPEN, Self::TOUCH, Self::REGISTER];
}

/// The close codes the server sends, each exposed at 0 from the start. (1008, policy
/// violation, goes to a client that floods it with pings; a page from a disallowed origin is
/// refused with a 403 before any WebSocket exists.)
const SERVER_CLOSE_CODES: [CloseCode; 6] = [
    CloseCode::GoingAway,
    CloseCode::ProtocolError,
    CloseCode::PolicyViolation,
    CloseCode::MessageTooBig,
    CloseCode::ServiceRestart,
    CloseCode::TryAgainLater,
];

/// The instance's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    upgrades_accepted: Counter,
    upgrades_refused: Family<Refused, Counter>,
    sessions_opened: Family<SessionKind, Counter>,
    session_away: Histogram,
    server_closes: Family<Closed, Counter>,
    store_duration: Family<StoreOperation, Histogram>,
    store_errors: Family<StoreOperation, Counter>,
    pending_refused: Counter,
}

impl Default for Metrics {
    /// The counters alone, with no instance to read at a scrape: what a session store
    /// outside a running instance (a test, a tool) counts into.
    fn default() -> Self {
        let mut registry = Registry::with_prefix("wstime");
        let upgrades_accepted = Counter::default();
        registry.register(
            "upgrades_accepted",
            "WebSocket upgrades answered with 101",
            upgrades_accepted.clone(),
        );
        let upgrades_refused = Family::default();
        registry.register(
            "upgrades_refused",
            "WebSocket upgrades refused before the 101, by reason",
            upgrades_refused.clone(),
        );
        let sessions_opened = Family::default();
        registry.register(
            "sessions_opened",
            "Sessions opened by an upgrade: new (count from 0) or resumed (count went on)",
            sessions_opened.clone(),
        );
        let session_away = Histogram::new(AWAY_BOUNDS);
        registry.register(
            "session_away_seconds",
            "How long a resumed session had been without a socket (since its last touch)",
            session_away.clone(),
        );
        let server_closes = Family::default();
        registry.register(
            "server_closes",
            "WebSockets the server closed, by close code",
            server_closes.clone(),
        );
        let store_duration = Family::<StoreOperation, Histogram>::new_with_constructor(|| {
            Histogram::new(STORE_BOUNDS)
        });
        registry.register(
            "store_operation_duration_seconds",
            "Session-store operations, by operation",
            store_duration.clone(),
        );
        let store_errors = Family::default();
        registry.register(
            "store_errors",
            "Session-store operations Redis failed, by operation (even if kept in memory)",
            store_errors.clone(),
        );
        let pending_refused = Counter::default();
        registry.register(
            "pending_refused",
            "Connections closed at once because their client held its share of the pending \
             pool (MAX_PENDING_HANDSHAKES_PER_CLIENT)",
            pending_refused.clone(),
        );
        // Every labelled series exists from the start, at 0: Prometheus's `rate()` and
        // `increase()` see the first event as a change from 0, not as the series appearing,
        // and an alert on a ratio has both sides before anything has gone wrong.
        for reason in RefusalReason::ALL {
            let _ = upgrades_refused.get_or_create(&Refused { reason });
        }
        for kind in ["new", "resumed"] {
            let _ = sessions_opened.get_or_create(&SessionKind { kind });
        }
        for code in SERVER_CLOSE_CODES {
            let _ = server_closes.get_or_create(&Closed { code: code.code() });
        }
        for operation in StoreOperation::ALL {
            let _ = store_duration.get_or_create(&operation);
            let _ = store_errors.get_or_create(&operation);
        }
        Self {
            registry,
            upgrades_accepted,
            upgrades_refused,
            sessions_opened,
            session_away,
            server_closes,
            store_duration,
            store_errors,
            pending_refused,
        }
    }
}

impl Metrics {
    /// The metrics of an instance, with `instance` read at each scrape (see [`scrape`]).
    pub fn new(instance: impl Collector) -> Self {
        let mut metrics = Self::default();
        metrics.registry.register_collector(Box::new(instance));
        metrics
    }

    /// Counts an upgrade answered with 101, for a session that was new (`away` is `None`)
    /// or resumed after being `away` that long.
    pub fn upgrade_accepted(&self, away: Option<Duration>) {
        self.upgrades_accepted.inc();
        let kind = match away {
            Some(away) => {
                self.session_away.observe(away.as_secs_f64());
                "resumed"
            }
            None => "new",
        };
        self.sessions_opened.get_or_create(&SessionKind { kind }).inc();
    }

    /// Counts an upgrade refused for `reason`.
    pub fn upgrade_refused(&self, reason: RefusalReason) {
        self.upgrades_refused.get_or_create(&Refused { reason }).inc();
    }

    /// Counts a connection closed at once because its client held its share of the pending
    /// pool.
    pub fn pending_refused(&self) {
        self.pending_refused.inc();
    }

    /// Counts a socket the server closed with `code`.
    pub fn server_closed(&self, code: CloseCode) {
        self.server_closes.get_or_create(&Closed { code: code.code() }).inc();
    }

    /// Counts a store operation that took `took`, as the caller waited for it (a session
    /// kept in memory while Redis is down included).
    pub fn store_operation(&self, operation: StoreOperation, took: Duration) {
        self.store_duration.get_or_create(&operation).observe(took.as_secs_f64());
    }

    /// Counts an operation Redis failed (refused, timed out, unreachable), whether or not
    /// the session was then kept in this instance's memory instead: an operator wants to
    /// know Redis is failing before clients notice that their sessions stop moving.
    pub fn store_failed(&self, operation: StoreOperation) {
        self.store_errors.get_or_create(&operation).inc();
    }

    /// The exposition, in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}
