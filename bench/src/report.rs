//! The benchmark report: a Markdown summary and SVG charts, written side by side.

use std::{fmt::Write as _, path::Path};

use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{
    results::{FailoverResult, SteadyResult},
    scale_out::ScaleOutRow,
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
    /// read their ticks late, whatever the server does (see the README).
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

/// Write calls per tick, from `strace -f` on a small run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SyscallRow {
    pub connections: usize,
    pub ticks: u64,
    /// Write-family calls on the server's TCP sockets: what the ticks cost.
    pub socket_writes: u64,
    /// Every write-family call, by call and what it wrote to (`sendto TCP`, `write eventfd`).
    pub write_calls: Vec<(String, u64)>,
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
}

impl FailoverRow {
    pub fn new(signal: &str, result: FailoverResult) -> Self {
        // A sliding one-second window over the 100 ms buckets (or everything, if shorter).
        let buckets = &result.reconnects_per_100ms;
        let peak = if buckets.len() >= 10 {
            buckets.windows(10).map(|w| w.iter().sum()).max().unwrap_or(0)
        } else {
            buckets.iter().sum()
        };
        Self {
            signal: signal.to_owned(),
            gap_ms: Summary::of(result.gap_ms.clone()),
            result,
            peak_reconnects_per_second: peak,
        }
    }
}

/// Writes `report.md`, `results.json` and the charts into `dir`.
pub fn write(report: &Report, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("results.json"), serde_json::to_string_pretty(report)?)?;
    if !report.steady.is_empty() {
        steady_charts(report, dir)?;
    }
    if !report.failover.is_empty() {
        failover_charts(report, dir)?;
    }
    if let Some(row) = &report.scale_out {
        scale_out_chart(row, dir)?;
    }
    std::fs::write(dir.join("report.md"), markdown(report))?;
    Ok(())
}

fn markdown(report: &Report) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# wstime benchmark\n\n{} · {}\n", report.date, report.machine);
    if !report.steady.is_empty() {
        steady_markdown(report, &mut md);
    }
    if !report.metrics_cost.is_empty() {
        metrics_cost_markdown(&report.metrics_cost, &mut md);
    }
    if let Some(sys) = &report.syscalls {
        let calls: Vec<String> = sys.write_calls.iter().map(|(n, c)| format!("{n} {c}")).collect();
        let _ = writeln!(
            md,
            "## System calls\n\n`strace -f` on the server with {} connections: {} writes to TCP \
             sockets for {} ticks ({:.2} per tick). Every write-family call, by what it wrote \
             to: {}.\n",
            sys.connections,
            sys.socket_writes,
            sys.ticks,
            sys.socket_writes as f64 / sys.ticks.max(1) as f64,
            calls.join(", ")
        );
    }
    if !report.failover.is_empty() {
        let _ = writeln!(
            md,
            "## Failover: 3 instances + Redis + HAProxy, one instance lost\n\n\
             | signal | clients | affected | gap p50 / p99 / max | resumed | restarted from 0 | gave up | \
             peak reconnects /s |\n|---|---:|---:|---:|---:|---:|---:|---:|"
        );
        for row in &report.failover {
            let g = row.gap_ms;
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.0} / {:.0} / {:.0} ms | {} | {} | {} | {} |",
                row.signal,
                row.result.clients,
                row.result.affected,
                g.p50,
                g.p99,
                g.max,
                row.result.resumed,
                row.result.restarted,
                row.result.gave_up,
                row.peak_reconnects_per_second,
            );
        }
        let _ = writeln!(
            md,
            "\n![failover gaps](failover-gaps.svg) ![reconnects over time](failover-herd.svg)\n"
        );
    }
    if let Some(row) = &report.scale_out {
        scale_out_markdown(row, &mut md);
    }
    md
}

