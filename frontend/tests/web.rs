//! The page in headless Chromium against real wstime-server processes.
//!
//! Run under `wstime-cluster exec` (see `make test-browser`), whose control API starts,
//! kills and restarts instances for the tests; its address is baked in at compile time.
#![cfg(target_arch = "wasm32")]

use std::time::Duration;

use gloo_timers::future::TimeoutFuture;
use leptos::{mount::mount_to, prelude::*};
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;
use web_sys::{HtmlElement, HtmlInputElement};
use wstime_frontend::{
    cluster::{Panel, TimeOfDay},
    cluster_json, App, ClusterPanel,
};
use wstime_protocol::ClusterView;

wasm_bindgen_test_configure!(run_in_browser);

/// A generous bound on anything the page must do; failing beats hanging.
const LIMIT: Duration = Duration::from_secs(20);

// `option_env!` rather than `env!`: the tests must compile (and be linted) without a
// cluster; only running them needs one, and the message says how.
#[allow(clippy::option_env_unwrap)]
fn control_url(path: &str) -> String {
    let base = option_env!("WSTIME_CONTROL_URL")
        .expect("WSTIME_CONTROL_URL is unset: run the browser tests with `make test-browser`");
    format!("{base}{path}")
}

/// Calls the cluster's control API and returns its JSON answer.
async fn control(method: &str, path: &str) -> serde_json::Value {
    let url = control_url(path);
    let request = match method {
        "GET" => gloo_net::http::Request::get(&url),
        _ => gloo_net::http::Request::post(&url),
    };
    let response = request.send().await.expect("the control API answers");
    let body = response.text().await.expect("a body");
    assert!(response.ok(), "{method} {path}: {body}");
    serde_json::from_str(&body).expect("JSON from the control API")
}

/// A fresh instance of wstime-server: (index, port, name).
async fn new_instance() -> (u64, u64, String) {
    let info = control("POST", "/instances").await;
    (
        info["index"].as_u64().unwrap(),
        info["port"].as_u64().unwrap(),
        info["name"].as_str().unwrap().to_owned(),
    )
}

/// A fresh instance and the page connected to it, once `ticks` ticks have arrived. The
/// address is typed as `address(port)` gives it. Returns the page and the instance's
/// (index, port, name).
async fn connected(address: impl Fn(u64) -> String, ticks: usize) -> (Page, u64, u64, String) {
    let (index, port, name) = new_instance().await;
    let page = Page::mount();
    page.type_address(&address(port));
    page.click_connect();
    page.wait_until("the first ticks", |p| p.counts_from(&name).len() >= ticks).await;
    (page, index, port, name)
}

/// The app mounted in its own element; elements are found by id inside it.
struct Page {
    root: web_sys::Element,
    _mounted: leptos::mount::UnmountHandle<leptos::tachys::view::any_view::AnyViewState>,
}

impl Page {
    fn mount() -> Self {
        Self::mount_view(|| view! { <App/> }.into_any())
    }

    /// Mounts any view (a single component, for tests that need no server).
    fn mount_view(view: impl FnOnce() -> AnyView + 'static) -> Self {
        let document = document();
        let root = document.create_element("section").unwrap();
        document.body().unwrap().append_child(&root).unwrap();
        let mounted = mount_to(root.clone().unchecked_into(), view);
        Self { root, _mounted: mounted }
    }

    fn element<T: JsCast>(&self, id: &str) -> T {
        self.root
            .query_selector(&format!("#{id}"))
            .unwrap()
            .unwrap_or_else(|| panic!("no #{id}"))
            .unchecked_into()
    }

    fn text(&self, id: &str) -> String {
        self.element::<HtmlElement>(id).text_content().unwrap_or_default()
    }

    fn log(&self) -> Vec<String> {
        let items = self.root.query_selector_all("#log li").unwrap();
        (0..items.length()).filter_map(|i| items.item(i).and_then(|n| n.text_content())).collect()
    }

