//! The health check, `GET /healthcheck`: what an instance says of itself to a load balancer
//! (a status and one plain-text line) and, asked for JSON, to people and tools (the
//! [`HealthReport`]). The cluster tool and the benchmarks read the report through this type.

use serde::{Deserialize, Serialize};

/// Where every instance answers.
pub const PATH: &str = "/healthcheck";

/// An instance's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Taking new connections.
    Ok,
    /// Over its healthy threshold: keeps its sockets, takes no new ones.
    Overloaded,
    /// Shutting down.
    Draining,
    /// A state a newer server reports that this build does not know; shown, not trusted.
    #[serde(other)]
    Unknown,
}

impl Health {
    /// Every state a server reports.
    pub const REPORTED: [Self; 3] = [Self::Ok, Self::Overloaded, Self::Draining];

    /// The plain-text body of the health check (the post's wording for overload).
    pub fn text(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Overloaded => "server is overloaded",
            Self::Draining => "draining",
            Self::Unknown => "unknown",
        }
    }

    /// Reads a name as [`Health::name`] writes it; a name this build does not know is
    /// [`Health::Unknown`], as in JSON. For readers without serde (the page).
    pub fn from_name(name: &str) -> Self {
        Self::REPORTED.into_iter().find(|health| health.name() == name).unwrap_or(Self::Unknown)
    }

    /// Its name in JSON and in metric labels.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Overloaded => "overloaded",
            Self::Draining => "draining",
            Self::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The health check's JSON form (`Accept: application/json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthReport {
    /// The instance's name, as in its ticks.
    pub name: String,
    /// What the health check says.
    pub status: Health,
    /// WebSockets open now.
    pub connections: u64,
    /// The largest of the measured load ratios.
    pub load: f64,
    /// Outbound bytes per second, over the last whole second.
    pub outbound_bps: u64,
    /// The hard limit on open WebSockets (`MAX_CONNECTIONS`).
    pub max_connections: u64,
    /// The load at which the health check turns 503 (`HEALTHY_BELOW`).
    pub healthy_below: f64,
    /// The load below which it turns 200 again (`RECOVER_BELOW`).
    pub recover_below: f64,
    /// The configured network capacity, if any (`NETWORK_CAPACITY_BPS`).
    pub network_capacity_bps: Option<u64>,
    /// Where sessions live.
    pub store: StoreReport,
    /// Whether the instance is shutting down.
    pub draining: bool,
    /// Seconds since the instance started.
    pub uptime_secs: u64,
}

/// The session store, as the health check reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreReport {
    /// `memory`, `redis`, `redis-sentinel` or `redis-cluster`.
    pub kind: String,
    /// Whether it answers (always, for memory).
    pub reachable: bool,
}

impl HealthReport {
    /// Reads a report.
    pub fn parse(json: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_health_reads_back_and_a_new_one_is_unknown() {
        for (text, health) in [
            ("ok", Health::Ok),
            ("overloaded", Health::Overloaded),
            ("draining", Health::Draining),
            ("melting", Health::Unknown),
        ] {
            assert_eq!(serde_json::from_str::<Health>(&format!("{text:?}")).unwrap(), health);
            assert_eq!(Health::from_name(text), health, "from_name agrees with serde");
        }
        assert_eq!(Health::Overloaded.to_string(), "overloaded");
    }

    #[test]
    fn a_report_reads_back_as_a_server_writes_it() {
        let json = r#"{"name":"slimy-cardinal","status":"overloaded","connections":7,
            "load":0.7,"outbound_bps":0,"max_connections":10,"healthy_below":0.6,
            "recover_below":0.5,"network_capacity_bps":null,
            "store":{"kind":"redis","reachable":true},"draining":false,"uptime_secs":12}"#;
        let report = HealthReport::parse(json).unwrap();
        assert_eq!((report.status, report.connections), (Health::Overloaded, 7));
        assert_eq!(report.store, StoreReport { kind: "redis".into(), reachable: true });
        let again = serde_json::to_string(&report).unwrap();
        assert_eq!(HealthReport::parse(&again).unwrap(), report);
    }
}
