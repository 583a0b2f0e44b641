//! The SVG charts, drawn with plotters: every one a line chart of the same size and style.

use std::path::Path;

use plotters::prelude::*;

use super::{HerdRow, Report, ScaleOutRow, SteadyRow, LOADGEN};

/// Memory per connection, CPU per tick and p99 lateness against connections, a line per
/// server.
pub(super) fn steady(report: &Report, dir: &Path) -> anyhow::Result<()> {
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

/// The failover runs' gaps (a CDF) and reconnects over time, a line per signal.
pub(super) fn failover(report: &Report, dir: &Path) -> anyhow::Result<()> {
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

/// Each instance's connections after the third starts.
pub(super) fn scale_out(row: &ScaleOutRow, dir: &Path) -> anyhow::Result<()> {
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

/// Handshakes per second after the drop, a line per server and way back.
pub(super) fn herd(rows: &[HerdRow], dir: &Path) -> anyhow::Result<()> {
    let colors = [BLUE, CYAN, GREEN, RED, MAGENTA, BLACK];
    let series: Vec<Series> = rows
        .iter()
        .zip(colors.into_iter().cycle())
        .map(|(row, color)| {
            let buckets = &row.herd.handshakes_per_100ms;
            let points =
                buckets.iter().enumerate().map(|(i, n)| (i as f64 / 10.0, *n as f64 * 10.0));
            let label = format!("{} ({}, {})", row.server, row.sessions, row.retry);
            (label, color, points.collect())
        })
        .collect();
    line_chart(
        &dir.join("herd.svg"),
        "Handshakes completed during the reconnect herd",
        "seconds after the drop",
        "handshakes per second (100 ms buckets)",
        &series,
    )
}

/// A line: its label, colour and points.
pub type Series = (String, RGBColor, Vec<(f64, f64)>);

/// A line chart of `series` against x: every chart of the bench and chaos reports.
pub fn line_chart(
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
