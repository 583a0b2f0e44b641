//! The cluster panel's model: where to ask for the cluster, what the last answer was and
//! when it came, and the rows to show, with the instance this tab is connected to marked and
//! the instances that have stopped refreshing their registry entries marked stale.

use std::time::Duration;

use wstime_protocol::{cluster, ClusterView, Health};

/// How often the panel asks while the page is connected: often enough to watch a failover
/// (a killed instance leaves the registry within about 6 s), rarely enough that a thousand
/// open tabs cost an instance a few hundred small requests a second, not thousands.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);
/// How long one question may take before it counts as unanswered.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(3);

/// How long an instance may go without refreshing its registry entry before its row is
/// marked stale. Live instances refresh every 2 s (the server's `cluster::REFRESH`), and the
/// answer is read at the answering instance's own refresh, so a live entry reads 0 to 2 s
/// plus whatever a busy machine delays a refresh by; entries expire 6 s after their last
/// refresh (`registry::ENTRY_TTL`, three missed refreshes). After 4 s an instance has
/// missed two refreshes: it has very likely died, and the mark comes one refresh before the
/// row goes. The server's own rule for rebalancing (`cluster::is_stale`, 2.5 s) is tighter
/// because acting on an old count costs moves; on a person's screen a healthy instance
/// flagged whenever a refresh runs half a second late would be a false alarm.
pub const STALE_AFTER: Duration = Duration::from_secs(4);

/// Where to ask for the cluster, given the WebSocket address the page connects to: the same
/// host through HTTP(S), so that through a load balancer any live instance answers.
/// `None` for an address that is not `ws://` or `wss://` (the page normalises what is
/// typed, so that does not happen).
pub fn cluster_url(ws_url: &str) -> Option<String> {
    let (scheme, rest) = crate::address::split_scheme(ws_url)?;
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
    /// Whole seconds since it last refreshed its entry, when that is more than
    /// [`STALE_AFTER`]: it has likely died, and its figures are old.
    pub stale_for_s: Option<u64>,
}

/// A time of day on the page's clock, to say when the panel's answer came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeOfDay {
    /// 0 to 23.
    pub hours: u32,
    /// 0 to 59.
    pub minutes: u32,
    /// 0 to 59.
    pub seconds: u32,
}

impl std::fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Two digits each, by hand: `{:02}` would link the formatter's padding code into
        // the wasm, which has no room to spare (frontend/tests/weight.rs).
        let mut text = String::with_capacity(8);
        for (i, n) in [self.hours, self.minutes, self.seconds].into_iter().enumerate() {
            if i > 0 {
                text.push(':');
            }
            text.push(char::from(b'0' + (n / 10 % 10) as u8));
            text.push(char::from(b'0' + (n % 10) as u8));
        }
        f.write_str(&text)
    }
}

/// What the panel knows: the last answer and when it came, and whether the latest question
/// went unanswered.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Panel {
    last: Option<(ClusterView, TimeOfDay)>,
    problem: Option<String>,
}

impl Panel {
    /// Records an answer that came `at`.
    pub fn answered(&mut self, view: ClusterView, at: TimeOfDay) {
        self.last = Some((view, at));
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
        let Some((view, _)) = &self.last else { return Vec::new() };
        let stale_after = STALE_AFTER.as_millis() as u64;
        view.instances
            .iter()
            .map(|instance| Row {
                name: instance.name.clone(),
                connections: instance.connections,
                health: instance.health,
                current: connected_to == Some(instance.name.as_str()),
                stale_for_s: (instance.refreshed_ms_ago > stale_after)
                    .then_some(instance.refreshed_ms_ago / 1000),
            })
            .collect()
    }

    /// When the rows' answer came ("as of 12:03:07"), once there is one. A time rather than
    /// an age ("2 s ago"): it stays true without redrawing the panel every second, and while
    /// questions go unanswered it shows how old the picture is.
    /// How old the oldest figure of `view` is (ms): the answer's own row is live, the
    /// others as old as their entries (a stale one, marked as such, left out), so the
    /// panel's time is when its oldest live figure was true.
    pub fn age_ms(view: &ClusterView) -> u64 {
        let stale_after = STALE_AFTER.as_millis() as u64;
        view.instances
            .iter()
            .map(|instance| instance.refreshed_ms_ago)
            .filter(|&age| age <= stale_after)
            .max()
            .unwrap_or(0)
    }

    pub fn as_of(&self) -> Option<String> {
        self.last.as_ref().map(|(_, at)| format!("as of {at}"))
    }

