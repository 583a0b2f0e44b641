//! wstime-loadgen: opens many WebSocket connections to a wstime server (or a load balancer
//! in front of several), holds them, and measures the ticks.
//!
//! It prints `READY <seconds>` once every connection is open (and, with
//! `--start-on-signal`, waits for SIGUSR1 before measuring), then one line
//! `RESULT <json>` at the end ([`SteadyResult`], or [`FailoverResult`] with `--failover`,
//! or [`HerdResult`] with `--herd`).
//! With `--failover` each client behaves like the page: when its connection ends it
//! reconnects with the same id, following the page's retry policy, and the generator
//! records how long it went without ticks and whether its count went on.
//! With `--herd` every client closes its connection at the end of the warm-up and comes
//! back at once ([`herd`]).

mod herd;

use std::{
    io::Write as _,
    net::{Ipv4Addr, SocketAddr},
    ops::Range,
    sync::{Arc, OnceLock},
    time::Duration,
};

use anyhow::{bail, Context as _};
use clap::Parser;
use futures_util::{stream, StreamExt as _};
use tokio::{
    net::{TcpSocket, TcpStream},
    time::{timeout, Instant},
};
use tokio_tungstenite::{tungstenite::Message, Connector, MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;
use wstime_bench::{
    lateness::{TickLog, Window},
    results::{max_into, sum_into, FailoverResult, HerdResult, SteadyResult},
    stats::Summary,
};
use wstime_protocol::{
    retry::{Next, CONNECT_TIMEOUT, DEAD_PEER_TIMEOUT},
    Disconnect, RetryPolicy, Tick,
};

#[derive(Debug, Parser)]
#[command(name = "wstime-loadgen", about)]
struct Args {
    /// The server or load balancer, e.g. ws://127.0.0.1:8080/ (or wss://, with --ca-file)
    #[arg(long)]
    url: String,
    /// For a wss:// URL: the PEM certificate of the CA to trust.
    #[arg(long)]
    ca_file: Option<std::path::PathBuf>,
    /// How many connections to open.
    #[arg(long)]
    connections: usize,
    /// Client ids are <prefix>-<n>.
    #[arg(long, default_value = "load")]
    id_prefix: String,
    /// Loopback addresses to connect from, in turn (spreads the ephemeral ports).
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1")]
    source_ips: Vec<Ipv4Addr>,
    /// Connects in flight at once.
    #[arg(long, default_value_t = 200)]
    concurrency: usize,
    /// Ticks in this many seconds after the last connect are not measured (warm-up).
    #[arg(long, default_value_t = 1.0)]
    warmup_secs: f64,
    /// Start the warm-up only on SIGUSR1, so a driver running several generators can start
    /// every measurement once all of them are connected.
    #[arg(long)]
    start_on_signal: bool,
    /// How long to hold the connections (and measure) after the warm-up.
    #[arg(long)]
    hold_secs: f64,
    /// How long to keep the connections open, no longer measuring, before closing them:
    /// closing thousands of sockets takes a burst of CPU, and generators sharing a machine
    /// must all have stopped measuring before any of them makes that burst.
    #[arg(long, default_value_t = 2.0)]
    linger_secs: f64,
    /// Behave like the page when a connection ends: reconnect with the same id.
    #[arg(long)]
    failover: bool,
    /// A reconnect herd: at the end of the warm-up every client closes its connection and
    /// reconnects with the same id, at once (`immediate`) or as the page does (`page`);
    /// the hold then measures how they came back.
    #[arg(long, value_enum, conflicts_with = "failover")]
    herd: Option<herd::Retry>,
    /// Also write every tick read to this file, one `connection,count,arrival_ms` line each
    /// (arrival from the generator's start), to study a run connection by connection.
    #[arg(long)]
    trace: Option<std::path::PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let target = Arc::new(Target::new(&args.url, args.ca_file.as_deref())?);
    let args = Arc::new(args);
    let stop = CancellationToken::new();
    let dropping = CancellationToken::new();
    let measuring = Arc::new(OnceLock::new());
    let started = Instant::now();

    // Open every connection (at most `concurrency` at a time) and start reading it at once,
    // as a real client does: a socket left unread while the others connect would hand its
    // backlog over in one burst, and its first measured interval would say nothing about
    // the server.
    let opened: Vec<_> = stream::iter(0..args.connections)
        .map(|i| {
            let (stop, measuring, args) = (stop.clone(), Arc::clone(&measuring), Arc::clone(&args));
            let (target, dropping) = (Arc::clone(&target), dropping.clone());
            async move {
                let id = format!("{}-{i}", args.id_prefix);
                let source = args.source_ips[i % args.source_ips.len()];
                let socket = open(&target, source, &id).await?;
                anyhow::Ok(tokio::spawn(async move {
                    if let Some(retry) = args.herd {
                        let herd =
                            herd::rejoin(socket, &target, source, &id, retry, dropping, stop);
                        Outcome::Herd(herd.await)
                    } else if args.failover {
                        Outcome::Failover(ride(socket, &target, source, &id, started, stop).await)
                    } else {
                        let trace = args.trace.is_some().then_some(i);
                        Outcome::Steady(hold(socket, started, measuring, stop, trace).await)
                    }
                }))
            }
        })
        .buffer_unordered(args.concurrency)
        .collect()
        .await;
    let connect_secs = started.elapsed().as_secs_f64();
    let tasks: Vec<_> = opened.into_iter().filter_map(Result::ok).collect();
    let failed_connects = args.connections - tasks.len();
    // Listening before saying READY: a driver signals as soon as it reads the line, and an
    // unhandled SIGUSR1 would kill the generator.
    let go = args
        .start_on_signal
        .then(|| tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1()))
        .transpose()?;
    println!("READY {connect_secs:.3}");
    std::io::stdout().flush()?;
    if let Some(mut go) = go {
        go.recv().await;
    }

    let warmup = Duration::from_secs_f64(args.warmup_secs);
    let from = Instant::now() + warmup;
    let until = from + Duration::from_secs_f64(args.hold_secs);
    let _ = measuring.set(from..until);
    tokio::time::sleep_until(from).await;
    let dropped_at = Instant::now();
    dropping.cancel();
    tokio::time::sleep_until(until + Duration::from_secs_f64(args.linger_secs)).await;
    stop.cancel();

    let mut outcomes = Vec::with_capacity(tasks.len());
    for task in tasks {
        outcomes.push(task.await?);
    }
    if let Some(path) = &args.trace {
        write_trace(path, &outcomes)?;
    }
    let result = if args.herd.is_some() {
        let rejoins = outcomes.into_iter().filter_map(|o| match o {
            Outcome::Herd(rejoined) => Some(rejoined),
            _ => None,
        });
        let result: HerdResult = herd::result(args.connections, dropped_at, rejoins.collect());
        serde_json::to_string(&result)?
    } else if args.failover {
        serde_json::to_string(&failover_result(args.connections, outcomes))?
    } else {
        serde_json::to_string(&steady_result(
            args.connections,
            failed_connects,
            connect_secs,
            outcomes,
        ))?
    };
    println!("RESULT {result}");
    Ok(())
}

