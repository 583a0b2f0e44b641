//! The page row: what a person waits for in a browser, from navigation to the first tick in
//! the page's log, for wstime's page and the post's, each served by its own server on
//! loopback (one wstime-server, no load balancer: the page and its socket come from the
//! instance that serves it either way).
//!
//! What is timed, inside the page, so that WebDriver's own round trips are not: a script
//! Chromium runs before any of the page's own (`Page.addScriptToEvaluateOnNewDocument`)
//! watches the document with a `MutationObserver`. At the first change at or after
//! `DOMContentLoaded` where the Connect button is in the document it clicks it, as a person
//! would as soon as it works (wstime's button appears when its wasm has mounted the page,
//! its handler with it; the post's is in the HTML, its handler set by an inline script that
//! has run by `DOMContentLoaded`); and at the first change where the log holds a tick's
//! text it notes the time. Both times are `performance.now()`, which counts from the
//! navigation's start. That is when the line is in the document; it is painted in the next
//! frame.
//!
//! Cold is the first load in a fresh Chromium profile (nothing cached, not even compiled
//! wasm); warm is the second load in the same profile, after a visit to `about:blank` that
//! closes the first page's socket. Each run starts a new Chromium, so runs share nothing.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};

use crate::{browser::Chromium, node::NodeParts, servers::Server, setup::Setup, stats::Summary};

/// The slow link: 400 ms round trip, 400 kbit/s each way, roughly a slow 3G phone, as
/// Chrome's DevTools network emulation applies it to every request.
pub const SLOW_LATENCY_MS: u32 = 400;
/// 400 kbit/s in the bytes per second the DevTools protocol takes.
pub const SLOW_BYTES_PER_SECOND: u32 = 50_000;

/// How long one load may take to show its first tick: a cold load of wstime's page over the
/// slow link moves its wasm at 50 KB/s.
const LOAD_LIMIT: Duration = Duration::from_secs(60);

/// Where the watcher keeps its two times, for WebDriver to read.
const TIMES: &str = "window.__wstimeBenchPage";

/// What to run.
pub struct PageLoad {
    /// Runs per page and link (each a cold load and a warm one; 0: none).
    pub runs: usize,
}

/// A link the pages are loaded over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Loopback as it is.
    Unthrottled,
    /// Loopback through Chrome's network emulation ([`SLOW_LATENCY_MS`],
    /// [`SLOW_BYTES_PER_SECOND`]).
    Slow,
}

impl Link {
    /// What the report calls it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Unthrottled => "unthrottled",
            Self::Slow => "slow",
        }
    }

    /// `Network.emulateNetworkConditions`'s parameters, if the link is emulated.
    fn conditions(self) -> Option<Json> {
        match self {
            Self::Unthrottled => None,
            Self::Slow => Some(json!({
                "offline": false,
                "latency": SLOW_LATENCY_MS,
                "downloadThroughput": SLOW_BYTES_PER_SECOND,
                "uploadThroughput": SLOW_BYTES_PER_SECOND,
            })),
        }
    }
}

/// One page, cold or warm, over one link: every run's times.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PageRow {
    /// `wstime`, or `node` for the post's page served by the post's server.
    pub page: String,
    /// `unthrottled` or `slow`.
    pub link: String,
    /// `cold` or `warm`.
    pub cache: String,
    /// Per run, from navigation start to the click on Connect, in ms.
    pub clicked_ms: Vec<f64>,
    /// Per run, from navigation start to the first tick in the log, in ms.
    pub first_tick_ms: Vec<f64>,
}

/// The page row as the report keeps it: when and with what it was measured, and its rows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PageReport {
    /// When it was measured: `--only page` adds it to an older report.
    pub date: String,
    /// What `chromium --version` says.
    pub browser: String,
    pub runs: usize,
    pub rows: Vec<PageRow>,
}

/// The median (nearest rank: of an even count, the lower middle) and the range of `samples`.
pub fn median_and_range(samples: &[f64]) -> (f64, f64, f64) {
    let low = samples.iter().copied().fold(f64::INFINITY, f64::min);
    let summary = Summary::of(samples.to_vec());
    (summary.p50, low, summary.max)
}

/// `text` as a JavaScript string literal.
fn js_string(text: &str) -> String {
    Json::from(text).to_string()
}

/// One page to load: where, and the ids its watcher looks for.
struct Subject {
    label: &'static str,
    url: String,
    /// The Connect button.
    button: &'static str,
    /// The element the page writes its log lines into.
    log: &'static str,
}

impl Subject {
    /// The watcher Chromium runs in every new document before the page's own scripts.
    fn watcher(&self) -> String {
        format!(
            r#"(() => {{
  const times = {{ clickedMs: null, firstTickMs: null }};
  {TIMES} = times;
  let loaded = false;
  const look = () => {{
    if (!loaded) return;
    if (times.clickedMs === null) {{
      const button = document.querySelector({button});
      if (button) {{ times.clickedMs = performance.now(); button.click(); }}
    }}
    const log = document.querySelector({log});
    if (times.firstTickMs === null && log && log.textContent.includes({tick})) {{
      times.firstTickMs = performance.now();
      observer.disconnect();
    }}
  }};
  const observer = new MutationObserver(look);
  observer.observe(document, {{ childList: true, subtree: true, characterData: true }});
  document.addEventListener("DOMContentLoaded", () => {{ loaded = true; look(); }});
}})();"#,
            button = js_string(self.button),
            log = js_string(self.log),
            tick = js_string(wstime_protocol::tick::MIDDLE),
        )
    }
}