    /// The cluster panel's rows: (data-instance, class, text of each cell), in order;
    /// `None` while there is no panel.
    fn cluster_rows(&self) -> Option<Vec<ClusterRow>> {
        self.root.query_selector("#cluster").unwrap()?;
        let rows = self.root.query_selector_all("#cluster tr[data-instance]").unwrap();
        Some(
            (0..rows.length())
                .filter_map(|i| rows.item(i))
                .map(|node| {
                    let row: web_sys::Element = node.unchecked_into();
                    let cells = row.query_selector_all("td").unwrap();
                    ClusterRow {
                        instance: row.get_attribute("data-instance").unwrap_or_default(),
                        current: row.class_list().contains("current"),
                        cells: (0..cells.length())
                            .filter_map(|i| cells.item(i).and_then(|n| n.text_content()))
                            .collect(),
                    }
                })
                .collect(),
        )
    }

    /// Types `address` into the box the way a person would (an input event per change).
    fn type_address(&self, address: &str) {
        let input: HtmlInputElement = self.element("address");
        input.set_value(address);
        let event = web_sys::InputEvent::new("input").unwrap();
        input.dispatch_event(&event).unwrap();
    }

    fn click_connect(&self) {
        self.element::<HtmlElement>("connect").click();
    }

    /// Waits until `condition` holds, or fails saying what it waited for and what it saw.
    async fn wait_until(&self, what: &str, condition: impl Fn(&Self) -> bool) {
        let mut waited = Duration::ZERO;
        while !condition(self) {
            assert!(
                waited < LIMIT,
                "waited {LIMIT:?} for {what}; status {:?}, log {:#?}",
                self.text("status"),
                self.log()
            );
            TimeoutFuture::new(100).await;
            waited += Duration::from_millis(100);
        }
    }

    /// The counts of the ticks from `server` in the log, in order.
    fn counts_from(&self, server: &str) -> Vec<u64> {
        self.log()
            .iter()
            .filter_map(|line| wstime_protocol::Tick::parse(line))
            .filter(|tick| tick.server == server)
            .map(|tick| tick.seconds)
            .collect()
    }
}

/// One row of the cluster panel, as the DOM shows it.
#[derive(Debug, Clone, PartialEq)]
struct ClusterRow {
    /// Its `data-instance` attribute.
    instance: String,
    /// Whether it has the class `current`.
    current: bool,
    /// The text of its cells: name, connections, health.
    cells: Vec<String>,
}

impl Drop for Page {
    fn drop(&mut self) {
        self.root.remove();
    }
}

#[wasm_bindgen_test]
async fn the_address_box_starts_with_the_pages_host() {
    let page = Page::mount();
    leptos::task::tick().await;
    let host = web_sys::window().unwrap().location().host().unwrap();
    assert_eq!(page.element::<HtmlInputElement>("address").value(), format!("ws://{host}/"));
    assert_eq!(page.text("connect"), "Connect");
    assert_eq!(page.text("status"), "not connected");
}

#[wasm_bindgen_test]
async fn connect_shows_ticks_and_the_server_name() {
    // A bare host:port, which the page normalises.
    let (page, _, port, name) = connected(|port| format!("127.0.0.1:{port}"), 2).await;
    assert_eq!(page.text("status"), format!("connected to {name}"));
    assert_eq!(page.text("connect"), "Disconnect");
    let counts = page.counts_from(&name);
    assert_eq!(counts[..2], [0, 1]);
    let log = page.log();
    assert_eq!(log[0], format!("Connecting to ws://127.0.0.1:{port}/"));
    assert_eq!(log[1], "establishing connection... retry #0");
    assert_eq!(log[2], "connected to server");
    assert_eq!(
        page.element::<HtmlInputElement>("address").value(),
        format!("ws://127.0.0.1:{port}/"),
        "the box shows the normalised address"
    );

    page.click_connect();
    page.wait_until("the Connect button back", |p| p.text("connect") == "Connect").await;
    assert_eq!(page.text("status"), "not connected");
}

