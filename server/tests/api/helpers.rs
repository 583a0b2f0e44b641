//! Test helpers: the real `wstime-server` binary on a free port, and WebSocket clients.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use clap::{CommandFactory as _, FromArgMatches as _};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::{
    tungstenite::{self, protocol::frame::coding::CloseCode, Message},
    MaybeTlsStream, WebSocketStream,
};
use wstime_cluster::{Instance, InstanceSpec};
use wstime_server::{
    shutdown::{Signal, Stopped},
    Application, Config,
};

/// The bound on any single network wait: generous, so a slow machine passes, yet a hang
/// fails the test instead of stalling the suite.
pub const NETWORK_TIMEOUT: Duration = Duration::from_secs(10);

/// Awaits `future`, failing the test if it takes longer than `NETWORK_TIMEOUT`.
pub async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(NETWORK_TIMEOUT, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {NETWORK_TIMEOUT:?} waiting for {what}"),
    }
}

/// A hashed wasm file in [`fake_dist`], as trunk names them, with a `.br` and a `.gz` copy.
pub const HASHED_WASM: &str = "wstime-frontend-0123456789abcdef_bg.wasm";
/// A hashed script in [`fake_dist`] with a `.gz` copy only: the brotli copy is missing.
pub const HASHED_JS: &str = "wstime-frontend-0123456789abcdef.js";

/// A file in [`fake_dist`] larger than a TLS write (64 KiB) and its records.
pub const LARGE_FILE: &str = "large.bin";

/// [`LARGE_FILE`]'s bytes: 300 KB that differ from one position to the next.
pub fn large_file() -> Vec<u8> {
    (0..300_000u32).map(|i| (i % 251) as u8).collect()
}

/// A page directory like trunk's output: `index.html`, a wasm file with an unhashed name,
/// and [`HASHED_WASM`] and [`HASHED_JS`] with the precompressed copies the build leaves
/// (each file's bytes are [`fake_file`]'s, so a test can tell which one it was sent).
pub fn fake_dist(dir: &Path) {
    let filler = "<p>wstime test page</p>\n".repeat(200);
    std::fs::write(dir.join("index.html"), format!("<!doctype html><title>wstime</title>{filler}"))
        .expect("write index.html");
    std::fs::write(dir.join("wstime-frontend_bg.wasm"), b"\0asm\x01\0\0\0".repeat(512))
        .expect("write the wasm file");
    std::fs::write(dir.join(LARGE_FILE), large_file()).expect("write the large file");
    let copies =
        [format!("{HASHED_WASM}.br"), format!("{HASHED_WASM}.gz"), format!("{HASHED_JS}.gz")];
    for name in [HASHED_WASM, HASHED_JS].into_iter().chain(copies.iter().map(String::as_str)) {
        std::fs::write(dir.join(name), fake_file(name)).expect("write a hashed asset");
    }
}

/// What [`fake_dist`] writes in the file `name`: different for every file.
pub fn fake_file(name: &str) -> Vec<u8> {
    format!("the bytes of {name}\n").repeat(40).into_bytes()
}

/// Beside the page directory of a [`TestServer`] (outside it), a file no request may reach.
pub const OUTSIDE_THE_PAGE: &str = "outside-the-page.txt";