/// Where the connections go: the URL, the address it names, and the TLS to speak for
/// `wss://` (trusting `--ca-file`).
struct Target {
    url: String,
    address: SocketAddr,
    tls: Option<Connector>,
}

impl Target {
    /// The target of `url` (loopback only: the host must be an address).
    fn new(url: &str, ca_file: Option<&std::path::Path>) -> anyhow::Result<Self> {
        let (rest, secure) = match (url.strip_prefix("ws://"), url.strip_prefix("wss://")) {
            (Some(rest), _) => (rest, false),
            (_, Some(rest)) => (rest, true),
            _ => bail!("the URL must start with ws:// or wss://"),
        };
        let authority = rest.split('/').next().unwrap_or(rest);
        let address = authority
            .parse()
            .with_context(|| format!("{authority:?} is not an IP address and port"))?;
        let tls = match (secure, ca_file) {
            (false, _) => None,
            (true, None) => bail!("a wss:// URL needs --ca-file, the CA to trust"),
            (true, Some(ca)) => Some(Connector::Rustls(Arc::new(trusting(ca)?))),
        };
        Ok(Self { url: url.to_owned(), address, tls })
    }
}

/// A TLS client configuration that trusts the certificates in the PEM file `ca`.
fn trusting(ca: &std::path::Path) -> anyhow::Result<rustls::ClientConfig> {
    use rustls_pki_types::{pem::PemObject as _, CertificateDer};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).with_context(|| format!("{}", ca.display()))? {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens one WebSocket from `source` with client id `id`.
async fn open(target: &Target, source: Ipv4Addr, id: &str) -> anyhow::Result<Socket> {
    let attempt = async {
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(source.into(), 0))?;
        let stream = socket.connect(target.address).await?;
        stream.set_nodelay(true)?;
        let request = format!("{}?id={id}", target.url);
        let (socket, _) = tokio_tungstenite::client_async_tls_with_config(
            request,
            stream,
            None,
            target.tls.clone(),
        )
        .await?;
        anyhow::Ok(socket)
    };
    match timeout(CONNECT_TIMEOUT, attempt).await {
        Ok(result) => result,
        Err(_) => bail!("no connection within {CONNECT_TIMEOUT:?}"),
    }
}

