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
use wstime_frontend::App;

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
        let document = document();
        let root = document.create_element("section").unwrap();
        document.body().unwrap().append_child(&root).unwrap();
        let mounted = mount_to(root.clone().unchecked_into(), || view! { <App/> }.into_any());
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