/// The tick's CPU with and without the per-tick metrics, run by run, then the means.
fn metrics_cost_markdown(rows: &[SteadyRow], md: &mut String) {
    let size = rows[0].connections;
    let _ = writeln!(
        md,
        "## What the metrics cost a tick, at {size} connections\n\n\
         The same server built with and without its per-tick metrics (`--no-default-features`: \
         no tick counter, no lateness histogram), run in turn so that the machine's drift \
         falls on both alike.\n\n\
         | run | server | user CPU per tick | kernel CPU per tick | CPU pressure |\n\
         |---:|---|---:|---:|---:|"
    );
    for (run, row) in rows.iter().enumerate() {
        let _ = writeln!(
            md,
            "| {} | {} | {:.2} µs | {:.2} µs | {} |",
            run + 1,
            row.server,
            row.user_us_per_tick,
            row.kernel_us_per_tick,
            percent(row.cpu_pressure_percent)
        );
    }
    let spread = |server: &str| {
        let users: Vec<f64> =
            rows.iter().filter(|r| r.server == server).map(|r| r.user_us_per_tick).collect();
        let mean = users.iter().sum::<f64>() / users.len().max(1) as f64;
        let (low, high) =
            users.iter().fold((f64::MAX, f64::MIN), |(l, h), &u| (l.min(u), h.max(u)));
        (mean, low, high)
    };
    let (with, with_low, with_high) = spread("wstime");
    let (without, without_low, without_high) = spread("wstime-without-tick-metrics");
    let _ = writeln!(
        md,
        "\nUser CPU per tick, mean (range): with the metrics {with:.2} µs \
         ({with_low:.2}–{with_high:.2}), without {without:.2} µs \
         ({without_low:.2}–{without_high:.2}): a difference of {:+.2} µs.\n",
        with - without
    );
}

fn scale_out_markdown(row: &ScaleOutRow, md: &mut String) {
    let balanced =
        row.balanced_after_secs.map_or("not within the run".into(), |s| format!("{s:.1} s"));
    let moved = &row.moved;
    let _ = writeln!(
        md,
        "## Scale-out: 3 instances behind HAProxy, {} clients on two, then the third starts\n\n\
         Rebalancing on (its defaults); every instance's connections read every 250 ms.\n\n\
         | clients | moved | every instance within ±10 % of the mean after | resumed | \
         restarted from 0 | gave up | longest gap | gap p50 / p99 | peak load (healthy below) |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|\n\
         | {} | {} | {balanced} | {} | {} | {} | {:.0} ms | {:.0} / {:.0} ms | {:.2} ({:.2}) |\n\n\
         ![connections per instance](scale-out.svg)\n",
        row.clients,
        row.clients,
        moved.affected,
        moved.resumed,
        moved.restarted,
        moved.gave_up,
        row.gap_ms.max,
        row.gap_ms.p50,
        row.gap_ms.p99,
        row.peak_load,
        row.healthy_below,
    );
}

fn scale_out_chart(row: &ScaleOutRow, dir: &Path) -> anyhow::Result<()> {
    let series: Vec<Series> = [RED, BLUE, GREEN]
        .into_iter()
        .enumerate()
        .map(|(i, color)| {
            let points = row.samples.iter().map(|(at, counts)| (*at, counts[i] as f64)).collect();
            (format!("node{}", i + 1), color, points)
        })
        .collect();
    line_chart(
        &dir.join("scale-out.svg"),
        "Connections per instance after the third starts",
        "seconds after the third instance started",
        "connections",
        &series,
    )
}

/// The client every size is measured with; the independent one runs at one size only.
const LOADGEN: &str = "loadgen";