enum Outcome {
    Steady(Held),
    Failover(Rode),
    Herd(herd::Rejoined),
}

/// What one held connection saw.
#[derive(Default)]
struct Held {
    ticks: TickLog,
    dropped: bool,
    /// With `--trace`: the connection's number, and the count and arrival (ms) of every tick.
    trace: Option<(usize, Vec<(u64, f64)>)>,
}

/// Reads ticks until `stop`, measuring those that arrive within the `measuring` window
/// (and learning each connection's schedule from every tick since it opened).
async fn hold(
    mut socket: Socket,
    origin: Instant,
    measuring: Arc<OnceLock<Range<Instant>>>,
    stop: CancellationToken,
    trace: Option<usize>,
) -> Held {
    let mut held = Held { trace: trace.map(|i| (i, Vec::new())), ..Held::default() };
    loop {
        let message = tokio::select! {
            () = stop.cancelled() => break,
            message = socket.next() => message,
        };
        let now = Instant::now();
        match message {
            Some(Ok(Message::Text(text))) => {
                let Some(tick) = Tick::parse(&text) else { continue };
                let window = match measuring.get() {
                    Some(window) if window.contains(&now) => Window::Inside,
                    Some(window) if now >= window.end => Window::After,
                    _ => Window::Before,
                };
                let at_ms = now.duration_since(origin).as_secs_f64() * 1000.0;
                held.ticks.record(at_ms, tick.seconds, window);
                if let Some((_, arrivals)) = &mut held.trace {
                    arrivals.push((tick.seconds, at_ms));
                }
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => {
                held.dropped = true;
                break;
            }
        }
    }
    let _ = socket.close(None).await;
    held
}

/// What one client saw across losses of its instance.
#[derive(Default)]
struct Rode {
    losses: usize,
    gaps_ms: Vec<f64>,
    resumed: usize,
    restarted: usize,
    gave_up: bool,
    reconnected_at: Vec<Instant>,
    first_loss: Option<Instant>,
    /// Ticks whose count was below the one before, on any connection of this client.
    backwards: usize,
    /// Ticks read in each second from the generator's start.
    per_second: Vec<usize>,
    /// Interval lateness (ms) of each tick that followed another on the same connection.
    lateness_ms: Vec<f64>,
    /// The worst of those in each second from the generator's start.
    worst_lateness_per_second: Vec<f64>,
}

/// Holds a connection like the page does: when it ends, reconnect with the same id per
/// the retry policy, until `stop`.
async fn ride(
    socket: Socket,
    target: &Target,
    source: Ipv4Addr,
    id: &str,
    origin: Instant,
    stop: CancellationToken,
) -> Rode {
    let policy = RetryPolicy::DEFAULT;
    let mut rode = Rode::default();
    let mut socket = Some(socket);
    let mut last_tick: Option<(Instant, u64)> = None;
    let mut lost = false;
    let mut attempt = 0;
    while !stop.is_cancelled() {
        let current = match socket.take() {
            Some(current) => Ok(current),
            None => open(target, source, id).await,
        };
        let (delivered, why) = match current {
            Ok(current) => {
                follow(current, origin, &mut last_tick, &mut lost, &mut rode, &stop).await
            }
            Err(_) => (false, Disconnect::Lost),
        };
        if stop.is_cancelled() {
            break;
        }
        if !lost {
            lost = true;
            rode.losses += 1;
            rode.first_loss.get_or_insert_with(Instant::now);
        }
        let ended_attempt = if delivered { 0 } else { attempt };
        match policy.next(ended_attempt, why, rand::random()) {
            Next::RetryIn(delay) => {
                attempt = ended_attempt + 1;
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(delay) => {}
                }
            }
            Next::GiveUp | Next::Stop => {
                rode.gave_up = true;
                break;
            }
        }
    }
    rode
}

