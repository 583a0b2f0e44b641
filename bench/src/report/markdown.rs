//! The Markdown summary: one section per experiment, each table followed by its charts.

use std::fmt::Write as _;

use super::{HerdRow, Report, ScaleOutRow, SteadyRow, LOADGEN};
use crate::page::{median_and_range, PageReport, SLOW_BYTES_PER_SECOND, SLOW_LATENCY_MS};

/// The whole summary: each experiment's section, in the order they ran.
pub(super) fn render(report: &Report) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# wstime benchmark\n\n{} · {}\n", report.date, report.machine);
    if !report.steady.is_empty() {
        steady(report, &mut md);
    }
    if !report.metrics_cost.is_empty() {
        metrics_cost(&report.metrics_cost, &mut md);
    }
    if let Some(sys) = &report.syscalls {
        let calls: Vec<String> = sys.write_calls.iter().map(|(n, c)| format!("{n} {c}")).collect();
        let _ = writeln!(
            md,
            "## System calls\n\n`strace -f` on the server with {} connections: {} writes to TCP \
             sockets for {} ticks ({:.2} per tick). Every write-family call, by what it wrote \
             to: {}. When the ticks left (strace's clock): a tick shared its millisecond with \
             p50 {:.0}, p99 {:.0}, at most {:.0} ticks, the one included.\n",
            sys.connections,
            sys.socket_writes,
            sys.ticks,
            sys.socket_writes as f64 / sys.ticks.max(1) as f64,
            calls.join(", "),
            sys.crowding.p50,
            sys.crowding.p99,
            sys.crowding.max,
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
        scale_out(row, &mut md);
    }
    if let Some(page) = &report.page {
        page_load(page, &mut md);
    }
    if !report.herd.is_empty() {
        herd(&report.herd, &mut md);
    }
    md
}

/// The steady runs with the load generator, wstime over Node, then the independent client's
/// runs beside the load generator's at their size.
fn steady(report: &Report, md: &mut String) {
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
         it opened (a drift or a moved phase stays late); crowding, how many of a generator's \
         connections have their ticks arrive in the same millisecond of the second (see \
         docs/benchmarks.md).\n\n{}",
        table_head("server")
    );
    for row in &by_loadgen {
        let _ = writeln!(md, "| {} | {} |", row.server, row_cells(row));
    }
    ratios(&by_loadgen, md);
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
         crowding p50 / p99 | out of order | failed connects | dropped | CPU stolen by the host | \
         CPU pressure |\n|{}---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        "---|".repeat(columns)
    )
}

