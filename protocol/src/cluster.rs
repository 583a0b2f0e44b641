//! The `/cluster` answer: the live instances of a cluster, as the registry in Redis knows
//! them (without Redis, just the instance that answered).
//!
//! The page's cluster panel and `wstime-cluster status` both read it through these types,
//! so the two cannot disagree about what an instance's row says.

use serde::{Deserialize, Serialize};

use crate::health::Health;

/// Where every instance serves the answer.
pub const PATH: &str = "/cluster";

/// The whole answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterView {
    /// The instance that answered.
    pub answered_by: String,
    /// Whether the instances share a registry (Redis); without one, `instances` holds only
    /// the instance that answered.
    pub shared: bool,
    /// The live instances, sorted by name.
    pub instances: Vec<InstanceEntry>,
}

/// One live instance, as it last registered itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceEntry {
    /// Its server name, as in its ticks.
    pub name: String,
    /// Where it can be reached (`http://10.0.0.5:8080`).
    pub address: String,
    /// Open WebSockets.
    pub connections: u64,
    /// Its hard limit (`MAX_CONNECTIONS`).
    pub max_connections: u64,
    /// The largest of its measured ratios (see the health check).
    pub load: f64,
    /// What its health check says.
    pub health: Health,
    /// Whether it is shutting down.
    pub draining: bool,
    /// Its version.
    pub version: String,
    /// When it started, in milliseconds since the Unix epoch.
    pub started_unix_ms: u64,
    /// How long ago (ms, by Redis's clock) it last refreshed its entry: every 2 s while it
    /// lives, so much more means it has likely died and its entry has not yet expired.
    #[serde(default)]
    pub refreshed_ms_ago: u64,
    /// How long ago (ms) a load balancer's health check last reached it, when it refreshed
    /// its entry; absent until one has. An instance checked once and no longer has been cut
    /// off from its balancer: it gets no new clients, so none can be moved to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_ms_ago: Option<u64>,
}

impl ClusterView {
    /// Reads an answer.
    pub fn parse(json: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example in the contract (ARCHITECTURE.md, issue 12), word for word.
    const CONTRACT_EXAMPLE: &str = r#"{"answered_by":"slimy-cardinal","shared":true,
 "instances":[{"name":"slimy-cardinal","address":"http://127.0.0.1:37425","connections":12,"max_connections":19000,"load":0.0006,"health":"ok","draining":false,"version":"0.1.0","started_unix_ms":1764748800000}]}"#;

    #[test]
    fn the_contracts_example_reads_back() {
        let view = ClusterView::parse(CONTRACT_EXAMPLE).unwrap();
        assert_eq!(view.answered_by, "slimy-cardinal");
        assert!(view.shared);
        let [entry] = view.instances.as_slice() else { panic!("one instance: {view:?}") };
        assert_eq!(entry.name, "slimy-cardinal");
        assert_eq!(entry.address, "http://127.0.0.1:37425");
        assert_eq!((entry.connections, entry.max_connections), (12, 19000));
        assert_eq!(entry.health, Health::Ok);
        assert!(!entry.draining);
        assert_eq!(entry.started_unix_ms, 1_764_748_800_000);
    }

    #[test]
    fn an_answer_without_instances_is_refused() {
        assert!(ClusterView::parse(r#"{"answered_by":"a","shared":true}"#).is_err());
        assert!(ClusterView::parse("<html>not found</html>").is_err());
    }
}