/// Reads one connection's ticks until it ends; returns whether it delivered any, and its
/// close code. The first tick after a loss records the gap and whether the count went on;
/// every tick is counted in its second since `origin`, and any that goes backwards.
async fn follow(
    mut socket: Socket,
    origin: Instant,
    last_tick: &mut Option<(Instant, u64)>,
    lost: &mut bool,
    rode: &mut Rode,
    stop: &CancellationToken,
) -> (bool, Disconnect) {
    let mut delivered = false;
    // The previous tick on this connection: a reconnect's first tick has none, so a gap
    // across connections is a gap (`gaps_ms`), not lateness.
    let mut previous: Option<Instant> = None;
    loop {
        let limit = if delivered { DEAD_PEER_TIMEOUT } else { CONNECT_TIMEOUT };
        let message = tokio::select! {
            () = stop.cancelled() => return (delivered, Disconnect::Lost),
            message = timeout(limit, socket.next()) => message,
        };
        let now = Instant::now();
        match message {
            Ok(Some(Ok(Message::Text(text)))) => {
                let Some(tick) = Tick::parse(&text) else { continue };
                let second = now.duration_since(origin).as_secs() as usize;
                if rode.per_second.len() <= second {
                    rode.per_second.resize(second + 1, 0);
                }
                rode.per_second[second] += 1;
                if let Some(previous) = previous.replace(now) {
                    let late = (now.duration_since(previous).as_secs_f64() - 1.0).max(0.0) * 1000.0;
                    rode.lateness_ms.push(late);
                    if rode.worst_lateness_per_second.len() <= second {
                        rode.worst_lateness_per_second.resize(second + 1, 0.0);
                    }
                    let worst = &mut rode.worst_lateness_per_second[second];
                    *worst = worst.max(late);
                }
                if last_tick.is_some_and(|(_, seconds)| tick.seconds < seconds) {
                    rode.backwards += 1;
                }
                if *lost {
                    *lost = false;
                    if let Some((at, seconds)) = *last_tick {
                        rode.gaps_ms.push(now.duration_since(at).as_secs_f64() * 1000.0);
                        if tick.seconds > seconds {
                            rode.resumed += 1;
                        } else {
                            rode.restarted += 1;
                        }
                    }
                    rode.reconnected_at.push(now);
                }
                delivered = true;
                *last_tick = Some((now, tick.seconds));
            }
            Ok(Some(Ok(Message::Close(frame)))) => {
                let why = frame.map_or(Disconnect::Lost, |frame| {
                    Disconnect::from_close(Some(u16::from(frame.code)), &frame.reason)
                });
                return (delivered, why);
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_)) | None) | Err(_) => return (delivered, Disconnect::Lost),
        }
    }
}

