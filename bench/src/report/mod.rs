//! The benchmark report: the rows each experiment measured, and `write`, which puts them in
//! `results.json` and renders them as a Markdown summary (`markdown`) beside SVG charts
//! (`charts`).

pub mod charts;
mod markdown;

pub use markdown::percent;

use std::path::Path;

use anyhow::Context as _;

use serde::{Deserialize, Serialize};

use crate::{
    page::PageReport,
    results::{FailoverResult, HerdResult, SteadyResult},
    stats::Summary,
};

/// One server at one steady-load size, measured with one client.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SteadyRow {
    /// `wstime`, or `node` for the post's server.
    pub server: String,
    /// What held the connections: `loadgen`, or `node-ws` for the independent client.
    pub client: String,
    pub connections: usize,
    pub load: SteadyResult,
    /// Connects per second while opening the connections.
    pub connect_rate: f64,
    /// (RSS loaded − RSS idle) ÷ connections, in KB (1000 bytes).
    pub rss_per_connection_kb: f64,
    pub rss_idle_mb: f64,
    /// Server CPU per tick over the steady window, in µs.
    pub user_us_per_tick: f64,
    pub kernel_us_per_tick: f64,
    /// The share of the machine's CPU time taken by the hypervisor during the window, in %:
    /// when it is high, so are CPU per tick and lateness, whatever the server does.
    #[serde(default)]
    pub stolen_percent: f64,
    /// The share of the window during which some task on the machine waited for a CPU
    /// (`/proc/pressure/cpu`), in %; `None` without pressure stall information. It counts
    /// what steal does not: the machine's own other processes. When it is high the clients
    /// read their ticks late, whatever the server does (see docs/benchmarks.md).
    #[serde(default)]
    pub cpu_pressure_percent: Option<f64>,
}

/// One failover experiment, measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FailoverRow {
    /// `SIGKILL` or `SIGTERM`.
    pub signal: String,
    pub result: FailoverResult,
    pub gap_ms: Summary,
    /// The most reconnects the surviving instances took in any one second.
    pub peak_reconnects_per_second: usize,
}

/// One reconnect herd on one server, measured (see [`crate::herd`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HerdRow {
    /// `wstime`, or `node` for the post's server.
    pub server: String,
    /// Where the server kept its sessions: `memory` or `redis`.
    pub sessions: String,
    /// How the clients came back: `immediate`, or `page` (its retry policy).
    pub retry: String,
    pub herd: HerdResult,
    /// What the clients that stayed connected saw from the drop on.
    pub bystanders: SteadyResult,
    /// Handshakes completed per second, from the drop to the last one.
    pub handshakes_per_second_mean: f64,
    /// The most handshakes completed in any one second.
    pub handshakes_per_second_peak: usize,
    /// The server's CPU time (user and kernel) while the herd was watched, in seconds.
    pub server_cpu_secs: f64,
    /// wstime's mean session open during the watch, in ms, from its `/metrics` (`None` for
    /// the post's server, which has no store).
    pub store_open_ms_mean: Option<f64>,
    /// The share of the watch during which some task on the machine waited for a CPU, in %
    /// (as [`SteadyRow::cpu_pressure_percent`]): the bystanders' lateness is only
    /// comparable between runs at similar pressure.
    #[serde(default)]
    pub cpu_pressure_percent: Option<f64>,
}

impl HerdRow {
    /// The row of a herd on `server`, before the server's own figures.
    pub fn new(
        server: &str,
        sessions: &str,
        retry: &str,
        herd: HerdResult,
        bystanders: SteadyResult,
    ) -> Self {
        let buckets = &herd.handshakes_per_100ms;
        let secs = buckets.len() as f64 / 10.0;
        Self {
            server: server.to_owned(),
            sessions: sessions.to_owned(),
            retry: retry.to_owned(),
            handshakes_per_second_mean: buckets.iter().sum::<usize>() as f64 / secs.max(0.1),
            handshakes_per_second_peak: peak_per_second(buckets),
            herd,
            bystanders,
            server_cpu_secs: 0.0,
            store_open_ms_mean: None,
            cpu_pressure_percent: None,
        }
    }

