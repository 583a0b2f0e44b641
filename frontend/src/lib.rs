//! The wstime page: the post's page (address box, Connect button, message log, retry loop)
//! rewritten in Leptos.
//!
//! Rendering lives here; everything else is plain Rust with ordinary tests:
//! - [`address`]: the address box's default and normalisation.
//! - [`log`]: the capped message log.
//! - [`status`]: the status line and the reconnection lines.
//! - [`client`]: the connection loop (gloo-net WebSocket, backoff, timeouts).
//! - [`client_id`]: the tab's session id.
//! - [`cluster`]: the cluster panel's model (where to ask, its rows, which one is you).
//! - [`cluster_json`]: reading the `/cluster` answer with the browser's `JSON.parse`.
//! - [`cluster_watch`]: asking `/cluster` every couple of seconds while connected, and at
//!   once on each connection.

pub mod address;
pub mod client;
pub mod client_id;
pub mod cluster;
pub mod cluster_json;
pub mod cluster_watch;
pub mod log;
pub mod status;

use futures::future::{self, AbortHandle, Abortable};
use leptos::{html, prelude::*, task::spawn_local};
use wstime_protocol::RetryPolicy;

use crate::{
    cluster::{Panel, TimeOfDay},
    log::LogBuffer,
    status::Status,
};

/// The address the box starts with: this page's own host.
fn page_address() -> String {
    let location = web_sys::window().map(|w| w.location());
    let part = |get: fn(&web_sys::Location) -> Result<String, wasm_bindgen::JsValue>| {
        location.as_ref().and_then(|l| get(l).ok()).unwrap_or_default()
    };
    address::default_for_page(&part(web_sys::Location::protocol), &part(web_sys::Location::host))
}

/// The time of day `ms_ago` milliseconds ago, on the page's clock (the person's time zone).
/// Counted back in seconds of the day rather than with a second `Date`: the page's wasm
/// has no room for more imports (frontend/tests/weight.rs).
fn time_of_day(ms_ago: u64) -> TimeOfDay {
    const DAY: u32 = 24 * 60 * 60;
    let now = js_sys::Date::new_0();
    let of_day = now.get_hours() * 3600 + now.get_minutes() * 60 + now.get_seconds();
    let then = (of_day + DAY - (ms_ago / 1000 % u64::from(DAY)) as u32) % DAY;
    TimeOfDay { hours: then / 3600, minutes: then / 60 % 60, seconds: then % 60 }
}