#[wasm_bindgen_test]
async fn a_stopped_server_is_retried_until_it_returns() {
    let (page, index, _, _) = connected(|port| format!("ws://127.0.0.1:{port}/"), 1).await;

    control("POST", &format!("/instances/{index}/signal/KILL")).await;
    page.wait_until("the loss to be noticed", |p| {
        p.log().iter().any(|l| l == "Connection lost with server.")
    })
    .await;
    page.wait_until("a second failed attempt", |p| {
        p.log().iter().any(|l| l == "establishing connection... retry #2")
    })
    .await;
    let status = page.text("status");
    assert!(
        status.starts_with("retrying in ") || status.starts_with("connecting (attempt"),
        "{status:?}"
    );
    assert!(status.contains(" of 50)"), "{status:?}");

    let restarted = control("POST", &format!("/instances/{index}/restart")).await;
    let new_name = restarted["name"].as_str().unwrap().to_owned();
    page.wait_until("the restarted server", |p| {
        p.text("status") == format!("connected to {new_name}")
    })
    .await;
    page.click_connect();
}

#[wasm_bindgen_test]
async fn the_posts_double_scheme_mistake_is_explained() {
    let page = Page::mount();
    page.type_address("ws://http://lb.example.com");
    page.click_connect();
    page.wait_until("an explanation", |p| {
        p.log().iter().any(|l| l.contains("without the http:// part"))
    })
    .await;
    assert_eq!(page.text("connect"), "Connect", "nothing was started");
}

#[wasm_bindgen_test]
async fn a_replaced_server_resumes_the_count_through_redis() {
    let (page, index, _, old_name) = connected(|port| format!("ws://127.0.0.1:{port}/"), 3).await;

    // SIGKILL, then a new process (a new name) on the same port, sharing the same Redis.
    let restarted = control("POST", &format!("/instances/{index}/restart")).await;
    let new_name = restarted["name"].as_str().unwrap().to_owned();
    assert_ne!(new_name, old_name);
    page.wait_until("the new server's name", |p| {
        p.text("status") == format!("connected to {new_name}")
    })
    .await;
    page.wait_until("a tick from the new server", |p| !p.counts_from(&new_name).is_empty()).await;

    let before = *page.counts_from(&old_name).last().unwrap();
    let after = page.counts_from(&new_name)[0];
    assert!(after > before, "the count went on: {after} after {before}");
    let resumed = format!("resumed on {new_name} at {after} seconds");
    assert!(page.log().contains(&resumed), "{resumed:?} in {:#?}", page.log());
    page.click_connect();
}

/// A `/cluster` answer listing `instances` as (name, connections, health), read the way
/// the page reads one.
fn answer(instances: &[(&str, u64, &str)]) -> ClusterView {
    let entries: Vec<String> = instances
        .iter()
        .map(|(name, connections, health)| {
            format!(
                r#"{{"name":"{name}","address":"http://127.0.0.1:1","connections":{connections},"max_connections":100,"load":0.0,"health":"{health}","draining":false,"version":"0.1.0","started_unix_ms":0}}"#
            )
        })
        .collect();
    let answered_by = instances[0].0;
    let json = format!(
        r#"{{"answered_by":"{answered_by}","shared":true,"instances":[{}]}}"#,
        entries.join(",")
    );
    cluster_json::parse(&json).expect("a well-formed answer")
}