/// Runs the binary with `env`, expecting it to stop by itself, and returns (exit code,
/// stderr). One that is still running after `NETWORK_TIMEOUT` is killed and fails the test.
pub fn run_failing(env: &[(&str, &str)]) -> (Option<i32>, String) {
    use std::{io::Read as _, process::Stdio};
    let dist = tempfile::tempdir().unwrap();
    fake_dist(dist.path());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_wstime-server"))
        .env_clear()
        .env("BIND", "127.0.0.1")
        .env("STATIC_DIR", dist.path())
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run wstime-server");
    let deadline = Instant::now() + NETWORK_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for wstime-server") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let names: Vec<&str> = env.iter().map(|(name, _)| *name).collect();
            panic!("wstime-server was still running after {NETWORK_TIMEOUT:?} with {names:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child.stderr.take().expect("piped").read_to_string(&mut stderr).expect("read stderr");
    (status.code(), stderr)
}

/// Checks that `stderr` is one line mentioning `needle`, and no panic.
pub fn assert_one_line_error(stderr: &str, needle: &str) {
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got {stderr:?}");
    assert!(lines[0].contains(needle), "{stderr:?} should mention {needle:?}");
    assert!(!stderr.contains("panicked"), "{stderr:?}");
}

/// A running wstime instance on a free loopback port: in this process by default (the
/// library's `Application`, as zero2prod's `spawn_app` runs it), or, for what only a
/// process has (its logs, real signals, its exit code, `faketime`), the real binary.
pub struct TestServer {
    pub port: u16,
    pub name: String,
    runner: Runner,
    _dist: tempfile::TempDir,
}

/// How a test server runs.
enum Runner {
    /// On a thread of its own, in its own actix system; stopped through its signal channel.
    InProcess {
        signals: mpsc::Sender<Signal>,
        run: Option<std::thread::JoinHandle<std::io::Result<Stopped>>>,
    },
    /// The `wstime-server` binary, killed by PID when dropped.
    Process(Instance),
}

/// The settings of a test server, by their environment names (`DRAIN_GRACE_SECS`, …).
pub struct TestServerBuilder {
    env: Vec<(String, String)>,
}

impl TestServerBuilder {
    /// Sets a setting, by its environment variable's name.
    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.to_owned(), value.into()));
        self
    }

    /// Starts the server inside this process and waits until it listens.
    pub fn start(self) -> TestServer {
        let dist = page_dir();
        let config = self.config(&page_path(&dist));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let run = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let app = Application::build(config).await.expect("the app builds");
                let (signals, signals_rx) = mpsc::channel(4);
                let _ = ready_tx.send((app.port(), app.name().to_owned(), signals));
                app.run_until(signals_rx).await
            })
        });
        let (port, name, signals) =
            ready_rx.recv_timeout(NETWORK_TIMEOUT).expect("the app starts listening");
        let runner = Runner::InProcess { signals, run: Some(run) };
        TestServer { port, name, runner, _dist: dist }
    }

    /// Starts the real binary, on a free loopback port, and waits until it listens.
    pub fn start_process(self) -> TestServer {
        let dist = page_dir();
        let spec = InstanceSpec {
            binary: env!("CARGO_BIN_EXE_wstime-server").into(),
            static_dir: page_path(&dist),
            env: self.env,
            echo: false,
        };
        let instance = spec.start("wstime-server", 0, &[]).expect("start wstime-server");
        TestServer {
            port: instance.port,
            name: instance.name.clone(),
            runner: Runner::Process(instance),
            _dist: dist,
        }
    }

    /// The configuration these settings make, as the binary would parse it, but from the
    /// settings alone: nothing in the test's own environment leaks in.
    fn config(&self, static_dir: &Path) -> Config {
        let mut command = Config::command().mut_args(|arg| arg.env(None::<&str>));
        let mut args =
            vec!["wstime-server".to_owned(), "--bind=127.0.0.1".into(), "--port=0".into()];
        args.push(format!("--static-dir={}", static_dir.display()));
        for (key, value) in &self.env {
            let arg = Config::command()
                .get_arguments()
                .find(|arg| arg.get_env().is_some_and(|env| env == key.as_str()))
                .and_then(|arg| arg.get_long().map(str::to_owned));
            match arg {
                Some(long) => args.push(format!("--{long}={value}")),
                None => assert_eq!(key, "RUST_LOG", "{key} is not a setting"),
            }
        }
        let matches = command.try_get_matches_from_mut(args).expect("valid test settings");
        Config::from_arg_matches(&matches).expect("valid test settings").checked().expect("valid")
    }
}

impl Drop for TestServer {
    /// An app in this process is stopped at once (two signals: no drain), so tests do not
    /// leave servers running behind them; a process is killed by its `Instance`.
    fn drop(&mut self) {
        if let Runner::InProcess { signals, run } = &mut self.runner {
            let _ = signals.try_send(Signal::Terminate);
            let _ = signals.try_send(Signal::Terminate);
            if let Some(run) = run.take() {
                let _ = run.join();
            }
        }
    }
}

/// A directory holding a page directory like trunk's output ([`page_path`]) and
/// [`OUTSIDE_THE_PAGE`] beside it, removed when dropped.
fn page_dir() -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("temporary page directory");
    std::fs::write(root.path().join(OUTSIDE_THE_PAGE), "not part of the page").expect("write");
    std::fs::create_dir(page_path(&root)).expect("create the page directory");
    fake_dist(&page_path(&root));
    root
}

/// The page directory in a [`page_dir`].
fn page_path(root: &tempfile::TempDir) -> std::path::PathBuf {
    root.path().join("dist")
}

