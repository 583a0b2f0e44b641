//! End to end in a real browser: headless Chromium, driven over WebDriver (fantoccini and
//! Debian's chromedriver), loads the page through a real HAProxy in front of three real
//! instances sharing a real Redis, connects, and rides through the loss of the instance
//! serving it: first a crash (SIGKILL), then a graceful stop (SIGTERM); over plain HTTP, and
//! over HTTPS and WSS with a certificate made at start, which this browser alone trusts.
//! And the origin rule: a page connects to the instance that served it, and a page from
//! another origin cannot. And that the page arrives in the files the build precompressed.
//! And whether a person without a mouse or without sight can use it: axe-core finds no
//! violation in any of its states, and the keyboard alone connects and disconnects.
//!
//! Needs the built page (`trunk build --release`, which `make test` runs first) and axe-core
//! (`make test-tools`, which `make test` runs too).

use std::{
    path::PathBuf,
    process::Command,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use fantoccini::{
    actions::{InputSource, KeyAction, KeyActions},
    key::Key,
    Client, ClientBuilder, Locator,
};
use hyper_util::client::legacy::connect::HttpConnector;
use wstime_cluster::{
    free_port, paths::workspace, Cluster, ClusterSpec, Discovery, HaProxySpec, InstanceSpec,
    RedisSetup, Supervised,
};
use wstime_protocol::Tick;

/// A generous bound on anything the page must do.
const LIMIT: Duration = Duration::from_secs(30);

/// Chromium and its chromedriver, stopped and their files removed when dropped.
struct Browser {
    // Fields drop in order: the processes stop before their directory goes.
    _driver: Supervised,
    /// Their temporary directory. Both leave a profile (about 50 MB) and a socket directory
    /// in `$TMPDIR` when they are killed, so `$TMPDIR` is one we own.
    _files: tempfile::TempDir,
}

/// Chromium under chromedriver, with the flags a root sandbox needs and `extra` ones.
async fn browser(extra: &[String]) -> (Browser, Client) {
    let files = tempfile::tempdir().expect("a temporary directory for Chromium");
    let port = free_port().expect("a port for chromedriver");
    let mut command = Command::new("/usr/bin/chromedriver");
    command.arg(format!("--port={port}")).env("TMPDIR", files.path());
    let mut driver =
        Supervised::spawn("chromedriver", &mut command, false).expect("start chromedriver");
    driver.wait_for_line("started successfully", LIMIT).expect("chromedriver starts");
    let mut args: Vec<String> = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=900,720",
    ]
    .map(str::to_owned)
    .to_vec();
    args.extend_from_slice(extra);
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({ "binary": "/usr/bin/chromium", "args": args }),
    );
    let client = ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a WebDriver session");
    (Browser { _driver: driver, _files: files }, client)
}

/// The page, seen through WebDriver.
struct Page {
    client: Client,
}

impl Page {
    async fn text(&self, id: &str) -> String {
        let element = self.client.find(Locator::Id(id)).await.expect("the element");
        element.text().await.expect("its text")
    }

    /// The newest tick in the log, if any.
    async fn last_tick(&self) -> Option<(String, u64)> {
        let log = self.text("log").await;
        log.lines().rev().find_map(Tick::parse).map(|t| (t.server.to_owned(), t.seconds))
    }

    /// The cluster panel's rows: (data-instance, whether it is marked current, its text).
    async fn cluster_rows(&self) -> Vec<(String, bool, String)> {
        let rows = self.client.find_all(Locator::Css("#cluster tr[data-instance]")).await;
        let mut seen = Vec::new();
        for row in rows.expect("the panel's rows") {
            let name = row.attr("data-instance").await.ok().flatten().unwrap_or_default();
            let class = row.attr("class").await.ok().flatten().unwrap_or_default();
            let text = row.text().await.unwrap_or_default();
            seen.push((name, class.split_whitespace().any(|c| c == "current"), text));
        }
        seen
    }

