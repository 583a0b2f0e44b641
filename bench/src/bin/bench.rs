//! wstime-bench: the benchmark driver behind `make bench`.
//!
//! Steady load: for each size, a fresh release `wstime-server`, N connections from
//! `wstime-loadgen` processes (at most 8,000 each, spread over 127.0.0.2–9), then the
//! server's resident memory per connection and CPU per tick over a steady window, and the
//! generators' tick lateness; then the same for the post's Node server (`bench/node-peer`).
//! At the largest size both servers are measured once more with the independent Node client
//! (`bench/node-client`) holding the connections. Without `node` on the machine, wstime is
//! measured alone. wstime is also measured serving TLS itself (`wss://`, with a certificate
//! made at start) at one size. Then a small run under `strace -c -f` counts write calls per
//! tick.
//! Failover: the local cluster (3 instances, Redis, HAProxy) with clients that behave like
//! the page; one instance is SIGKILLed, and in a second run another is SIGTERMed. Scale-out:
//! clients on two instances, then a third starts, and rebalancing moves a third of them.

use std::{
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _};
use clap::Parser;
use wstime_bench::{
    generators, machine,
    metrics_cost::MetricsCost,
    node::NodeParts,
    report::{self, FailoverRow, Report, SyscallRow},
    results::SteadyResult,
    scale_out::ScaleOut,
    servers::Server,
    setup::Setup,
    steady::Steady,
};

#[derive(Debug, Parser)]
#[command(name = "wstime-bench", about)]
struct Args {
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
    #[arg(long, default_value_t = 5000)]
    tls_size: usize,
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
    let mut report = Report {
        machine: machine::description(),
        date: machine::date(),
        node: node.as_ref().map(|n| n.version.clone()),
        steady: Vec::new(),
        syscalls: None,
        metrics_cost: Vec::new(),
        failover: Vec::new(),
        scale_out: None,
    };
    let window = Duration::from_secs_f64(args.window_secs);
    let largest = args.sizes.iter().copied().max().unwrap_or(0);
    let steady = Steady {
        sizes: args.sizes.clone(),
        independent_size: args.independent_size.unwrap_or(largest),
        tls_size: args.tls_size,
        window,
    };
    report.steady = steady.run(&setup, node.as_ref())?;
    if args.metrics_cost_pairs > 0 && largest > 0 {
        let metrics_cost = MetricsCost {
            without_tick_metrics_bin: args.without_tick_metrics_bin.clone(),
            pairs: args.metrics_cost_pairs,
            size: largest,
            window,
        };
        report.metrics_cost = metrics_cost.run(&setup)?;
    }
    if args.strace_connections > 0 {
        let row = syscalls(&args, &setup)?;
        eprintln!("wstime-bench: {} socket writes for {} ticks", row.socket_writes, row.ticks);
        report.syscalls = Some(row);
    }
    if args.failover_clients > 0 {
        report.failover = failover(&args, &setup)?;
    }
    if args.scale_out_clients > 0 {
        let scale_out = ScaleOut {
            cluster: setup.cluster(),
            loadgen_bin: args.loadgen_bin.clone(),
            clients: args.scale_out_clients,
            watch: Duration::from_secs_f64(args.scale_out_secs),
        };
        let row = scale_out.run()?;
        eprintln!(
            "wstime-bench: scale-out: {} moved, balanced after {:?} s, {} resumed, {} restarted, \
             longest gap {:.0} ms, peak load {:.2}",
            row.moved.affected,
            row.balanced_after_secs,
            row.moved.resumed,
            row.moved.restarted,
            row.gap_ms.max,
            row.peak_load
        );
        report.scale_out = Some(row);
    }
    report::write(&report, &args.out)?;
    eprintln!(
        "wstime-bench: report in {} after {:.0?}",
        args.out.join("report.md").display(),
        started.elapsed()
    );
    Ok(())
}

/// Counts the server's write calls per tick under `strace -f` in a steady window, by what
/// they wrote to: only writes to TCP sockets are a tick's cost (the event loop's own
/// wake-ups write to an eventfd).
fn syscalls(args: &Args, setup: &Setup) -> anyhow::Result<SyscallRow> {
    let connections = args.strace_connections;
    let instance = Server::Wstime(setup.wstime()).start()?;
    let url = format!("ws://127.0.0.1:{}/", instance.port);
    let loadgen = setup.loadgen();
    let flags = ["--warmup-secs", "0", "--hold-secs", "8"];
    let (mut processes, _) = generators::start(&loadgen, &url, connections, "strace", &flags)?;
    // Attach once every socket is open, so only steady-state ticks are counted.
    std::thread::sleep(Duration::from_secs(1));
    let trace = std::env::temp_dir().join(format!("wstime-strace-{}.txt", std::process::id()));
    let window = 5;
    let status = Command::new("timeout")
        // `-s 256`: each write's bytes in full, so the ticks in it can be counted.
        .args(["-s", "INT", &window.to_string(), "strace", "-f", "-yy", "-qq", "-s", "256"])
        .args(["-e", "trace=write,writev,sendto,sendmsg", "-e", "signal=none", "-o"])
        .arg(&trace)
        .args(["-p", &instance.process.pid().to_string()])
        .status()
        .context("run strace (make bench installs it)")?;
    if status.code() != Some(124) && !status.success() {
        bail!("strace failed: {status}");
    }
    for process in &mut processes {
        let _: SteadyResult = generators::result(process, Duration::from_secs(30))?;
    }
    let text = std::fs::read_to_string(&trace)?;
    let _ = std::fs::remove_file(&trace);
    let mut counts = std::collections::BTreeMap::<String, u64>::new();
    let mut ticks = 0;
    for call in text.lines().filter_map(write_call) {
        if call.name.ends_with(" TCP") {
            ticks += call.ticks;
        }
        *counts.entry(call.name).or_default() += 1;
    }
    let socket_writes = counts.iter().filter(|(k, _)| k.ends_with(" TCP")).map(|(_, c)| c).sum();
    Ok(SyscallRow { connections, ticks, socket_writes, write_calls: counts.into_iter().collect() })
}