impl TestServer {
    /// A server with a random name; add settings with [`TestServerBuilder::env`].
    /// Rebalancing is off unless a test turns it on: these tests connect to instances
    /// directly, not through a balancer, so a moved client would only come back to the
    /// instance it left (the rebalancing tests run HAProxy).
    pub fn builder() -> TestServerBuilder {
        let env = [("RUST_LOG", "info"), ("REBALANCE", "off")];
        TestServerBuilder { env: env.map(|(k, v)| (k.to_owned(), v.to_owned())).to_vec() }
    }

    /// A default server named `name`, in this process.
    pub fn start(name: &str) -> Self {
        Self::builder().env("SERVER_NAME", name).start()
    }

    /// The binary's process; for what only a process has.
    fn process(&mut self) -> &mut Instance {
        match &mut self.runner {
            Runner::Process(instance) => instance,
            Runner::InProcess { .. } => panic!("this test needs `start_process()`"),
        }
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn ws_url(&self, path_and_query: &str) -> String {
        format!("ws://127.0.0.1:{}{path_and_query}", self.port)
    }

    /// Waits for a log line containing `needle` and returns it (a process only).
    pub fn wait_for_log(&mut self, needle: &str) -> String {
        self.process().process.wait_for_line(needle, NETWORK_TIMEOUT).expect("the log line")
    }

    /// Waits for a log line that `matches` (described by `what`) and returns it.
    pub fn wait_for_log_where(&mut self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        self.process()
            .process
            .wait_for_line_where(what, matches, NETWORK_TIMEOUT)
            .expect("the log line")
    }

    /// The health check's JSON form.
    pub async fn health(&self) -> serde_json::Value {
        let client = awc::Client::default();
        let mut response = within(
            "the health check",
            client
                .get(self.http_url("/healthcheck"))
                .insert_header(("Accept", "application/json"))
                .send(),
        )
        .await
        .expect("health request");
        within("the health body", response.json()).await.expect("health JSON")
    }

    /// The plain health check, as a load balancer sees it: (status, body).
    pub async fn plain_health(&self) -> (u16, String) {
        let request = awc::Client::default().get(self.http_url("/healthcheck"));
        let mut response =
            within("the health check", request.send()).await.expect("health request");
        let body = within("the health body", response.body()).await.expect("health body");
        (response.status().as_u16(), String::from_utf8_lossy(&body).into_owned())
    }

    /// The number of WebSockets the server says are open.
    pub async fn live_connections(&self) -> u64 {
        self.health().await["connections"].as_u64().expect("connections is a number")
    }

    /// Sends `signal` ("TERM", "INT"; a process also takes "KILL", "STOP", …).
    pub fn signal(&mut self, signal: &str) {
        match &mut self.runner {
            Runner::Process(instance) => instance.process.signal(signal).expect("signal it"),
            Runner::InProcess { signals, .. } => {
                let signal = match signal {
                    "TERM" => Signal::Terminate,
                    "INT" => Signal::Interrupt,
                    other => panic!("SIG{other} needs `start_process()`"),
                };
                signals.try_send(signal).expect("the app hears its signals");
            }
        }
    }

    /// Waits, within `limit`, for the server to stop; returns its exit code (for an app in
    /// this process, the code its binary would exit with).
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        match &mut self.runner {
            Runner::Process(instance) => {
                instance.process.wait_exit(limit).expect("the server exits").code()
            }
            Runner::InProcess { run, .. } => {
                let deadline = Instant::now() + limit;
                let run = run.take().expect("waited for once");
                while !run.is_finished() {
                    assert!(Instant::now() < deadline, "still running after {limit:?}");
                    std::thread::sleep(Duration::from_millis(20));
                }
                match run.join().expect("the app's thread").expect("the app runs") {
                    Stopped::Drained => Some(0),
                    Stopped::Forced(signal) => Some(signal.exit_code().into()),
                }
            }
        }
    }

    /// Opens `n` WebSockets for the ids `<prefix>-0`… and reads each one's first tick.
    pub async fn open_ticking(&self, prefix: &str, n: usize) -> Vec<Client> {
        let mut clients = Vec::new();
        for i in 0..n {
            let mut client = self.connect(&format!("/?id={prefix}-{i}")).await;
            client.next_tick().await;
            clients.push(client);
        }
        clients
    }

