//! The cluster panel's model: where to ask for the cluster, what the last answer was, and
//! the rows to show, with the instance this tab is connected to marked.

use std::time::Duration;

use wstime_protocol::{cluster, ClusterView, Health};

/// How often the panel asks while the page is connected: often enough to watch a failover
/// (a killed instance leaves the registry within about 6 s), rarely enough that a thousand
/// open tabs cost an instance a few hundred small requests a second, not thousands.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);
/// How long one question may take before it counts as unanswered.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(3);

/// Where to ask for the cluster, given the WebSocket address the page connects to: the same
/// host through HTTP(S), so that through a load balancer any live instance answers.
/// `None` for an address that is not `ws://` or `wss://` (the page normalises what is
/// typed, so that does not happen).
pub fn cluster_url(ws_url: &str) -> Option<String> {
    let (scheme, rest) = ws_url.split_once("://")?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "ws" => "http",
        "wss" => "https",
        _ => return None,
    };
    let host = rest.split(['/', '?', '#']).next().filter(|host| !host.is_empty())?;
    Some(format!("{scheme}://{host}{}", cluster::PATH))
}

/// One row of the panel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The instance's server name (its `data-instance`).
    pub name: String,
    /// Its open WebSockets.
    pub connections: u64,
    /// Its health.
    pub health: Health,
    /// Whether this tab is connected to it.
    pub current: bool,
}

/// What the panel knows: the last answer, and whether the latest question went unanswered.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Panel {
    last: Option<ClusterView>,
    problem: Option<String>,
}

impl Panel {
    /// Records an answer.
    pub fn answered(&mut self, view: ClusterView) {
        self.last = Some(view);
        self.problem = None;
    }

    /// Records a question that went unanswered. The last answer stays on show: during a
    /// failover it is still the best picture of the cluster there is.
    pub fn failed(&mut self, why: String) {
        self.problem = Some(why);
    }

    /// One row per instance of the last answer, in its order (by name); the row of
    /// `connected_to` (the server named by this tab's latest tick, if connected) is current.
    pub fn rows(&self, connected_to: Option<&str>) -> Vec<Row> {
        let Some(view) = &self.last else { return Vec::new() };
        view.instances
            .iter()
            .map(|instance| Row {
                name: instance.name.clone(),
                connections: instance.connections,
                health: instance.health,
                current: connected_to == Some(instance.name.as_str()),
            })
            .collect()
    }

    /// A line under the rows, when there is something to say about them.
    pub fn note(&self) -> Option<String> {
        match (&self.last, &self.problem) {
            (_, Some(problem)) => Some(format!("No answer about the cluster: {problem}")),
            (None, None) => Some("Asking which instances there are…".to_owned()),
            (Some(view), None) if !view.shared => Some(format!(
                "{} shares no registry (no Redis): it knows only itself.",
                view.answered_by
            )),
            (Some(_), None) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use wstime_protocol::InstanceEntry;

    use super::*;

    fn entry(name: &str, connections: u64, health: Health) -> InstanceEntry {
        InstanceEntry {
            name: name.to_owned(),
            address: "http://127.0.0.1:1".to_owned(),
            connections,
            max_connections: 100,
            load: connections as f64 / 100.0,
            health,
            draining: health == Health::Draining,
            version: "0.1.0".to_owned(),
            started_unix_ms: 0,
            refreshed_ms_ago: 0,
        }
    }

    fn view(shared: bool, instances: Vec<InstanceEntry>) -> ClusterView {
        ClusterView { answered_by: instances[0].name.clone(), shared, instances }
    }

    #[test]
    fn the_cluster_is_asked_of_the_websockets_host() {
        for (ws, http) in [
            ("ws://127.0.0.1:8080/", "http://127.0.0.1:8080/cluster"),
            ("wss://lb.example/", "https://lb.example/cluster"),
            ("ws://lb.example/ws?id=abc", "http://lb.example/cluster"),
            ("WSS://Lb.Example:8443?id=abc", "https://Lb.Example:8443/cluster"),
            ("ws://[::1]:8080/#x", "http://[::1]:8080/cluster"),
        ] {
            assert_eq!(cluster_url(ws).as_deref(), Some(http), "{ws}");
        }
        for nonsense in ["http://lb.example/", "ws:///path", "lb.example"] {
            assert_eq!(cluster_url(nonsense), None, "{nonsense}");
        }
    }

    #[test]
    fn the_instance_this_tab_is_connected_to_is_the_current_row() {
        let mut panel = Panel::default();
        panel.answered(view(
            true,
            vec![
                entry("able-ant", 3, Health::Ok),
                entry("brave-bee", 7, Health::Overloaded),
                entry("calm-cat", 0, Health::Draining),
            ],
        ));
        let rows = panel.rows(Some("brave-bee"));
        let names: Vec<&str> = rows.iter().map(|row| row.name.as_str()).collect();
        assert_eq!(names, ["able-ant", "brave-bee", "calm-cat"]);
        let current: Vec<&str> =
            rows.iter().filter(|row| row.current).map(|row| row.name.as_str()).collect();
        assert_eq!(current, ["brave-bee"]);
        assert_eq!((rows[1].connections, rows[1].health), (7, Health::Overloaded));
        assert!(panel.rows(None).iter().all(|row| !row.current), "between connections: none");
        assert!(
            panel.rows(Some("gone-gnu")).iter().all(|row| !row.current),
            "an instance not (yet) in the registry marks nothing"
        );
        assert_eq!(panel.note(), None);
    }

    #[test]
    fn a_missed_answer_keeps_the_last_picture_and_says_so() {
        let mut panel = Panel::default();
        assert!(panel.rows(Some("able-ant")).is_empty());
        assert!(panel.note().unwrap().starts_with("Asking"));
        panel.answered(view(true, vec![entry("able-ant", 1, Health::Ok)]));
        panel.failed("timed out".to_owned());
        assert_eq!(panel.rows(Some("able-ant")).len(), 1);
        assert_eq!(panel.note().unwrap(), "No answer about the cluster: timed out");
        panel.answered(view(true, vec![entry("brave-bee", 1, Health::Ok)]));
        assert_eq!(panel.note(), None, "an answer clears the problem");
        assert_eq!(panel.rows(None)[0].name, "brave-bee", "and replaces the picture");
    }

    #[test]
    fn an_instance_without_redis_says_it_knows_only_itself() {
        let mut panel = Panel::default();
        panel.answered(view(false, vec![entry("lone-wolf", 1, Health::Ok)]));
        assert!(panel.note().unwrap().contains("lone-wolf shares no registry"));
    }
}