    /// With the server's CPU seconds during the watch, its session opens' (count, total
    /// seconds) before and after it, and the machine's CPU pressure meanwhile.
    pub fn with_server(
        self,
        cpu_secs: f64,
        opens: Option<((f64, f64), (f64, f64))>,
        cpu_pressure_percent: Option<f64>,
    ) -> Self {
        let mean = opens.and_then(|((count_before, sum_before), (count, sum))| {
            (count > count_before).then(|| (sum - sum_before) / (count - count_before) * 1000.0)
        });
        Self { server_cpu_secs: cpu_secs, store_open_ms_mean: mean, cpu_pressure_percent, ..self }
    }
}

/// The most events in any one second of 100 ms buckets: a sliding window of ten (or
/// everything, if shorter).
fn peak_per_second(buckets: &[usize]) -> usize {
    if buckets.len() >= 10 {
        buckets.windows(10).map(|w| w.iter().sum()).max().unwrap_or(0)
    } else {
        buckets.iter().sum()
    }
}

/// Write calls per tick, from `strace -f` on a small run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SyscallRow {
    pub connections: usize,
    pub ticks: u64,
    /// Write-family calls on the server's TCP sockets: what the ticks cost.
    pub socket_writes: u64,
    /// Every write-family call, by call and what it wrote to (`sendto TCP`, `write eventfd`).
    pub write_calls: Vec<(String, u64)>,
    /// For each tick, how many ticks the server sent in the same millisecond.
    #[serde(default)]
    pub crowding: crate::stats::Summary,
}

/// The scale-out run, measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScaleOutRow {
    pub clients: usize,
    /// Seconds since the third instance started, and each instance's connections then.
    pub samples: Vec<(f64, [u64; 3])>,
    /// When every instance was first within
    /// [`BALANCED_WITHIN`](crate::scale_out::BALANCED_WITHIN) of the mean (seconds after the
    /// third started); `None` if never within the watch.
    pub balanced_after_secs: Option<f64>,
    /// The highest load any instance reported while watched, and the threshold it stays
    /// under to be healthy.
    pub peak_load: f64,
    pub healthy_below: f64,
    /// The clients' view: those moved (`affected`), resumed or restarted, and their gaps.
    pub moved: FailoverResult,
    pub gap_ms: Summary,
}

/// Everything a `make bench` run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub machine: String,
    pub date: String,
    /// The Node.js that ran the post's server and the independent client; `None` when the
    /// machine has none and wstime was measured alone.
    pub node: Option<String>,
    pub steady: Vec<SteadyRow>,
    pub syscalls: Option<SyscallRow>,
    /// Interleaved runs of wstime with and without its per-tick metrics, at one size.
    #[serde(default)]
    pub metrics_cost: Vec<SteadyRow>,
    pub failover: Vec<FailoverRow>,
    /// The scale-out run, when there was one.
    #[serde(default)]
    pub scale_out: Option<ScaleOutRow>,
    /// The page in Chromium, wstime's and the post's, when it was measured.
    #[serde(default)]
    pub page: Option<PageReport>,
    /// The reconnect herds, when they were measured.
    #[serde(default)]
    pub herd: Vec<HerdRow>,
}

impl FailoverRow {
    pub fn new(signal: &str, result: FailoverResult) -> Self {
        let peak = peak_per_second(&result.reconnects_per_100ms);
        Self {
            signal: signal.to_owned(),
            gap_ms: Summary::of(result.gap_ms.clone()),
            result,
            peak_reconnects_per_second: peak,
        }
    }
}

/// The report `results.json` in `dir` holds, if there is one: `--only` measures some parts
/// and keeps the others' figures from it.
pub fn read(dir: &Path) -> anyhow::Result<Option<Report>> {
    let path = dir.join("results.json");
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .with_context(|| format!("{} is not a report this bench can read", path.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error).with_context(|| format!("read {}", path.display())),
    }
}

/// Writes `report.md`, `results.json` and the charts into `dir`.
pub fn write(report: &Report, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("results.json"), serde_json::to_string_pretty(report)?)?;
    if !report.steady.is_empty() {
        charts::steady(report, dir)?;
    }
    if !report.failover.is_empty() {
        charts::failover(report, dir)?;
    }
    if let Some(row) = &report.scale_out {
        charts::scale_out(row, dir)?;
    }
    if !report.herd.is_empty() {
        charts::herd(&report.herd, dir)?;
    }
    std::fs::write(dir.join("report.md"), markdown::render(report))?;
    Ok(())
}

/// The client every size is measured with; the independent one runs at one size only.
const LOADGEN: &str = "loadgen";