    /// Opens a WebSocket to `path_and_query`.
    pub async fn connect(&self, path_and_query: &str) -> Client {
        let (socket, _) = within(
            "the WebSocket handshake",
            tokio_tungstenite::connect_async(self.ws_url(path_and_query)),
        )
        .await
        .expect("WebSocket handshake");
        Client { socket }
    }
}

/// Polls `condition` every 50 ms until it holds, failing after `NETWORK_TIMEOUT`.
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + NETWORK_TIMEOUT;
    while !condition().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {NETWORK_TIMEOUT:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A WebSocket client under test.
pub struct Client {
    pub socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// What a client saw next, ignoring control frames.
#[derive(Debug, PartialEq)]
pub enum Event {
    Text(String),
    Closed(Option<u16>),
}

impl Client {
    /// The next text frame or the close, whichever comes first.
    pub async fn next_event(&mut self) -> Event {
        loop {
            match within("a frame from the server", self.socket.next()).await {
                Some(Ok(Message::Text(text))) => return Event::Text(text.to_string()),
                Some(Ok(Message::Close(frame))) => {
                    return Event::Closed(frame.map(|f| u16::from(f.code)))
                }
                Some(Ok(_)) => continue,
                None | Some(Err(_)) => return Event::Closed(None),
            }
        }
    }

    /// The next tick, parsed; panics on anything else.
    pub async fn next_tick(&mut self) -> (String, u64) {
        match self.next_event().await {
            Event::Text(text) => {
                let tick = wstime_protocol::Tick::parse(&text)
                    .unwrap_or_else(|| panic!("not a tick: {text:?}"));
                (tick.server.to_owned(), tick.seconds)
            }
            other => panic!("expected a tick, got {other:?}"),
        }
    }

    pub async fn send(&mut self, message: Message) {
        within("a send", self.socket.send(message)).await.expect("send to the server");
    }

    /// Waits for the server's close frame and returns its code.
    pub async fn expect_close(&mut self) -> Option<u16> {
        loop {
            if let Event::Closed(code) = self.next_event().await {
                return code;
            }
        }
    }
}

/// `CloseCode` as its number, for assertions.
pub fn code(code: CloseCode) -> u16 {
    u16::from(code)
}

/// An HTTP response read off a raw socket.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// The status line and headers, as sent.
    pub head: String,
    /// What followed the head in the first read (for a 101: the first frames).
    pub rest: Vec<u8>,
}

impl RawResponse {
    /// The value of header `name` (matched without regard to case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    /// The body, as text.
    pub fn body(&self) -> String {
        String::from_utf8_lossy(&self.rest).into_owned()
    }
}

/// Sends `request` (bytes, as written) on a new connection and reads the response's head
/// and whatever came with it; returns the stream too, for tests that go on with it.
pub async fn raw_exchange(port: u16, request: &[u8]) -> (RawResponse, TcpStream) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream =
        within("a TCP connect", TcpStream::connect(("127.0.0.1", port))).await.expect("connect");
    within("the request", stream.write_all(request)).await.expect("write");
    let mut received = Vec::new();
    let mut buf = vec![0u8; 4096];
    let head_end = loop {
        let n = within("the response", stream.read(&mut buf)).await.expect("read");
        assert!(n > 0, "the server closed without a response: {received:?}");
        received.extend_from_slice(&buf[..n]);
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
    };
    let head = String::from_utf8_lossy(&received[..head_end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let rest = received[head_end + 4..].to_vec();
    (RawResponse { status, head, rest }, stream)
}

/// A WebSocket handshake for `path_and_query` with `headers` (one `Name: value` per line,
/// each ending in CRLF) after the request line and `Host`.
pub fn handshake_request(port: u16, path_and_query: &str, headers: &str) -> String {
    format!("GET {path_and_query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{headers}\r\n")
}

/// The headers of a well-formed handshake, with `Upgrade: <upgrade_header>`.
pub fn good_handshake_headers(upgrade_header: &str) -> String {
    format!(
        "Connection: Upgrade\r\nUpgrade: {upgrade_header}\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: {}\r\n",
        tungstenite::handshake::client::generate_key()
    )
}

/// Sends a raw HTTP upgrade request and returns the status and body.
pub async fn raw_upgrade(port: u16, path_and_query: &str, upgrade_header: &str) -> (u16, String) {
    let request = handshake_request(port, path_and_query, &good_handshake_headers(upgrade_header));
    let (response, _) = raw_exchange(port, request.as_bytes()).await;
    (response.status, response.body())
}