    /// A line under the rows, when there is something to say about them.
    pub fn note(&self) -> Option<String> {
        match (&self.last, &self.problem) {
            (_, Some(problem)) => Some(format!("No answer about the cluster: {problem}")),
            (None, None) => Some("Asking which instances there are…".to_owned()),
            (Some((view, _)), None) if !view.shared => Some(format!(
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
            checked_ms_ago: None,
        }
    }

    fn view(shared: bool, instances: Vec<InstanceEntry>) -> ClusterView {
        ClusterView { answered_by: instances[0].name.clone(), shared, instances }
    }

    const AT: TimeOfDay = TimeOfDay { hours: 12, minutes: 3, seconds: 7 };

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
        panel.answered(
            view(
                true,
                vec![
                    entry("able-ant", 3, Health::Ok),
                    entry("brave-bee", 7, Health::Overloaded),
                    entry("calm-cat", 0, Health::Draining),
                ],
            ),
            AT,
        );
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
        panel.answered(view(true, vec![entry("able-ant", 1, Health::Ok)]), AT);
        panel.failed("timed out".to_owned());
        assert_eq!(panel.rows(Some("able-ant")).len(), 1);
        assert_eq!(panel.note().unwrap(), "No answer about the cluster: timed out");
        panel.answered(view(true, vec![entry("brave-bee", 1, Health::Ok)]), AT);
        assert_eq!(panel.note(), None, "an answer clears the problem");
        assert_eq!(panel.rows(None)[0].name, "brave-bee", "and replaces the picture");
    }

    #[test]
    fn an_instance_without_redis_says_it_knows_only_itself() {
        let mut panel = Panel::default();
        panel.answered(view(false, vec![entry("lone-wolf", 1, Health::Ok)]), AT);
        assert!(panel.note().unwrap().contains("lone-wolf shares no registry"));
    }

    #[test]
    fn the_panels_age_is_its_oldest_live_figures() {
        let refreshed =
            |name, ms_ago| InstanceEntry { refreshed_ms_ago: ms_ago, ..entry(name, 1, Health::Ok) };
        let live = view(true, vec![refreshed("able-ant", 0), refreshed("brave-bee", 2_600)]);
        assert_eq!(Panel::age_ms(&live), 2_600);
        let dying = view(true, vec![refreshed("able-ant", 300), refreshed("dead-dog", 5_400)]);
        assert_eq!(Panel::age_ms(&dying), 300, "a stale row says its own age");
        let empty = ClusterView { answered_by: "a".into(), shared: true, instances: Vec::new() };
        assert_eq!(Panel::age_ms(&empty), 0);
    }

    #[test]
    fn the_panel_says_when_its_answer_came() {
        let mut panel = Panel::default();
        assert_eq!(panel.as_of(), None, "no answer, no time");
        panel.answered(view(true, vec![entry("able-ant", 1, Health::Ok)]), AT);
        assert_eq!(panel.as_of().as_deref(), Some("as of 12:03:07"));
        let later = TimeOfDay { hours: 0, minutes: 0, seconds: 9 };
        panel.answered(view(true, vec![entry("able-ant", 1, Health::Ok)]), later);
        assert_eq!(panel.as_of().as_deref(), Some("as of 00:00:09"), "two digits each");
        panel.failed("timed out".to_owned());
        assert_eq!(
            panel.as_of().as_deref(),
            Some("as of 00:00:09"),
            "an unanswered question keeps the time of the picture on show"
        );
    }

    #[test]
    fn an_instance_that_stopped_refreshing_is_marked_stale_before_it_expires() {
        let refreshed =
            |name, ms_ago| InstanceEntry { refreshed_ms_ago: ms_ago, ..entry(name, 1, Health::Ok) };
        let mut panel = Panel::default();
        panel.answered(
            view(
                true,
                vec![
                    refreshed("able-ant", 0),
                    // A live instance whose refresh ran late on a busy machine: not flagged.
                    refreshed("brave-bee", 3_900),
                    refreshed("calm-cat", 4_000),
                    // Two refreshes missed; the entry expires at 6 s.
                    refreshed("dead-dog", 5_400),
                ],
            ),
            AT,
        );
        let rows = panel.rows(Some("dead-dog"));
        let stale: Vec<(&str, Option<u64>)> =
            rows.iter().map(|row| (row.name.as_str(), row.stale_for_s)).collect();
        assert_eq!(
            stale,
            [("able-ant", None), ("brave-bee", None), ("calm-cat", None), ("dead-dog", Some(5))]
        );
        assert!(rows[3].current, "stale and yours are both shown");
    }
}