    /// Waits until the cluster panel lists exactly `names` (in any order) with `current`'s
    /// row, and only it, marked as this tab's.
    async fn wait_for_panel(&self, names: &[&str], current: &str) {
        let deadline = Instant::now() + LIMIT;
        loop {
            let rows = self.cluster_rows().await;
            let mut listed: Vec<&str> = rows.iter().map(|(name, _, _)| name.as_str()).collect();
            listed.sort_unstable();
            let mut wanted = names.to_vec();
            wanted.sort_unstable();
            let marked: Vec<&(String, bool, String)> = rows.iter().filter(|r| r.1).collect();
            if listed == wanted
                && marked.len() == 1
                && marked[0].0 == current
                && marked[0].2.contains("(you)")
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the panel never listed {names:?} with {current} marked: {rows:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until `#status` reads `wanted`.
    async fn wait_for_status(&self, wanted: &str) {
        let deadline = Instant::now() + LIMIT;
        loop {
            let status = self.text("status").await;
            if status == wanted {
                return;
            }
            assert!(Instant::now() < deadline, "the status never read {wanted:?}: {status:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Presses `keys` in turn on whatever has the focus, each down and up, as a person does.
    async fn press(&self, keys: impl IntoIterator<Item = char>) {
        let keyboard =
            keys.into_iter().fold(KeyActions::new("keyboard".into()), |keyboard, key| {
                keyboard.then(KeyAction::Down { value: key }).then(KeyAction::Up { value: key })
            });
        self.client.perform_actions(keyboard).await.expect("press the keys");
    }

    /// Selects everything in the focused text box (Ctrl+A).
    async fn select_all(&self) {
        let control = Key::Control.into();
        let keyboard = KeyActions::new("keyboard".into())
            .then(KeyAction::Down { value: control })
            .then(KeyAction::Down { value: 'a' })
            .then(KeyAction::Up { value: 'a' })
            .then(KeyAction::Up { value: control });
        self.client.perform_actions(keyboard).await.expect("select all");
    }

    /// The id of the element that has the focus, and its outline (style and width) as drawn.
    async fn focused(&self) -> (String, String) {
        let answer = self
            .client
            .execute(
                "const focused = document.activeElement;
                 const style = getComputedStyle(focused);
                 return [focused.id, style.outlineStyle + ' ' + style.outlineWidth];",
                Vec::new(),
            )
            .await
            .expect("the focused element");
        let pair: (String, String) = serde_json::from_value(answer).expect("an id and an outline");
        pair
    }

    /// Runs axe-core (`axe` is its script) over the page as it is now and fails, listing
    /// each violation, its impact, what to do and the nodes at fault, if it finds any.
    async fn assert_accessible(&self, state: &str, axe: &str) {
        let injected = self.client.execute("return typeof axe !== 'undefined';", Vec::new()).await;
        if injected.expect("ask for axe-core") != serde_json::Value::Bool(true) {
            self.client.execute(axe, Vec::new()).await.expect("inject axe-core");
        }
        let answer = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document).then(
                   (results) => done(results.violations.map((violation) => ({
                     id: violation.id,
                     impact: violation.impact,
                     help: violation.help,
                     nodes: violation.nodes.map((node) => node.target.join(' ')),
                   }))),
                   (error) => done({ error: String(error) }));",
                Vec::new(),
            )
            .await
            .expect("run axe-core");
        let Some(violations) = answer.as_array() else {
            panic!("axe-core did not run on the page {state}: {answer}");
        };
        let report: Vec<String> = violations
            .iter()
            .map(|violation| {
                format!(
                    "{} ({}): {} at {}",
                    violation["id"].as_str().unwrap_or("?"),
                    violation["impact"].as_str().unwrap_or("?"),
                    violation["help"].as_str().unwrap_or("?"),
                    violation["nodes"],
                )
            })
            .collect();
        assert!(
            report.is_empty(),
            "axe-core finds {} violation(s) on the page {state}:\n{}",
            report.len(),
            report.join("\n")
        );
    }

    /// Waits until the page shows a tick of at least `count`.
    async fn wait_for_count(&self, count: u64) {
        let deadline = Instant::now() + LIMIT;
        while self.last_tick().await.is_none_or(|(_, seconds)| seconds < count) {
            assert!(Instant::now() < deadline, "no ticks: {:?}", self.text("log").await);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Asserts that the count went on across a switch of server; on failure the message
    /// carries the page's whole log, the only record of what the page saw.
    async fn assert_went_on(&self, after: &str, lost_at: u64, resumed_at: u64) {
        if resumed_at <= lost_at {
            let log = self.text("log").await;
            panic!(
                "after {after} the count did not go on: {resumed_at} after {lost_at}; the log:\n{log}"
            );
        }
    }

    /// Polls until a tick arrives from a server other than `from`; returns it, the last
    /// tick from `from`, and how long the page went without a tick in between. `before` is
    /// the last tick seen before the server was signalled: a page that moves faster than
    /// the first poll must not have its new server's tick taken for the old one's last.
    async fn wait_for_another_server(
        &self,
        from: &str,
        before: (String, u64),
    ) -> ((String, u64), (String, u64), Duration) {
        let deadline = Instant::now() + LIMIT;
        let mut last = before;
        let mut last_seen = Instant::now();
        loop {
            assert!(Instant::now() < deadline, "no tick from another server within {LIMIT:?}");
            let tick = self.last_tick().await;
            match tick {
                Some(tick) if tick.0 != from => return (tick, last, last_seen.elapsed()),
                Some(tick) if tick != last => {
                    last = tick;
                    last_seen = Instant::now();
                }
                _ => {}
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Signals the instance called `name`; returns its index.
async fn signal(cluster: &Arc<Mutex<Cluster>>, name: &str, signal: &'static str) -> usize {
    let cluster = Arc::clone(cluster);
    let name = name.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut cluster = cluster.lock().unwrap();
        let index = cluster
            .instances()
            .iter()
            .find(|i| i.name.as_deref() == Some(&name))
            .map(|i| i.index)
            .expect("the instance serving the page");
        cluster.signal(index, signal).expect("signal the instance");
        index
    })
    .await
    .unwrap()
}

/// The built page, checked to be there.
fn dist() -> PathBuf {
    let dist = workspace().join("dist");
    assert!(
        dist.join("index.html").exists(),
        "{} is missing: run `trunk build --release`",
        dist.display()
    );
    dist
}

/// axe-core's script, as `make test-tools` installs it (the version test-tools/package.json
/// pins).
fn axe_core() -> String {
    let path = workspace().join("test-tools/node_modules/axe-core/axe.min.js");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run `make test-tools`", path.display()))
}

/// Starts `instances` instances of the built page's server, with `redis` and `haproxy`.
async fn start(
    instances: usize,
    redis: Option<RedisSetup>,
    haproxy: Option<HaProxySpec>,
) -> Cluster {
    let instance = InstanceSpec {
        binary: env!("CARGO_BIN_EXE_wstime-server").into(),
        static_dir: dist(),
        env: Vec::new(),
        echo: false,
    };
    let spec = ClusterSpec { instance, instances, standby: 0, redis, haproxy, prometheus: None };
    tokio::task::spawn_blocking(move || Cluster::start(spec)).await.unwrap().expect("the cluster")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_rides_through_sigkill_and_sigterm_behind_haproxy() {
    rides_through_failover(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_rides_through_sigkill_and_sigterm_over_https_and_wss() {
    rides_through_failover(true).await;
}

/// Loads the page through HAProxy (over TLS when `tls`), connects, and rides through a
/// SIGKILL and a SIGTERM of the instance serving it.
async fn rides_through_failover(tls: bool) {
    let haproxy = HaProxySpec { tls, ..HaProxySpec::deploy(Discovery::Static) };
    let cluster = start(3, Some(RedisSetup::Single), Some(haproxy)).await;
    let url = cluster.balancer_url().expect("HAProxy's address");
    // Only this browser trusts the certificate, and only its key (not every certificate).
    let trust: Vec<String> = cluster
        .certificate()
        .map(|certificate| {
            format!("--ignore-certificate-errors-spki-list={}", certificate.spki_sha256)
        })
        .into_iter()
        .collect();
    let cluster = Arc::new(Mutex::new(cluster));
    let (_browser, client) = browser(&trust).await;
    let page = Page { client };

    page.client.goto(&url).await.expect("load the page through HAProxy");
    // The page is built by WebAssembly once it loads.
    let address =
        page.client.wait().at_most(LIMIT).for_element(Locator::Id("address")).await.unwrap();
    let expected = url.replacen("http", "ws", 1);
    assert_eq!(address.prop("value").await.unwrap().as_deref(), Some(&*expected));
    page.client.find(Locator::Id("connect")).await.unwrap().click().await.unwrap();
    page.wait_for_count(3).await;
    let status = page.text("status").await;
    let first =
        status.strip_prefix("connected to ").expect("the status names the server").to_owned();
    // The cluster panel, asked of the load balancer: every instance, this tab's marked.
    let names: Vec<String> = {
        let mut cluster = cluster.lock().unwrap();
        cluster.instances().into_iter().filter_map(|i| i.name).collect()
    };
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    page.wait_for_panel(&names, &first).await;

    // A crash: the process dies, its sockets are reset, HAProxy has not noticed yet.
    let before = page.last_tick().await.expect("a tick before the kill");
    signal(&cluster, &first, "KILL").await;
    let ((second, resumed_at), (_, lost_at), kill_gap) =
        page.wait_for_another_server(&first, before).await;
    page.assert_went_on("SIGKILL", lost_at, resumed_at).await;
    assert_eq!(page.text("status").await, format!("connected to {second}"));

    let output = workspace().join("test-output");
    std::fs::create_dir_all(&output).unwrap();
    // The killed instance leaves the panel once its registry entry expires; yours moved.
    let survivors: Vec<&str> = names.iter().copied().filter(|name| *name != first).collect();
    page.wait_for_panel(&survivors, &second).await;
    let name = if tls { "browser-failover-tls" } else { "browser-failover" };
    let screenshot = page.client.screenshot().await.expect("a screenshot");
    std::fs::write(output.join(format!("{name}.png")), screenshot).unwrap();

    // A graceful stop: health turns 503, ticks go on through the grace period, then 1012.
    let before = page.last_tick().await.expect("a tick before the drain");
    let draining = signal(&cluster, &second, "TERM").await;
    let ((third, resumed_at), (_, lost_at), term_gap) =
        page.wait_for_another_server(&second, before).await;
    page.assert_went_on("SIGTERM", lost_at, resumed_at).await;
    assert_ne!(third, second);
    let drained = {
        let cluster = Arc::clone(&cluster);
        tokio::task::spawn_blocking(move || cluster.lock().unwrap().wait_exit(draining))
            .await
            .unwrap()
    };
    assert_eq!(drained.expect("the drained instance").last_exit.as_deref(), Some("exit status: 0"));
    let log = page.text("log").await;
    assert!(log.contains(&format!("resumed on {third} at {resumed_at} seconds")), "{log}");

    eprintln!("{name}: without ticks after SIGKILL: {kill_gap:?}; after SIGTERM: {term_gap:?}");
    std::fs::write(
        output.join(format!("{name}.txt")),
        format!(
            "sigkill_gap_ms={}\nsigterm_gap_ms={}\n",
            kill_gap.as_millis(),
            term_gap.as_millis()
        ),
    )
    .unwrap();
    page.client.close().await.expect("end the WebDriver session");
    cluster.lock().unwrap().stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_connects_to_its_own_instance_and_not_to_another_origins() {
    let mut cluster = start(2, None, None).await;
    let ports: Vec<u16> = cluster.instances().iter().map(|i| i.port).collect();
    let (_browser, client) = browser(&[]).await;
    let page = Page { client };

    // The page served by instance 1 connects to instance 1.
    page.client.goto(&format!("http://127.0.0.1:{}/", ports[0])).await.expect("load the page");
    page.client.wait().at_most(LIMIT).for_element(Locator::Id("address")).await.unwrap();
    page.client.find(Locator::Id("connect")).await.unwrap().click().await.unwrap();
    page.wait_for_count(1).await;
    page.client.find(Locator::Id("connect")).await.unwrap().click().await.unwrap();

    // The same page, pointed at instance 2 (another origin), is refused.
    let address = page.client.find(Locator::Id("address")).await.unwrap();
    address.clear().await.unwrap();
    address.send_keys(&format!("ws://127.0.0.1:{}/", ports[1])).await.unwrap();
    let refused = || async {
        let metrics = wstime_cluster::http::request(
            "GET",
            ports[1],
            "/metrics",
            "text/plain",
            Duration::from_secs(2),
        )
        .expect("instance 2's metrics")
        .body;
        metrics
            .lines()
            .find_map(|line| {
                line.strip_prefix("wstime_upgrades_refused_total{reason=\"origin_not_allowed\"} ")
            })
            .map_or(0.0, |n| n.parse::<f64>().unwrap())
    };
    let before = refused().await;
    page.client.find(Locator::Id("connect")).await.unwrap().click().await.unwrap();
    let deadline = Instant::now() + LIMIT;
    while refused().await <= before {
        assert!(Instant::now() < deadline, "instance 2 never refused the page");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let log = page.text("log").await;
    let after_switch =
        log.rsplit(&format!("Connecting to ws://127.0.0.1:{}/", ports[1])).next().unwrap();
    assert!(
        !after_switch.lines().any(|line| Tick::parse(line).is_some()),
        "no tick from another origin's instance:\n{log}"
    );
    page.client.close().await.expect("end the WebDriver session");
    cluster.stop();
}

/// The page loads from the build's precompressed copies: Chromium receives every hashed
/// asset compressed, in exactly the bytes of its `.br` file (nothing was compressed on
/// the way), and decodes it to the original's size. Resource Timing tells both sizes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_loads_from_its_precompressed_files() {
    let mut cluster = start(1, None, None).await;
    let port = cluster.instances()[0].port;
    let (_browser, client) = browser(&[]).await;
    client.goto(&format!("http://127.0.0.1:{port}/")).await.expect("load the page");
    client.wait().at_most(LIMIT).for_element(Locator::Id("address")).await.unwrap();
    let entries = client
        .execute(
            "return performance.getEntriesByType('resource')
               .map(e => [e.name, e.encodedBodySize, e.decodedBodySize]);",
            Vec::new(),
        )
        .await
        .expect("the page's resource timings");
    let dist = dist();
    let size = |name: &str| std::fs::metadata(dist.join(name)).map(|m| m.len()).ok();
    let mut loaded = Vec::new();
    for entry in entries.as_array().expect("a list of entries") {
        let url = entry[0].as_str().expect("a URL");
        let name = url.rsplit('/').next().expect("a file name");
        if !name.ends_with(".wasm") && !name.ends_with(".js") && !name.ends_with(".css") {
            continue;
        }
        let (encoded, decoded) = (entry[1].as_u64(), entry[2].as_u64());
        let brotli = size(&format!("{name}.br"));
        assert!(brotli.is_some(), "{name} has no brotli copy: was dist/ built by `make dist`?");
        assert_eq!((encoded, decoded), (brotli, size(name)), "{name}: (encoded, decoded) sizes");
        eprintln!("{name}: {} bytes received, {} decoded", entry[1], entry[2]);
        loaded.push(name.to_owned());
    }
    for kind in ["_bg.wasm", ".js", ".css"] {
        assert!(loaded.iter().any(|name| name.ends_with(kind)), "no {kind} among {loaded:?}");
    }
    client.close().await.expect("end the WebDriver session");
    cluster.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axe_core_finds_no_violation_disconnected_connected_and_after_in_either_scheme() {
    let axe = axe_core();
    let haproxy = HaProxySpec::deploy(Discovery::Static);
    let mut cluster = start(3, Some(RedisSetup::Single), Some(haproxy)).await;
    let url = cluster.balancer_url().expect("HAProxy's address");
    let names: Vec<String> = cluster.instances().into_iter().filter_map(|i| i.name).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    // The page has a colour scheme of each kind; Chromium's flag makes it prefer the dark.
    for (scheme, flags) in [("light", Vec::new()), ("dark", vec!["--force-dark-mode".to_owned()])] {
        let (_browser, client) = browser(&flags).await;
        let page = Page { client };
        page.client.goto(&url).await.expect("load the page through HAProxy");
        page.client.wait().at_most(LIMIT).for_element(Locator::Id("address")).await.unwrap();
        let dark = page
            .client
            .execute("return matchMedia('(prefers-color-scheme: dark)').matches;", Vec::new())
            .await
            .expect("ask for the colour scheme");
        assert_eq!(dark, serde_json::Value::Bool(scheme == "dark"), "the {scheme} scheme");
        page.assert_accessible(&format!("freshly loaded ({scheme})"), &axe).await;
        if scheme == "light" {
            assert_beyond_axe(&page).await;
        }

        page.client.find(Locator::Id("connect")).await.unwrap().click().await.unwrap();
        page.wait_for_count(2).await;
        let status = page.text("status").await;
        let serving = status.strip_prefix("connected to ").expect("the status names the server");
        page.wait_for_panel(&names, serving).await;
        page.assert_accessible(&format!("connected, with the cluster panel ({scheme})"), &axe)
            .await;

        page.client.find(Locator::Id("connect")).await.unwrap().click().await.unwrap();
        page.wait_for_status("not connected").await;
        page.assert_accessible(&format!("after a disconnect ({scheme})"), &axe).await;
        page.client.close().await.expect("end the WebDriver session");
    }
    cluster.stop();
}

/// What axe does not check: the status line is a polite live region, so a screen reader
/// says each connect, loss and move; the log (a tick a second) is not one; the address
/// box's label is the `<label>` for it.
async fn assert_beyond_axe(page: &Page) {
    let attribute = |id: &'static str, name: &'static str| async move {
        let element = page.client.find(Locator::Id(id)).await.expect("the element");
        element.attr(name).await.expect("its attribute")
    };
    assert_eq!(attribute("status", "role").await.as_deref(), Some("status"));
    assert_eq!(attribute("status", "aria-live").await.as_deref(), Some("polite"));
    assert_eq!(attribute("log", "aria-live").await, None);
    assert_eq!(attribute("log", "role").await, None);
    let label = page.client.find(Locator::Css("label[for='address']")).await;
    assert_eq!(label.expect("a label for #address").text().await.unwrap(), "Server address");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keyboard_alone_connects_and_disconnects_with_the_focus_in_sight() {
    let mut cluster = start(1, None, None).await;
    let port = cluster.instances()[0].port;
    let (_browser, client) = browser(&[]).await;
    let page = Page { client };
    page.client.goto(&format!("http://127.0.0.1:{port}/")).await.expect("load the page");
    page.client.wait().at_most(LIMIT).for_element(Locator::Id("address")).await.unwrap();
    // The focus ring style.css draws (`:focus-visible`), not the browser's own.
    let ring = "solid 2px".to_owned();

    // From the top of the page, Tab reaches the address box first; type, and Enter submits.
    page.press([Key::Tab.into()]).await;
    assert_eq!(page.focused().await, ("address".to_owned(), ring.clone()));
    page.select_all().await;
    page.press(format!("ws://127.0.0.1:{port}/").chars()).await;
    page.press([Key::Enter.into()]).await;
    page.wait_for_count(1).await;
    assert!(page.text("status").await.starts_with("connected to "));

    // Tab to the button: Space disconnects, Enter connects again.
    page.press([Key::Tab.into()]).await;
    assert_eq!(page.focused().await, ("connect".to_owned(), ring.clone()));
    assert_eq!(page.text("connect").await, "Disconnect");
    page.press([Key::Space.into()]).await;
    page.wait_for_status("not connected").await;
    assert_eq!(page.text("connect").await, "Connect");
    page.press([Key::Enter.into()]).await;
    page.wait_for_count(1).await;

    // And on to the log, which the arrow keys then scroll.
    page.press([Key::Tab.into()]).await;
    assert_eq!(page.focused().await, ("log".to_owned(), ring));
    page.client.close().await.expect("end the WebDriver session");
    cluster.stop();
}