fn steady_markdown(report: &Report, md: &mut String) {
    let by_loadgen: Vec<&SteadyRow> =
        report.steady.iter().filter(|r| r.client == LOADGEN).collect();
    let peer = match &report.node {
        Some(version) => format!(
            "and then on the post's Node server (`bench/node-peer`: its `server.js` as printed, \
             ws 7, express 4; Node {version})"
        ),
        None => "(no Node.js on this machine: the post's server was not measured)".into(),
    };
    let _ = writeln!(
        md,
        "## Steady load: one server, one tick per second per connection\n\n\
         Each size on a fresh release wstime-server {peer}, the connections held by our load \
         generator. Lateness by interval is each tick's interval less 1 s; by schedule, how much \
         later a tick came than its count says, counted from the connection's best tick since \
         it opened (a drift or a moved phase stays late; see the README).\n\n{}",
        table_head("server")
    );
    for row in &by_loadgen {
        let _ = writeln!(md, "| {} | {} |", row.server, row_cells(row));
    }
    ratios_markdown(&by_loadgen, md);
    let independent: Vec<&SteadyRow> =
        report.steady.iter().filter(|r| r.client != LOADGEN).collect();
    if let Some(first) = independent.first() {
        let size = first.connections;
        let _ = writeln!(
            md,
            "\n## The independent client beside the load generator, at {size} connections\n\n\
             `node-ws` is `bench/node-client/client.js` (Node's `ws` library): the same sockets, \
             sources and measuring window as the load generator, and no code in common with it.\n\n{}",
            table_head("server | client")
        );
        for server in ["wstime", "node"] {
            let loadgen_row = by_loadgen.iter().filter(|r| r.connections == size);
            for row in loadgen_row.chain(&independent) {
                if row.server == server {
                    let _ =
                        writeln!(md, "| {} | {} | {} |", row.server, row.client, row_cells(row));
                }
            }
        }
    }
    let _ = writeln!(
        md,
        "\n![memory per connection](memory.svg) ![CPU per tick](cpu.svg) ![lateness](lateness.svg)\n"
    );
}

/// The head of a steady-load table whose first columns are `first`.
fn table_head(first: &str) -> String {
    let columns = first.split(" | ").count();
    format!(
        "| {first} | connections | connect rate /s | RSS per connection | user CPU per tick | \
         kernel CPU per tick | lateness by interval p50 / p99 / max | by schedule p50 / p99 / max | \
         out of order | failed connects | dropped | CPU stolen by the host | CPU pressure |\n|{}---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        "---|".repeat(columns)
    )
}

/// A steady row's figures, after the columns that say what was measured.
fn row_cells(row: &SteadyRow) -> String {
    let (i, s) = (row.load.lateness_ms, row.load.schedule_lateness_ms);
    format!(
        "{} | {:.0} | {:.1} KB | {:.2} µs | {:.2} µs | {:.1} / {:.1} / {:.1} ms | {:.1} / {:.1} / {:.1} ms | {} | {} | {} | {:.1}% | {}",
        row.connections,
        row.connect_rate,
        row.rss_per_connection_kb,
        row.user_us_per_tick,
        row.kernel_us_per_tick,
        i.p50,
        i.p99,
        i.max,
        s.p50,
        s.p99,
        s.max,
        row.load.out_of_order,
        row.load.failed_connects,
        row.load.dropped,
        row.stolen_percent,
        percent(row.cpu_pressure_percent),
    )
}

/// A share in %, or `–` when it was not measured.
pub fn percent(share: Option<f64>) -> String {
    share.map_or_else(|| "–".into(), |p| format!("{p:.1}%"))
}

/// wstime's figures over Node's, size by size, where both were measured.
fn ratios_markdown(rows: &[&SteadyRow], md: &mut String) {
    let pairs: Vec<(&SteadyRow, &SteadyRow)> = rows
        .iter()
        .filter(|r| r.server == "wstime")
        .filter_map(|w| {
            let node =
                rows.iter().find(|n| n.server == "node" && n.connections == w.connections)?;
            Some((*w, *node))
        })
        .collect();
    if pairs.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "\n### wstime ÷ Node, same run, same load generator\n\n\
         | connections | RSS per connection | user CPU per tick | kernel CPU per tick | \
         p99 lateness by interval | p99 lateness by schedule |\n|---:|---:|---:|---:|---:|---:|"
    );
    let ratio = |w: f64, n: f64| if n > 0.0 { format!("{:.2}×", w / n) } else { "–".into() };
    for (w, n) in pairs {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            w.connections,
            ratio(w.rss_per_connection_kb, n.rss_per_connection_kb),
            ratio(w.user_us_per_tick, n.user_us_per_tick),
            ratio(w.kernel_us_per_tick, n.kernel_us_per_tick),
            ratio(w.load.lateness_ms.p99, n.load.lateness_ms.p99),
            ratio(w.load.schedule_lateness_ms.p99, n.load.schedule_lateness_ms.p99),
        );
    }
}