/// The page reads `/cluster` with `JSON.parse`, the server's readers with serde: both must
/// take the same documents to the same view, and refuse the same ones.
#[wasm_bindgen_test]
fn the_pages_json_reader_agrees_with_serde() {
    let contract = r#"{"answered_by":"slimy-cardinal","shared":true,
 "instances":[{"name":"slimy-cardinal","address":"http://127.0.0.1:37425","connections":12,"max_connections":19000,"load":0.0006,"health":"ok","draining":false,"version":"0.1.0","started_unix_ms":1764748800000}]}"#;
    let newer = r#"{"answered_by":"a","shared":false,"instances":[{"name":"a","address":"x",
        "connections":0,"max_connections":1,"load":1.5,"health":"melting","draining":true,
        "version":"9","started_unix_ms":1,"refreshed_ms_ago":4100,"zone":"eu"}],"extra":1}"#;
    for good in [contract, newer, r#"{"answered_by":"a","shared":true,"instances":[]}"#] {
        let by_serde = ClusterView::parse(good).expect("serde reads it");
        assert_eq!(cluster_json::parse(good), Ok(by_serde), "{good}");
    }
    let entry = |connections: &str, health: &str| {
        format!(
            r#"{{"answered_by":"a","shared":true,"instances":[{{"name":"a","address":"x","connections":{connections},"max_connections":1,"load":0,"health":{health},"draining":false,"version":"1","started_unix_ms":0}}]}}"#
        )
    };
    for bad in [
        "<html>not found</html>".to_owned(),
        "null".to_owned(),
        "[]".to_owned(),
        r#"{"answered_by":"a","shared":true}"#.to_owned(),
        r#"{"answered_by":"a","shared":"yes","instances":[]}"#.to_owned(),
        r#"{"answered_by":"a","shared":true,"instances":{}}"#.to_owned(),
        r#"{"answered_by":"a","shared":true,"instances":[7]}"#.to_owned(),
        entry("-1", r#""ok""#),
        entry("1.5", r#""ok""#),
        entry(r#""1""#, r#""ok""#),
        entry("1", "3"),
    ] {
        assert!(ClusterView::parse(&bad).is_err(), "serde refuses {bad}");
        assert!(cluster_json::parse(&bad).is_err(), "the page refuses {bad}");
    }
}

/// When the test's answers come, on the page's clock.
const AT: TimeOfDay = TimeOfDay { hours: 12, minutes: 3, seconds: 7 };

#[wasm_bindgen_test]
async fn the_cluster_panel_draws_each_instance_and_marks_yours() {
    let panel = RwSignal::new(Panel::default());
    let connected_to = RwSignal::new(Some("brave-bee".to_owned()));
    let page = Page::mount_view(move || view! { <ClusterPanel panel connected_to /> }.into_any());
    leptos::task::tick().await;
    assert_eq!(page.cluster_rows(), Some(Vec::new()), "no answer yet: no rows");
    assert!(page.text("cluster").contains("Asking which instances"), "{}", page.text("cluster"));

    panel.update(|p| {
        p.answered(answer(&[("able-ant", 3, "ok"), ("brave-bee", 7, "overloaded")]), AT)
    });
    leptos::task::tick().await;
    let row = |instance: &str, current, cells: [&str; 3]| ClusterRow {
        instance: instance.to_owned(),
        current,
        cells: cells.map(str::to_owned).to_vec(),
    };
    assert_eq!(
        page.cluster_rows().unwrap(),
        [
            row("able-ant", false, ["able-ant", "3", "ok"]),
            row("brave-bee", true, ["brave-bee (you)", "7", "overloaded"]),
        ]
    );

    // The next answer: one instance gone, one new, numbers changed; and this tab moved.
    panel
        .update(|p| p.answered(answer(&[("brave-bee", 2, "draining"), ("calm-cat", 9, "ok")]), AT));
    connected_to.set(Some("calm-cat".to_owned()));
    leptos::task::tick().await;
    assert_eq!(
        page.cluster_rows().unwrap(),
        [
            row("brave-bee", false, ["brave-bee", "2", "draining"]),
            row("calm-cat", true, ["calm-cat (you)", "9", "ok"]),
        ]
    );

    // A question that went unanswered keeps the picture and says so.
    panel.update(|p| p.failed("timed out".to_owned()));
    leptos::task::tick().await;
    assert_eq!(page.cluster_rows().unwrap().len(), 2);
    assert!(page.text("cluster").contains("No answer about the cluster: timed out"));
}

#[wasm_bindgen_test]
async fn the_cluster_panel_marks_a_silent_instance_in_words_and_says_when_it_answered() {
    let panel = RwSignal::new(Panel::default());
    let connected_to = RwSignal::new(Some("able-ant".to_owned()));
    let page = Page::mount_view(move || view! { <ClusterPanel panel connected_to /> }.into_any());
    // brave-bee last refreshed its registry entry 5.4 s ago: two refreshes missed.
    let mut view = answer(&[("able-ant", 3, "ok"), ("brave-bee", 7, "ok")]);
    view.instances[1].refreshed_ms_ago = 5_400;
    panel.update(|p| p.answered(view, AT));
    leptos::task::tick().await;

    let rows = page.cluster_rows().unwrap();
    assert_eq!(rows[0].cells[0], "able-ant (you)");
    assert_eq!(rows[1].cells[0], "brave-bee (silent for 5 s)", "in words, not colour alone");
    let stale = page.root.query_selector_all("#cluster tr.stale[data-instance]").unwrap();
    assert_eq!(stale.length(), 1);
    let stale: web_sys::Element = stale.item(0).unwrap().unchecked_into();
    assert_eq!(stale.get_attribute("data-instance").as_deref(), Some("brave-bee"));
    let caption = page.root.query_selector("#cluster caption").unwrap().expect("a caption");
    assert_eq!(caption.text_content().as_deref(), Some("as of 12:03:07"));
}

// The rows themselves, from real instances, are checked end to end through HAProxy in
// server/tests/browser.rs: this page comes from the test runner's origin, and an instance's
// `/cluster` answer carries no CORS header to let a page from another origin read it.
#[wasm_bindgen_test]
async fn the_cluster_panel_is_there_while_the_page_connects() {
    let page = Page::mount();
    leptos::task::tick().await;
    assert_eq!(page.cluster_rows(), None, "no panel before Connect");
    // Nothing listens there: the page keeps retrying, and the panel says it has no answer.
    // (No server, so no session: the other tests share this tab's client id.)
    page.type_address("ws://127.0.0.1:9/");
    page.click_connect();
    page.wait_until("the panel to say it has no answer", |p| {
        p.cluster_rows().is_some() && p.text("cluster").contains("No answer about the cluster")
    })
    .await;
    page.click_connect();
    page.wait_until("the panel gone after Disconnect", |p| p.cluster_rows().is_none()).await;
}

#[wasm_bindgen_test]
async fn a_client_moved_to_balance_the_load_says_so_and_comes_back() {
    use std::{cell::RefCell, rc::Rc};

    use futures::future::{AbortHandle, Abortable};
    use wstime_frontend::client;
    use wstime_protocol::RetryPolicy;

    // Eight connection loops on one instance, none on another sharing its registry: the
    // crowded one moves sockets (1013 with a retry hint) until it is near the mean. The
    // loops connect to it directly, so a moved one comes back to it and may be moved again.
    let (_, port, _) = new_instance().await;
    let _emptier = new_instance().await;
    let mut loops = Vec::new();
    for n in 0..8 {
        let lines = Rc::new(RefCell::new(Vec::<String>::new()));
        let (handle, registration) = AbortHandle::new_pair();
        let url = format!("ws://127.0.0.1:{port}/?id=crowded-{n}");
        let sink = Rc::clone(&lines);
        let run = client::run(url, RetryPolicy::DEFAULT, move |event| {
            if let client::Event::Log(line) = event {
                sink.borrow_mut().push(line);
            }
        });
        leptos::task::spawn_local(async move {
            let _ = Abortable::new(run, registration).await;
        });
        loops.push((handle, lines));
    }
    let moved_and_back = |lines: &[String]| {
        let moved = lines.iter().position(|l| l.contains("moved this connection to balance"));
        moved
            .is_some_and(|at| lines[at..].iter().any(|l| l.contains("you have been connected for")))
    };
    let deadline = js_sys::Date::now() + 3.0 * LIMIT.as_millis() as f64;
    while !loops.iter().any(|(_, lines)| moved_and_back(&lines.borrow())) {
        assert!(js_sys::Date::now() < deadline, "no client was moved and came back");
        TimeoutFuture::new(100).await;
    }
    let (_, lines) = loops.iter().find(|(_, lines)| moved_and_back(&lines.borrow())).unwrap();
    let line = lines.borrow().iter().find(|l| l.contains("moved this")).cloned().unwrap();
    let wait: f64 = line
        .rsplit_once("reconnecting in ")
        .and_then(|(_, rest)| rest.strip_suffix(" s."))
        .and_then(|seconds| seconds.parse().ok())
        .unwrap_or_else(|| panic!("a wait in {line:?}"));
    assert!(wait >= 0.5, "it waits at least the server's hint of 0.5 s: {line:?}");
    for (handle, _) in loops {
        handle.abort();
    }
}
