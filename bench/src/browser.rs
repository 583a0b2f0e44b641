//! Headless Chromium under chromedriver (Debian's), driven over WebDriver with fantoccini as
//! the server's browser tests drive it, and the DevTools protocol commands the page row
//! needs, sent through chromedriver's `goog:cdp` execute command.

use std::{process::Command, time::Duration};

use anyhow::Context as _;
use fantoccini::{wd::WebDriverCompatibleCommand, Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::Value as Json;
use wstime_cluster::{free_port, Supervised};

/// How long chromedriver may take to start, and Chromium to answer a command.
pub const BROWSER_LIMIT: Duration = Duration::from_secs(30);

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Debian's Chromium.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// A Chromium with a profile of its own (nothing cached, nothing stored), stopped and its
/// files removed when dropped.
pub struct Chromium {
    // Fields drop in order: the session, then the processes, then their directory.
    client: Client,
    _driver: Supervised,
    /// Chromium's profile and chromedriver's files. Both leave a profile (about 50 MB) in
    /// `$TMPDIR` when they are killed, so `$TMPDIR` is one we own.
    _files: tempfile::TempDir,
}

impl Chromium {
    /// Starts chromedriver, then a headless Chromium session through it. Chromium as root
    /// needs `--no-sandbox`; the `--disable-*` flags keep its own background traffic (sync,
    /// component updates) off the link being measured.
    pub async fn start() -> anyhow::Result<Self> {
        let files = tempfile::tempdir().context("a temporary directory for Chromium")?;
        let port = free_port()?;
        let mut command = Command::new(CHROMEDRIVER);
        command.arg(format!("--port={port}")).env("TMPDIR", files.path());
        let mut driver = Supervised::spawn("chromedriver", &mut command, false)
            .with_context(|| format!("start {CHROMEDRIVER} (Debian's chromium-driver)"))?;
        // chromedriver prints this within a few milliseconds: waiting on the runtime's
        // thread holds up nothing else.
        driver.wait_for_line("started successfully", BROWSER_LIMIT)?;
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=900,720",
        ];
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({ "binary": CHROMIUM, "args": args }),
        );
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(capabilities);
        let driver_url = format!("http://127.0.0.1:{port}");
        let client = tokio::time::timeout(BROWSER_LIMIT, builder.connect(&driver_url))
            .await
            .context("no WebDriver session in time")?
            .context("a WebDriver session with Chromium")?;
        Ok(Self { client, _driver: driver, _files: files })
    }

    /// The WebDriver session.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Sends one DevTools protocol command (`Network.emulateNetworkConditions`, …) to the
    /// page's target and returns its result.
    pub async fn devtools(&self, method: &'static str, params: Json) -> anyhow::Result<Json> {
        let command = self.client.issue_cmd(DevTools { method, params });
        tokio::time::timeout(BROWSER_LIMIT, command)
            .await
            .with_context(|| format!("no answer to {method} in time"))?
            .with_context(|| format!("the DevTools command {method}"))
    }

    /// Ends the session; dropping stops the processes.
    pub async fn close(self) -> anyhow::Result<()> {
        let client = self.client.clone();
        tokio::time::timeout(BROWSER_LIMIT, client.close())
            .await
            .context("Chromium did not close in time")?
            .context("close the WebDriver session")
    }
}

/// chromedriver's `POST /session/{id}/goog/cdp/execute`: one DevTools command on the
/// session's page.
#[derive(Debug)]
struct DevTools {
    method: &'static str,
    params: Json,
}

impl WebDriverCompatibleCommand for DevTools {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!("session/{}/goog/cdp/execute", session_id.unwrap_or_default()))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        let body = serde_json::json!({ "cmd": self.method, "params": self.params });
        (http::Method::POST, Some(body.to_string()))
    }
}