/// One write-family call in a `strace -f -yy -s 256` trace.
#[derive(Debug, PartialEq)]
struct WriteCall {
    /// The call and what it wrote to: `sendto TCP`, `write eventfd`.
    name: String,
    /// Tick frames among the bytes written. Counted in the bytes rather than estimated from
    /// time, because ticks are not spread evenly over a second: sockets opened together
    /// tick together.
    ticks: u64,
}

/// The call in a line such as `7 sendto(25<TCP:[127.0.0.1:80->127.0.0.2:5000]>, "...", ...`;
/// `None` for the second half of an interrupted call.
fn write_call(line: &str) -> Option<WriteCall> {
    // strace pads the thread id to a common width.
    let (_pid, call) = line.trim_start().split_once(' ')?;
    let (name, args) = call.trim_start().split_once('(')?;
    let (_, target) = args.split_once('<')?;
    let target = target.split(['>', ':']).next()?;
    let target = if target.starts_with("anon_inode") {
        args.split_once("[")?.1.split(']').next()?
    } else {
        target.trim_end_matches("v6")
    };
    Some(WriteCall {
        name: format!("{} {target}", name.trim()),
        ticks: args.matches(wstime_protocol::tick::MIDDLE).count() as u64,
    })
}

fn failover(args: &Args, setup: &Setup) -> anyhow::Result<Vec<FailoverRow>> {
    let mut cluster = setup.cluster().start(3, 0)?;
    let url = format!("ws://127.0.0.1:{}/", cluster.balancer_port().context("HAProxy")?);
    let loadgen = setup.loadgen();
    let mut rows = Vec::new();
    for (run, (signal, node)) in [("KILL", 0), ("TERM", 1)].into_iter().enumerate() {
        let hold = format!("{}", 3.0 + args.failover_secs);
        let flags = ["--failover", "--warmup-secs", "0", "--hold-secs", &hold];
        let prefix = format!("failover{run}-");
        let (mut processes, _) =
            generators::start(&loadgen, &url, args.failover_clients, &prefix, &flags)?;
        std::thread::sleep(Duration::from_secs(3));
        cluster.signal(node, signal)?;
        let merged = generators::failover_results(
            &mut processes,
            Duration::from_secs_f64(args.failover_secs + 60.0),
        )?;
        let row = FailoverRow::new(&format!("SIG{signal}"), merged);
        eprintln!(
            "wstime-bench: SIG{signal}: {} affected, gap p99 {:.0} ms, {} resumed, {} restarted, {} gave up",
            row.result.affected, row.gap_ms.p99, row.result.resumed, row.result.restarted, row.result.gave_up
        );
        rows.push(row);
        if signal == "TERM" {
            cluster.wait_exit(node)?;
        }
        cluster.restart(node)?;
        // The next run's clients must find every instance in HAProxy's pool: arriving while
        // the restarted one is still out, they would crowd the others, and the rebalancing
        // that follows would be measured as failover.
        cluster.balancer().context("HAProxy")?.wait_until_up(3, 3)?;
    }
    cluster.stop();
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::{write_call, WriteCall};

    #[test]
    fn strace_lines_say_which_call_wrote_how_many_ticks_to_what() {
        let tick = "\\201%idle: you have been connected for 3 seconds";
        let lines = [
            format!("26667 sendto(25<TCP:[127.0.0.1:8080->127.0.0.2:5000]>, \"{tick}\", 39, 0, NULL, 0) = 39"),
            format!("27338  sendto(9<TCPv6:[::1:8080->::1:5000]>, \"{tick}\\211\\0\", 41, 0, NULL, 0) = 41"),
            "26667 write(18<anon_inode:[eventfd]>, \"\\1\\0\\0\\0\\0\\0\\0\\0\", 8 <unfinished ...>".into(),
            "26667 <... write resumed>) = 8".into(),
            "27338 write(2<pipe:[81234]>, \"log line\\n\", 9) = 9".into(),
        ];
        let calls: Vec<_> = lines.iter().map(|line| write_call(line)).collect();
        let call = |name: &str, ticks| Some(WriteCall { name: name.into(), ticks });
        assert_eq!(
            calls,
            [
                call("sendto TCP", 1),
                call("sendto TCP", 1),
                call("write eventfd", 0),
                None,
                call("write pipe", 0),
            ]
        );
    }
}
