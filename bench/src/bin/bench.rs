//! wstime-bench: the benchmark driver behind `make bench`. It reads its flags, runs the
//! library's experiments in order (steady load, what the per-tick metrics cost, write calls
//! per tick, failover, scale-out, the page in Chromium, the reconnect herd; the crate's map
//! says what each measures) and writes the report. With `--only`, it runs the parts named and keeps the
//! others' figures from the report already there.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use clap::Parser;
use wstime_bench::{
    failover::Failover,
    herd::Herd,
    machine,
    metrics_cost::MetricsCost,
    node::NodeParts,
    page::PageLoad,
    report::{self, Report},
    scale_out::ScaleOut,
    setup::Setup,
    steady::Steady,
    syscalls::Syscalls,
};

/// The parts of the benchmark, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Part {
    Steady,
    MetricsCost,
    Syscalls,
    Failover,
    ScaleOut,
    Page,
    Herd,
}

#[derive(Debug, Parser)]
#[command(name = "wstime-bench", about)]
struct Args {
    /// Run only these parts (comma-separated, e.g. `--only page`); the others' figures are
    /// kept from the `results.json` already in `--out`, if there is one.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Part>,
    /// Clients in the reconnect herd, in one generator process (0: skip it).
    #[arg(long, default_value_t = 15_000)]
    herd_clients: usize,
    /// Clients that stay connected through the herd and measure their ticks' lateness.
    #[arg(long, default_value_t = 1_000)]
    herd_bystanders: usize,
    /// How long each herd is watched after the drop.
    #[arg(long, default_value_t = 15.0)]
    herd_secs: f64,
    /// Steady-load sizes (connections).
    #[arg(long, value_delimiter = ',', default_value = "1000,5000,10000,15000")]
    sizes: Vec<usize>,
    /// Seconds of steady state measured per size.
    #[arg(long, default_value_t = 10.0)]
    window_secs: f64,
    /// Connections for the strace run (0: skip it).
    #[arg(long, default_value_t = 200)]
    strace_connections: usize,
    /// Clients in the failover runs (0: skip them).
    #[arg(long, default_value_t = 6000)]
    failover_clients: usize,
    /// How long each failover run holds its clients after the instance is lost.
    #[arg(long, default_value_t = 20.0)]
    failover_secs: f64,
    /// Clients in the scale-out run (0: skip it).
    #[arg(long, default_value_t = 6000)]
    scale_out_clients: usize,
    /// How long the scale-out run watches after the third instance starts.
    #[arg(long, default_value_t = 60.0)]
    scale_out_secs: f64,
    #[arg(long, default_value = "target/release/wstime-server")]
    server_bin: PathBuf,
    /// The same server built without its per-tick metrics (`make bench` builds it), measured
    /// in turn with `--server-bin` at the largest size to show what the metrics cost.
    #[arg(long, default_value = "target/release/wstime-server-without-tick-metrics")]
    without_tick_metrics_bin: PathBuf,
    /// Pairs of runs (with, then without the per-tick metrics) for that (0: skip them).
    #[arg(long, default_value_t = 3)]
    metrics_cost_pairs: usize,
    #[arg(long, default_value = "target/release/wstime-loadgen")]
    loadgen_bin: PathBuf,
    #[arg(long, default_value = "dist")]
    static_dir: PathBuf,
    #[arg(long, default_value = "deploy/haproxy.cfg")]
    haproxy_config: PathBuf,
    /// The Node.js that runs the post's server and the independent client: a path, or a name
    /// looked up on PATH. When there is none, wstime is measured alone.
    #[arg(long, default_value = "node")]
    node: String,
    /// The post's server and its locked dependencies (installed with `npm ci` when missing).
    #[arg(long, default_value = "bench/node-peer")]
    node_peer_dir: PathBuf,
    /// The independent client and its locked dependencies.
    #[arg(long, default_value = "bench/node-client")]
    node_client_dir: PathBuf,
    /// Connections for the independent client's runs against both servers (default: the
    /// largest size; 0: skip them).
    #[arg(long)]
    independent_size: Option<usize>,
    /// Connections for the run over TLS (wstime serving `wss://` itself; 0: skip it).
    #[arg(long, default_value_t = 15000)]
    tls_size: usize,
    /// Runs of the page row per page and link, each a cold load and a warm one: the report
    /// gives the median, which 5 runs keep from being one stall's figure (0: skip it).
    #[arg(long, default_value_t = 5)]
    page_runs: usize,
    /// Where the report goes.
    #[arg(long, default_value = "docs/bench")]
    out: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Children inherit the limit: the post's server, unlike ours, does not raise its own.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let started = Instant::now();
    let setup = Setup {
        server_bin: args.server_bin.clone(),
        loadgen_bin: args.loadgen_bin.clone(),
        static_dir: args.static_dir.clone(),
        haproxy_config: args.haproxy_config.clone(),
    };
    let node = NodeParts::install(&args.node, &args.node_peer_dir, &args.node_client_dir)?;
    let runs = |part: Part| args.only.is_empty() || args.only.contains(&part);
    let earlier = if args.only.is_empty() { None } else { report::read(&args.out)? };
    let mut report = earlier.unwrap_or_else(|| Report {
        machine: machine::description(),
        date: machine::date(),
        node: node.as_ref().map(|n| n.version.clone()),
        steady: Vec::new(),
        syscalls: None,
        metrics_cost: Vec::new(),
        failover: Vec::new(),
        scale_out: None,
        page: None,
        herd: Vec::new(),
    });
    let window = Duration::from_secs_f64(args.window_secs);
    let largest = args.sizes.iter().copied().max().unwrap_or(0);
    if runs(Part::Steady) {
        let steady = Steady {
            sizes: args.sizes.clone(),
            independent_size: args.independent_size.unwrap_or(largest),
            tls_size: args.tls_size,
            window,
        };
        report.steady = steady.run(&setup, node.as_ref())?;
    }
    if runs(Part::MetricsCost) && args.metrics_cost_pairs > 0 && largest > 0 {
        let metrics_cost = MetricsCost {
            without_tick_metrics_bin: args.without_tick_metrics_bin.clone(),
            pairs: args.metrics_cost_pairs,
            size: largest,
            window,
        };
        report.metrics_cost = metrics_cost.run(&setup)?;
    }
    if runs(Part::Syscalls) && args.strace_connections > 0 {
        let syscalls = Syscalls { connections: args.strace_connections };
        report.syscalls = Some(syscalls.run(&setup)?);
    }
    if runs(Part::Failover) && args.failover_clients > 0 {
        let failover = Failover {
            clients: args.failover_clients,
            hold: Duration::from_secs_f64(args.failover_secs),
        };
        report.failover = failover.run(&setup)?;
    }
    if runs(Part::ScaleOut) && args.scale_out_clients > 0 {
        let scale_out = ScaleOut {
            cluster: setup.cluster(),
            loadgen_bin: args.loadgen_bin.clone(),
            clients: args.scale_out_clients,
            watch: Duration::from_secs_f64(args.scale_out_secs),
        };
        report.scale_out = Some(scale_out.run()?);
    }
    if runs(Part::Page) && args.page_runs > 0 {
        let page = PageLoad { runs: args.page_runs };
        report.page = Some(page.run(&setup, node.as_ref())?);
    }
    if runs(Part::Herd) && args.herd_clients > 0 {
        let herd = Herd {
            clients: args.herd_clients,
            bystanders: args.herd_bystanders,
            watch: Duration::from_secs_f64(args.herd_secs),
        };
        report.herd = herd.run(&setup, node.as_ref())?;
    }
    report::write(&report, &args.out)?;
    eprintln!(
        "wstime-bench: report in {} after {:.0?}",
        args.out.join("report.md").display(),
        started.elapsed()
    );
    Ok(())
}
