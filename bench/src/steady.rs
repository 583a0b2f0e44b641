//! Steady load: a server holding connections, its memory per connection and CPU per tick
//! over a steady window, and how late its ticks reached the clients.

use std::time::{Duration, Instant};

use wstime_cluster::tls::Certificates;

use crate::{
    clients::Client,
    generators,
    node::NodeParts,
    proc,
    report::{self, SteadyRow},
    results::SteadyResult,
    servers::Server,
    setup::Setup,
};

/// What to run.
pub struct Steady {
    /// The sizes (connections) measured with the load generator, on every server.
    pub sizes: Vec<usize>,
    /// Connections for the independent client's runs against both servers (0: none).
    pub independent_size: usize,
    /// Connections for the run over TLS, wstime serving `wss://` itself (0: none).
    pub tls_size: usize,
    /// The steady state measured in each run.
    pub window: Duration,
}

impl Steady {
    /// Every size on wstime and, with `node`, on the post's server; then both servers with
    /// the independent client; then wstime over TLS. Each run on a fresh server.
    pub fn run(&self, setup: &Setup, node: Option<&NodeParts>) -> anyhow::Result<Vec<SteadyRow>> {
        let mut rows = Vec::new();
        let wstime = Server::Wstime(setup.wstime());
        let loadgen = setup.loadgen();
        let peer = node.map(|n| &n.peer);
        for &size in &self.sizes {
            for server in std::iter::once(&wstime).chain(peer) {
                rows.push(measure(server, &loadgen, size, self.window)?);
            }
        }
        if let (Some(node), true) = (node, self.independent_size > 0) {
            for server in [&wstime, &node.peer] {
                rows.push(measure(server, &node.client, self.independent_size, self.window)?);
            }
        }
        if self.tls_size > 0 {
            let certificate = Certificates::loopback()?;
            let mut spec = setup.wstime();
            spec.env.push(("TLS_CERT".into(), certificate.cert.display().to_string()));
            spec.env.push(("TLS_KEY".into(), certificate.key.display().to_string()));
            let tls = Server::WstimeTls { spec, ca: certificate.ca.clone() };
            rows.push(measure(&tls, &loadgen, self.tls_size, self.window)?);
        }
        Ok(rows)
    }
}

/// Measures `server` holding `size` connections from `client`, over a `window` of steady
/// state.
pub fn measure(
    server: &Server,
    client: &Client,
    size: usize,
    window: Duration,
) -> anyhow::Result<SteadyRow> {
    let instance = server.start()?;
    let pid = instance.process.pid();
    std::thread::sleep(Duration::from_secs(1));
    let rss_idle = proc::rss_bytes(pid)?;
    // Measure only once every generator is connected: a generator still opening
    // connections keeps the server busy with handshakes, which is not the steady state.
    let settle = 2.0;
    let hold = format!("{}", window.as_secs_f64() + 1.0);
    let url = server.url(instance.port);
    let mut flags: Vec<String> =
        ["--start-on-signal", "--warmup-secs", &settle.to_string(), "--hold-secs", &hold]
            .map(str::to_owned)
            .to_vec();
    flags.extend(server.client_flags());
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let (mut processes, connect_secs) = generators::start(client, &url, size, "steady", &flags)?;
    for process in &mut processes {
        process.signal("USR1")?;
    }
    std::thread::sleep(Duration::from_secs_f64(settle));
    let (cpu_before, stolen_before) = (proc::cpu_time(pid)?, proc::stolen_us()?);
    let pressure_before = proc::cpu_pressure_us();
    let window_start = Instant::now();
    std::thread::sleep(window);
    let (cpu_after, stolen_after) = (proc::cpu_time(pid)?, proc::stolen_us()?);
    let pressure_after = proc::cpu_pressure_us();
    let measured = window_start.elapsed().as_secs_f64();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let rss_loaded = proc::rss_bytes(pid)?;

    let mut load = SteadyResult { connections: size, ..Default::default() };
    for process in &mut processes {
        let part: SteadyResult = generators::result(process, Duration::from_secs(60))?;
        load.failed_connects += part.failed_connects;
        load.out_of_order += part.out_of_order;
        load.ticks += part.ticks;
        load.dropped += part.dropped;
        // Percentiles cannot be merged exactly: report the worst generator's.
        load.lateness_ms = load.lateness_ms.worst(&part.lateness_ms);
        load.schedule_lateness_ms = load.schedule_lateness_ms.worst(&part.schedule_lateness_ms);
        load.crowding = load.crowding.worst(&part.crowding);
    }
    load.connect_secs = connect_secs;
    let ticks = size as f64 * measured;
    let row = SteadyRow {
        server: server.label().into(),
        client: client.label().into(),
        connections: size,
        connect_rate: size as f64 / connect_secs.max(0.001),
        rss_per_connection_kb: rss_loaded.saturating_sub(rss_idle) as f64 / size as f64 / 1000.0,
        rss_idle_mb: rss_idle as f64 / 1e6,
        user_us_per_tick: (cpu_after.user_us - cpu_before.user_us) as f64 / ticks,
        kernel_us_per_tick: (cpu_after.kernel_us - cpu_before.kernel_us) as f64 / ticks,
        stolen_percent: (stolen_after - stolen_before) as f64 / (measured * 1e6 * cores) * 100.0,
        cpu_pressure_percent: pressure_before
            .zip(pressure_after)
            .map(|(before, after)| (after - before) as f64 / (measured * 1e6) * 100.0),
        load,
    };
    eprintln!(
        "wstime-bench: {} with {}, {size} connections: {:.1} KB each, {:.2} + {:.2} µs per tick, \
         p99 lateness {:.1} ms by interval, {:.1} ms by schedule, {:.1}% CPU stolen, \
         CPU pressure {}",
        row.server,
        row.client,
        row.rss_per_connection_kb,
        row.user_us_per_tick,
        row.kernel_us_per_tick,
        row.load.lateness_ms.p99,
        row.load.schedule_lateness_ms.p99,
        row.stolen_percent,
        report::percent(row.cpu_pressure_percent)
    );
    Ok(row)
}
