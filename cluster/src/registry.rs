//! What the instances' registry says: the live instances from `GET /cluster`, asking as
//! few instances as it takes (one, when they share Redis; each, when they do not).

use std::{collections::BTreeMap, net::SocketAddr, time::Duration};

use anyhow::Context as _;
use wstime_protocol::{cluster, ClusterView, InstanceEntry};

use crate::http;

/// How long one instance may take to answer.
const ANSWER_LIMIT: Duration = Duration::from_secs(2);

/// Asks the instance at `address` for the cluster.
pub fn ask(address: SocketAddr) -> anyhow::Result<ClusterView> {
    let response =
        http::request_at("GET", address, cluster::PATH, "application/json", ANSWER_LIMIT)?;
    anyhow::ensure!(response.status == 200, "{} answered {}", cluster::PATH, response.status);
    ClusterView::parse(&response.body).context("the /cluster answer")
}

/// The live instances by name, from the `running` instances (address, name): the first one
/// that answers is asked, then the next one its answer does not list, and so on. With a
/// shared registry one answer lists them all; without one each instance knows only itself.
pub fn gather(
    running: &[(SocketAddr, String)],
    mut ask: impl FnMut(SocketAddr) -> anyhow::Result<ClusterView>,
) -> BTreeMap<String, InstanceEntry> {
    let mut live = BTreeMap::new();
    for (address, name) in running {
        if live.contains_key(name) {
            continue;
        }
        // One that does not answer is simply not listed; the table says so.
        if let Ok(view) = ask(*address) {
            live.extend(view.instances.into_iter().map(|entry| (entry.name.clone(), entry)));
        }
    }
    live
}

#[cfg(test)]
mod tests {
    use wstime_protocol::Health;

    use super::*;

    fn entry(name: &str) -> InstanceEntry {
        InstanceEntry {
            name: name.to_owned(),
            address: "http://127.0.0.1:1".to_owned(),
            connections: 0,
            max_connections: 10,
            load: 0.0,
            health: Health::Ok,
            draining: false,
            version: "0.1.0".to_owned(),
            started_unix_ms: 0,
            refreshed_ms_ago: 0,
            checked_ms_ago: None,
        }
    }

    fn running() -> Vec<(SocketAddr, String)> {
        let at = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        vec![(at(1), "a".into()), (at(2), "b".into()), (at(3), "c".into())]
    }

    #[test]
    fn a_shared_registry_is_asked_once() {
        let mut asked = Vec::new();
        let live = gather(&running(), |address| {
            asked.push(address.port());
            let instances = vec![entry("a"), entry("b"), entry("c"), entry("killed-just-now")];
            Ok(ClusterView { answered_by: "a".into(), shared: true, instances })
        });
        assert_eq!(asked, [1]);
        assert_eq!(live.keys().collect::<Vec<_>>(), ["a", "b", "c", "killed-just-now"]);
    }

    #[test]
    fn without_redis_each_instance_is_asked_about_itself() {
        let mut asked = Vec::new();
        let live = gather(&running(), |address| {
            let port = address.port();
            asked.push(port);
            anyhow::ensure!(port != 2, "no answer");
            let name = ["a", "b", "c"][usize::from(port) - 1];
            Ok(ClusterView {
                answered_by: name.into(),
                shared: false,
                instances: vec![entry(name)],
            })
        });
        assert_eq!(asked, [1, 2, 3], "b did not answer, c was still asked");
        assert_eq!(live.keys().collect::<Vec<_>>(), ["a", "c"]);
    }
}