/// A steady row's figures, after the columns that say what was measured.
fn row_cells(row: &SteadyRow) -> String {
    let (i, s, c) = (row.load.lateness_ms, row.load.schedule_lateness_ms, row.load.crowding);
    // The independent client does not measure crowding.
    let crowding =
        if c.count == 0 { "–".to_owned() } else { format!("{:.0} / {:.0}", c.p50, c.p99) };
    format!(
        "{} | {:.0} | {:.1} KB | {:.2} µs | {:.2} µs | {:.1} / {:.1} / {:.1} ms | {:.1} / {:.1} / {:.1} ms | {crowding} | {} | {} | {} | {:.1}% | {}",
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
fn ratios(rows: &[&SteadyRow], md: &mut String) {
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

/// The tick's CPU with and without the per-tick metrics, run by run, then the means.
fn metrics_cost(rows: &[SteadyRow], md: &mut String) {
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

/// The scale-out run in one row, and its chart.
fn scale_out(row: &ScaleOutRow, md: &mut String) {
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

/// The reconnect herds, one row per server and way back, and their chart.
fn herd(rows: &[HerdRow], md: &mut String) {
    let first = &rows[0];
    let _ = writeln!(
        md,
        "## Reconnect herd: {} clients drop at once and come back to the same server\n\n\
         One server holds {} bystanders (one load generator) and the herd (another); at one \
         moment every herd client closes its socket and reconnects with the same id, at once \
         and again at once after a failure (`immediate`), or after the page's jittered delay \
         (`page`). *All back*: from the drop until the last client's first tick. *First tick*: \
         from the start of the attempt that succeeded to its first tick. *Resets*: clients whose \
         first count was not above their last before the drop (the post's server has no \
         sessions: every count restarts at 0). *Bystanders*: p99 / max lateness by interval of \
         the ticks they read from the drop to the end of the watch. *Server CPU*: its user and \
         kernel time in that window; *CPU pressure*, the share of it during which some task on \
         the machine waited for a core (see below: lateness is comparable only at similar \
         pressure).\n\n\
         | server | sessions | retry | back | all back | handshakes /s mean / peak | first tick \
         p50 / p99 / max | failed attempts | resets | bystanders p99 / max | server CPU | store \
         open mean | CPU pressure |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        first.herd.clients, first.bystanders.connections,
    );
    for row in rows {
        let (h, b) = (&row.herd, &row.bystanders.lateness_ms);
        let t = h.connect_to_tick_ms;
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} of {} | {} | {:.0} / {} | {:.0} / {:.0} / {:.0} ms | {} | {} | \
             {:.1} / {:.1} ms | {:.1} s | {} | {} |",
            row.server,
            row.sessions,
            row.retry,
            h.rejoined,
            h.clients,
            h.all_ticking_ms.map_or("never".into(), |ms| format!("{:.2} s", ms / 1000.0)),
            row.handshakes_per_second_mean,
            row.handshakes_per_second_peak,
            t.p50,
            t.p99,
            t.max,
            h.failed_attempts,
            h.count_resets,
            b.p99,
            b.max,
            row.server_cpu_secs,
            row.store_open_ms_mean.map_or("–".into(), |ms| format!("{ms:.3} ms")),
            percent(row.cpu_pressure_percent),
        );
    }
    let _ = writeln!(md, "\n![handshakes per second during the herd](herd.svg)\n");
}

/// The page row: wstime's page and the post's side by side, link by link, cold and warm.
fn page_load(page: &PageReport, md: &mut String) {
    let _ = writeln!(
        md,
        "## The page in Chromium: from navigation to the first tick shown\n\n\
         {}, headless; measured {}; {} runs per cell: the median, and the range over the runs. \
         Each page comes from its own server on 127.0.0.1: wstime's from one release \
         wstime-server (no load balancer: the page and its socket come from the instance that \
         serves it either way), the post's page (`bench/node-peer/public/index.html`) from the \
         post's `server.js`. Timed inside the page from the navigation's start: *clicked* is \
         when its Connect button, as soon as it is in the document and works, was clicked \
         (by a script Chromium runs before the page's own); *first tick* is when the first \
         `…you have been connected for N seconds` line entered the log. The post's server \
         sends its first tick a second after the socket opens, wstime's at once: that second \
         is in the post's figure. The slow link is Chrome's network emulation, {SLOW_LATENCY_MS} \
         ms round trip and {} kbit/s each way (a slow 3G phone); cold is the first load in a \
         fresh profile, warm the second load in the same one (see docs/benchmarks.md).\n\n\
         | link | cache | wstime: clicked | wstime: first tick | post's page: clicked | \
         post's page: first tick |\n|---|---|---:|---:|---:|---:|",
        page.browser,
        page.date,
        page.runs,
        SLOW_BYTES_PER_SECOND * 8 / 1000,
    );
    let cell = |samples: Option<&Vec<f64>>| match samples {
        Some(samples) if !samples.is_empty() => {
            let (median, low, high) = median_and_range(samples);
            format!("{median:.0} ms ({low:.0}–{high:.0})")
        }
        _ => "–".into(),
    };
    for wstime in page.rows.iter().filter(|r| r.page == "wstime") {
        let post = page
            .rows
            .iter()
            .find(|r| r.page == "node" && r.link == wstime.link && r.cache == wstime.cache);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            wstime.link,
            wstime.cache,
            cell(Some(&wstime.clicked_ms)),
            cell(Some(&wstime.first_tick_ms)),
            cell(post.map(|r| &r.clicked_ms)),
            cell(post.map(|r| &r.first_tick_ms)),
        );
    }
    if !page.rows.iter().any(|r| r.page == "node") {
        let _ = writeln!(md, "\n(no Node.js on this machine: the post's page was not measured)");
    }
    md.push('\n');
}