/// The whole page.
#[component]
pub fn App() -> impl IntoView {
    let address = RwSignal::new(page_address());
    let log = RwSignal::new(LogBuffer::default());
    let status = RwSignal::new(Status::Idle);
    // The running connection loop, if any; aborting it drops (and so closes) its socket.
    let running = RwSignal::new(None::<AbortHandle>);
    // What the cluster panel shows; it is on screen (and asked for) while the loop runs.
    let cluster = RwSignal::new(Panel::default());
    let connected_to = Signal::derive(move || {
        status.with(|status| match status {
            Status::Connected { server } => Some(server.clone()),
            _ => None,
        })
    });
    let log_view = NodeRef::<html::Ol>::new();

    let push = move |line: String| log.update(|l| l.push(line));

    let toggle = move |_| {
        if let Some(handle) = running.get_untracked() {
            handle.abort();
            running.set(None);
            push("Disconnected.".to_owned());
            status.set(Status::Idle);
            return;
        }
        let url = match address::normalise(&address.get_untracked()) {
            Ok(url) => url,
            Err(error) => {
                push(error.to_string());
                return;
            }
        };
        address.set(url.clone());
        log.update(LogBuffer::clear);
        push(format!("Connecting to {url}"));
        let target = address::with_client_id(&url, &client_id::for_this_tab());
        let cluster_url = cluster::cluster_url(&url);
        cluster.set(Panel::default());
        let (handle, registration) = AbortHandle::new_pair();
        running.set(Some(handle));
        spawn_local(async move {
            // Each connection (a first one, a reconnection, a move) asks the panel to ask the
            // cluster at once, so the row it is on does not wait up to a poll to show it.
            let ask_now = cluster_watch::AskNow::default();
            let nudge = ask_now.clone();
            let session = client::run(target, RetryPolicy::DEFAULT, move |event| match event {
                client::Event::Log(line) => push(line),
                client::Event::Status(new) => {
                    if matches!(new, Status::Connected { .. }) {
                        nudge.nudge();
                    }
                    status.set(new);
                }
            });
            let report = move |answer| match answer {
                Ok(view) => {
                    let taken = time_of_day(Panel::age_ms(&view));
                    cluster.update(|panel| panel.answered(view, taken))
                }
                Err(why) => cluster.update(|panel| panel.failed(why)),
            };
            // The panel's questions live exactly as long as the connection loop: they end
            // when it gives up and when it is aborted.
            let watch = async move {
                match cluster_url {
                    Some(url) => cluster_watch::watch(url, report, ask_now).await,
                    None => future::pending().await,
                }
            };
            let both = future::select(Box::pin(session), Box::pin(watch));
            // Only a loop that ended by itself (gave up, refused) frees the button; an aborted
            // one was already replaced.
            if Abortable::new(both, registration).await.is_ok() {
                running.set(None);
            }
        });
    };

    // The loop belongs to this component: when the page is unmounted, stop it.
    on_cleanup(move || {
        if let Some(handle) = running.try_get_untracked().flatten() {
            handle.abort();
        }
    });

    // Keep the newest line in view as the log grows.
    Effect::new(move |_| {
        log.track();
        if let Some(list) = log_view.get() {
            list.set_scroll_top(list.scroll_height());
        }
    });

    view! {
        <main>
            <h1>"wstime"</h1>
            <p class="intro">
                "Connect to a wstime server (or the load balancer in front of several) and watch \
                 how long you have been connected. Kill the server that answers: the page \
                 reconnects to another and the count goes on."
            </p>
            <form class="controls" on:submit=move |ev| { ev.prevent_default(); toggle(()); }>
                <label for="address">"Server address"</label>
                <input
                    id="address"
                    type="text"
                    spellcheck="false"
                    autocomplete="off"
                    prop:value=move || address.get()
                    on:input=move |ev| address.set(event_target_value(&ev))
                />
                <button id="connect" type="submit">
                    {move || if running.with(Option::is_some) { "Disconnect" } else { "Connect" }}
                </button>
            </form>
            // A live region: screen readers say each connect, loss and move when the reader
            // pauses, without interrupting it.
            <p id="status" class="status" role="status" aria-live="polite" aria-atomic="true">
                {move || status.with(ToString::to_string)}
            </p>
            {move || {
                running
                    .with(Option::is_some)
                    .then(|| view! { <ClusterPanel panel=cluster connected_to=connected_to /> })
            }}
            // Not a live region (no role="log"): a tick a second would be read out without
            // end, and #status already says what changed. Focusable, so that a keyboard
            // scrolls it.
            <ol id="log" class="log" node_ref=log_view tabindex="0" aria-label="messages">
                <For
                    each=move || log.with(|l| l.lines().cloned().collect::<Vec<_>>())
                    key=|line| line.id
                    children=|line| view! { <li>{line.text}</li> }
                />
            </ol>
        </main>
    }
}

/// The cluster: one row per live instance (`data-instance` = its name) with its connections
/// and health, the row of the instance this tab is connected to marked `current`, and one
/// that has stopped refreshing its registry entry marked `stale` (in words too, not only in
/// colour); the table's caption says when the answer came.
#[component]
pub fn ClusterPanel(
    /// What is known of the cluster.
    #[prop(into)]
    panel: Signal<Panel>,
    /// The server this tab's latest tick came from, while connected.
    #[prop(into)]
    connected_to: Signal<Option<String>>,
) -> impl IntoView {
    let rows = move || panel.with(|panel| connected_to.with(|name| panel.rows(name.as_deref())));
    view! {
        <section id="cluster" class="cluster" aria-label="cluster">
            <h2>"Cluster"</h2>
            <table>
                {move || panel.with(Panel::as_of).map(|as_of| view! { <caption>{as_of}</caption> })}
                <thead>
                    <tr>
                        <th>"instance"</th>
                        <th class="connections">"connections"</th>
                        <th>"health"</th>
                    </tr>
                </thead>
                <tbody>
                    // Drawn by position, not with a keyed `<For>`: the rows are few and
                    // change every poll, and a second keyed list cost the page 1.4 KB gzipped.
                    {move || {
                        rows()
                            .into_iter()
                            .map(|row| {
                                let class = match (row.current, row.stale_for_s.is_some()) {
                                    (true, true) => "current stale",
                                    (true, false) => "current",
                                    (false, true) => "stale",
                                    (false, false) => "",
                                };
                                let health = row.health.to_string();
                                let name = row.name.clone();
                                let stale = row.stale_for_s.map(|seconds| {
                                    view! {
                                        <span class="silent">{format!(" (silent for {seconds} s)")}</span>
                                    }
                                });
                                view! {
                                    <tr data-instance=row.name class=class>
                                        <td class="name">
                                            {name}
                                            {row.current.then(|| view! { <span class="you">" (you)"</span> })}
                                            {stale}
                                        </td>
                                        <td class="connections">{row.connections}</td>
                                        <td class=format!("health {health}")>{health.clone()}</td>
                                    </tr>
                                }
                            })
                            .collect::<Vec<_>>()
                    }}
                </tbody>
            </table>
            {move || panel.with(Panel::note).map(|note| view! { <p class="note">{note}</p> })}
        </section>
    }
}
