//! The clients of a scenario: the load generator (`wstime-loadgen --failover`, which behaves
//! like the page) run in the clients' host, and a probe socket opened from a host to read
//! one tick.

use std::{
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _};
use wstime_bench::{
    generators::{self, PER_GENERATOR},
    results::{FailoverResult, SteadyResult},
};
use wstime_cluster::{lab::Host, Supervised};
use wstime_protocol::Tick;

use crate::deployment::Deployment;

/// How long the generator may take to open its connections.
const READY_LIMIT: Duration = Duration::from_secs(120);
/// How long a probe may take to connect and read its first tick.
const PROBE_LIMIT: Duration = Duration::from_secs(5);

/// A load generator running in the clients' host, every client following the page's
/// retry policy.
pub struct Riders {
    process: Supervised,
    /// When it was started: its `ticks_per_second` count from here.
    pub started: Instant,
    hold: Duration,
}

impl Riders {
    /// Starts `clients` clients (ids `<prefix>-<n>`) against `url` from the clients' host,
    /// held `hold` after they are open, and waits until they are.
    pub fn start(
        deployment: &Deployment,
        url: &str,
        clients: usize,
        prefix: &str,
        hold: Duration,
    ) -> anyhow::Result<Self> {
        Self::start_from(deployment, &deployment.clients, url, clients, prefix, hold)
    }

    /// Like [`Self::start`], from the host `from`: a second group of clients whose link can
    /// be slowed or cut apart from the others'.
    pub fn start_from(
        deployment: &Deployment,
        from: &Host,
        url: &str,
        clients: usize,
        prefix: &str,
        hold: Duration,
    ) -> anyhow::Result<Self> {
        if clients > PER_GENERATOR {
            bail!("one generator holds at most {PER_GENERATOR} clients, not {clients}");
        }
        let mut command = from.command(&deployment.binaries.loadgen);
        command
            .args(["--url", url, "--connections", &clients.to_string(), "--id-prefix", prefix])
            .args(["--source-ips", &from.address().to_string()])
            .args(["--failover", "--warmup-secs", "0", "--linger-secs", "0"])
            .args(["--hold-secs", &hold.as_secs_f64().to_string()]);
        let started = Instant::now();
        let mut process = Supervised::spawn("loadgen", &mut command, false)?;
        process.wait_for_line("READY ", READY_LIMIT)?;
        Ok(Self { process, started, hold })
    }

    /// Seconds since the generator started: where on its `ticks_per_second` we are.
    pub fn now(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Waits for the run's end and returns what the clients saw.
    pub fn finish(mut self) -> anyhow::Result<FailoverResult> {
        let limit = self.hold + Duration::from_secs(60);
        generators::failover_results(std::slice::from_mut(&mut self.process), limit)
    }
}

/// Opens `connections` sockets to `url` from the clients' host at once and returns how long
/// the slowest took to open (handshake answered), and how many failed.
pub fn open_burst(
    deployment: &Deployment,
    url: &str,
    connections: usize,
    prefix: &str,
) -> anyhow::Result<(Duration, usize)> {
    let mut command = deployment.clients.command(&deployment.binaries.loadgen);
    command
        .args(["--url", url, "--connections", &connections.to_string(), "--id-prefix", prefix])
        .args(["--source-ips", &deployment.clients.address().to_string()])
        .args(["--warmup-secs", "0", "--hold-secs", "0", "--linger-secs", "0"]);
    let mut process = Supervised::spawn("loadgen-burst", &mut command, false)?;
    let ready = process.wait_for_line("READY ", READY_LIMIT)?;
    let secs: f64 = ready.trim_start_matches("READY ").trim().parse().context("READY's seconds")?;
    let result: SteadyResult = generators::result(&mut process, Duration::from_secs(30))?;
    Ok((Duration::from_secs_f64(secs), result.failed_connects))
}

/// Opens one WebSocket from `from` to the instance at `address` with client id `id` and
/// returns the count of its first tick.
pub fn first_count(from: &Host, address: SocketAddr, id: &str) -> anyhow::Result<u64> {
    let url = format!("ws://{address}/?id={id}");
    from.enter(move || {
        let stream = TcpStream::connect_timeout(&address, PROBE_LIMIT)?;
        stream.set_read_timeout(Some(PROBE_LIMIT))?;
        let (mut socket, _) =
            tungstenite::client(url.as_str(), stream).with_context(|| format!("opening {url}"))?;
        loop {
            let message = socket.read().with_context(|| format!("a tick from {url}"))?;
            if let tungstenite::Message::Text(text) = message {
                if let Some(tick) = Tick::parse(&text) {
                    let _ = socket.close(None);
                    return anyhow::Ok(tick.seconds);
                }
            }
        }
    })?
}