/// A line: its label, colour and points.
type Series = (String, RGBColor, Vec<(f64, f64)>);

/// A line chart of `series` against x.
fn line_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (640, 400)).into_drawing_area();
    root.fill(&WHITE)?;
    let points = series.iter().flat_map(|(_, _, p)| p.iter());
    let x_max = points.clone().map(|p| p.0).fold(1.0, f64::max) * 1.05;
    let y_max = points.map(|p| p.1).fold(0.1, f64::max) * 1.15;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    chart.configure_mesh().x_desc(x_label).y_desc(y_label).draw()?;
    for (name, color, data) in series {
        let color = *color;
        chart
            .draw_series(LineSeries::new(data.iter().copied(), color.stroke_width(2)))?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
        chart.draw_series(data.iter().map(|p| Circle::new(*p, 3, color.filled())))?;
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}

fn steady_charts(report: &Report, dir: &Path) -> anyhow::Result<()> {
    // The load generator measured every size; each server is a line.
    let by = |server: &str, f: fn(&SteadyRow) -> f64| -> Vec<(f64, f64)> {
        let rows = report.steady.iter().filter(|r| r.client == LOADGEN && r.server == server);
        rows.map(|r| (r.connections as f64, f(r))).collect()
    };
    let servers: Vec<(&str, [RGBColor; 2])> = [("wstime", [BLUE, CYAN]), ("node", [RED, MAGENTA])]
        .into_iter()
        .filter(|(server, _)| report.steady.iter().any(|r| r.server == *server))
        .collect();
    let lines = |name: &str, f: fn(&SteadyRow) -> f64, shade: usize| -> Vec<Series> {
        let label = |server: &str| format!("{server} {name}").trim_end().to_owned();
        servers
            .iter()
            .map(|(server, colors)| (label(server), colors[shade], by(server, f)))
            .collect()
    };
    line_chart(
        &dir.join("memory.svg"),
        "Server memory per connection",
        "connections",
        "KB resident per connection",
        &lines("", |r| r.rss_per_connection_kb, 0),
    )?;
    line_chart(
        &dir.join("cpu.svg"),
        "Server CPU per tick",
        "connections",
        "µs per tick",
        &[lines("user", |r| r.user_us_per_tick, 0), lines("kernel", |r| r.kernel_us_per_tick, 1)]
            .concat(),
    )?;
    line_chart(
        &dir.join("lateness.svg"),
        "p99 tick lateness (load generator)",
        "connections",
        "ms",
        &[
            lines("by interval", |r| r.load.lateness_ms.p99, 0),
            lines("by schedule", |r| r.load.schedule_lateness_ms.p99, 1),
        ]
        .concat(),
    )
}

fn failover_charts(report: &Report, dir: &Path) -> anyhow::Result<()> {
    let colors = [RED, BLUE];
    let cdfs: Vec<Series> = report
        .failover
        .iter()
        .zip(colors)
        .map(|(row, color)| {
            let mut gaps = row.result.gap_ms.clone();
            gaps.sort_by(f64::total_cmp);
            let n = gaps.len().max(1) as f64;
            let points = gaps.iter().enumerate().map(|(i, g)| (*g, (i + 1) as f64 / n)).collect();
            (row.signal.clone(), color, points)
        })
        .collect();
    line_chart(
        &dir.join("failover-gaps.svg"),
        "Time without ticks per affected client (CDF)",
        "ms",
        "fraction of clients",
        &cdfs,
    )?;
    let herds: Vec<Series> = report
        .failover
        .iter()
        .zip(colors)
        .map(|(row, color)| {
            let points = row
                .result
                .reconnects_per_100ms
                .iter()
                .enumerate()
                .map(|(i, n)| (i as f64 / 10.0, *n as f64 * 10.0))
                .collect();
            (row.signal.clone(), color, points)
        })
        .collect();
    line_chart(
        &dir.join("failover-herd.svg"),
        "Reconnects reaching the survivors",
        "seconds after the first loss",
        "reconnects per second (100 ms buckets)",
        &herds,
    )
}