/// Writes the `--trace` file: one line per tick read.
fn write_trace(path: &std::path::Path, outcomes: &[Outcome]) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("create {}", path.display()))?,
    );
    for outcome in outcomes {
        if let Outcome::Steady(Held { trace: Some((i, arrivals)), .. }) = outcome {
            for (count, at_ms) in arrivals {
                writeln!(out, "{i},{count},{at_ms:.3}")?;
            }
        }
    }
    out.flush().with_context(|| format!("write {}", path.display()))
}

fn steady_result(
    connections: usize,
    failed_connects: usize,
    connect_secs: f64,
    outcomes: Vec<Outcome>,
) -> SteadyResult {
    let mut result =
        SteadyResult { connections, failed_connects, connect_secs, ..Default::default() };
    let (mut by_interval, mut by_schedule, mut phases) = (Vec::new(), Vec::new(), Vec::new());
    for outcome in outcomes {
        if let Outcome::Steady(held) = outcome {
            phases.extend(held.ticks.phase_ms());
            by_schedule.extend(held.ticks.schedule_lateness_ms());
            by_interval.extend(held.ticks.interval_lateness_ms);
            result.out_of_order += held.ticks.out_of_order;
            result.ticks += held.ticks.ticks;
            result.dropped += usize::from(held.dropped);
        }
    }
    result.lateness_ms = Summary::of(by_interval);
    result.schedule_lateness_ms = Summary::of(by_schedule);
    let mut per_millisecond = [0_usize; 1000];
    for &phase in &phases {
        per_millisecond[phase] += 1;
    }
    result.crowding =
        Summary::of(phases.iter().map(|&phase| per_millisecond[phase] as f64).collect());
    result
}

fn failover_result(clients: usize, outcomes: Vec<Outcome>) -> FailoverResult {
    let rides: Vec<Rode> = outcomes
        .into_iter()
        .filter_map(|o| match o {
            Outcome::Failover(rode) => Some(rode),
            Outcome::Steady(_) | Outcome::Herd(_) => None,
        })
        .collect();
    let first_loss = rides.iter().filter_map(|r| r.first_loss).min();
    let mut buckets = Vec::new();
    if let Some(first_loss) = first_loss {
        for at in rides.iter().flat_map(|r| &r.reconnected_at) {
            let bucket = (at.saturating_duration_since(first_loss).as_millis() / 100) as usize;
            if buckets.len() <= bucket {
                buckets.resize(bucket + 1, 0);
            }
            buckets[bucket] += 1;
        }
    }
    let mut ticks_per_second: Vec<usize> = Vec::new();
    let mut worst_lateness_ms_per_second: Vec<f64> = Vec::new();
    for rode in &rides {
        sum_into(&mut ticks_per_second, &rode.per_second);
        max_into(&mut worst_lateness_ms_per_second, &rode.worst_lateness_per_second);
    }
    let lateness_ms =
        Summary::of(rides.iter().flat_map(|r| r.lateness_ms.iter().copied()).collect());
    FailoverResult {
        clients,
        connected: rides.len(),
        affected: rides.iter().filter(|r| r.losses > 0).count(),
        gap_ms: rides.iter().flat_map(|r| r.gaps_ms.iter().copied()).collect(),
        resumed: rides.iter().map(|r| r.resumed).sum(),
        restarted: rides.iter().map(|r| r.restarted).sum(),
        gave_up: rides.iter().filter(|r| r.gave_up).count(),
        reconnects_per_100ms: buckets,
        backwards: rides.iter().map(|r| r.backwards).sum(),
        ticks_per_second,
        lateness_ms,
        worst_lateness_ms_per_second,
    }
}