/// One load's two times, in ms from navigation start.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Times {
    clicked_ms: f64,
    first_tick_ms: f64,
}

impl PageLoad {
    /// Both servers started once and left idle between loads; then, link by link and run by
    /// run, wstime's page and the post's in turn, so that the machine's drift falls on both.
    pub fn run(&self, setup: &Setup, node: Option<&NodeParts>) -> anyhow::Result<PageReport> {
        let wstime = Server::Wstime(setup.wstime());
        let mut servers = vec![(wstime.start()?, "#connect", "#log", "wstime")];
        if let Some(node) = node {
            servers.push((node.peer.start()?, "#buttonConnect", "#messages", "node"));
        }
        let subjects: Vec<Subject> = servers
            .iter()
            .map(|(running, button, log, label)| Subject {
                label,
                url: format!("http://127.0.0.1:{}/", running.port),
                button,
                log,
            })
            .collect();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let mut rows = Vec::new();
        for link in [Link::Unthrottled, Link::Slow] {
            let first = rows.len();
            for subject in &subjects {
                for cache in ["cold", "warm"] {
                    rows.push(PageRow {
                        page: subject.label.into(),
                        link: link.label().into(),
                        cache: cache.into(),
                        clicked_ms: Vec::new(),
                        first_tick_ms: Vec::new(),
                    });
                }
            }
            for _ in 0..self.runs {
                for (i, subject) in subjects.iter().enumerate() {
                    let loads =
                        runtime.block_on(cold_then_warm(subject, link)).with_context(|| {
                            format!("{} page, {} link", subject.label, link.label())
                        })?;
                    for (row, times) in rows[first + 2 * i..].iter_mut().zip(loads) {
                        row.clicked_ms.push(times.clicked_ms);
                        row.first_tick_ms.push(times.first_tick_ms);
                    }
                }
            }
        }
        for row in &rows {
            let (median, low, high) = median_and_range(&row.first_tick_ms);
            eprintln!(
                "wstime-bench: {} page, {} link, {}: first tick after {median:.0} ms \
                 ({low:.0}–{high:.0})",
                row.page, row.link, row.cache
            );
        }
        Ok(PageReport {
            date: crate::machine::date(),
            browser: crate::machine::browser(),
            runs: self.runs,
            rows,
        })
    }
}

/// A fresh Chromium on `link`: `subject` loaded cold, then again warm.
async fn cold_then_warm(subject: &Subject, link: Link) -> anyhow::Result<[Times; 2]> {
    let chromium = Chromium::start().await?;
    let loads = async {
        if let Some(conditions) = link.conditions() {
            chromium.devtools("Network.enable", json!({})).await?;
            chromium.devtools("Network.emulateNetworkConditions", conditions).await?;
        }
        let source = subject.watcher();
        chromium
            .devtools("Page.addScriptToEvaluateOnNewDocument", json!({ "source": source }))
            .await?;
        let cold = load(&chromium, subject).await.context("the cold load")?;
        goto(&chromium, "about:blank").await?;
        let warm = load(&chromium, subject).await.context("the warm load")?;
        anyhow::Ok([cold, warm])
    }
    .await;
    let closed = chromium.close().await;
    let loads = loads?;
    closed?;
    Ok(loads)
}

/// Navigates to `subject` and waits until its watcher has seen the first tick.
async fn load(chromium: &Chromium, subject: &Subject) -> anyhow::Result<Times> {
    goto(chromium, &subject.url).await?;
    let deadline = Instant::now() + LOAD_LIMIT;
    let read_times = format!("return {TIMES} || null;");
    loop {
        let read = chromium.client().execute(&read_times, Vec::new());
        let seen = tokio::time::timeout(LOAD_LIMIT, read).await.context("no answer in time")??;
        if let Ok(times) = serde_json::from_value::<Times>(seen.clone()) {
            return Ok(times);
        }
        if Instant::now() >= deadline {
            let log = format!(
                "return (document.querySelector({}) || {{}}).textContent;",
                js_string(subject.log)
            );
            let shown = chromium.client().execute(&log, Vec::new()).await.unwrap_or_default();
            bail!(
                "no tick in {}'s {} within {LOAD_LIMIT:?} (the watcher saw {seen}); the log shows: {shown}",
                subject.url,
                subject.log
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Navigates and waits for the load event, within [`LOAD_LIMIT`].
async fn goto(chromium: &Chromium, url: &str) -> anyhow::Result<()> {
    tokio::time::timeout(LOAD_LIMIT, chromium.client().goto(url))
        .await
        .with_context(|| format!("{url} did not load within {LOAD_LIMIT:?}"))?
        .with_context(|| format!("load {url}"))
}
