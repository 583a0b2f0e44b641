//! Running client processes: at most 8,000 connections each, spread over the loopback
//! addresses 127.0.0.2–9 (so the ephemeral ports go round), each saying `READY` once its
//! connections are open and `RESULT <json>` at the end.

use std::time::Duration;

use anyhow::Context as _;
use wstime_cluster::Supervised;

use crate::{
    clients::Client,
    results::{max_into, sum_into, FailoverResult},
};

/// Connections per generator process: far under its 20,000 open files.
pub const PER_GENERATOR: usize = 8_000;

/// Starts `client` processes for `connections` against `url`; waits until all report
/// READY, and returns them with the longest time one took to connect.
pub fn start(
    client: &Client,
    url: &str,
    connections: usize,
    prefix: &str,
    flags: &[&str],
) -> anyhow::Result<(Vec<Supervised>, f64)> {
    let count = connections.div_ceil(PER_GENERATOR).max(1);
    start_in(client, url, connections, count, prefix, flags)
}

/// [`start`] in `count` processes, whatever their share: for a client that must be one
/// process (the reconnect herd, whose every client comes back at one moment), which then
/// holds up to 16,000 sockets of its 20,000 open files.
pub fn start_in(
    client: &Client,
    url: &str,
    connections: usize,
    count: usize,
    prefix: &str,
    flags: &[&str],
) -> anyhow::Result<(Vec<Supervised>, f64)> {
    let sources: Vec<String> = (2..=9).map(|i| format!("127.0.0.{i}")).collect();
    let mut processes = Vec::new();
    for g in 0..count {
        let share = connections / count + usize::from(g < connections % count);
        let my_sources: Vec<&str> =
            sources.iter().skip(g).step_by(count).map(String::as_str).collect();
        let mut command = client.command();
        command
            .args(["--url", url, "--connections", &share.to_string()])
            .args(["--id-prefix", &format!("{prefix}{g}")])
            .args(["--source-ips", &my_sources.join(",")])
            .args(flags);
        let label = format!("{}{g}", client.label());
        processes.push(Supervised::spawn(&label, &mut command, false)?);
    }
    let mut connect_secs: f64 = 0.0;
    for process in &mut processes {
        let ready = process.wait_for_line("READY ", Duration::from_secs(180))?;
        connect_secs = connect_secs.max(ready.trim_start_matches("READY ").parse().unwrap_or(0.0));
    }
    Ok((processes, connect_secs))
}

/// Waits for a generator's RESULT line and parses it.
pub fn result<T: serde::de::DeserializeOwned>(
    process: &mut Supervised,
    limit: Duration,
) -> anyhow::Result<T> {
    let line = process.wait_for_line("RESULT ", limit)?;
    serde_json::from_str(line.trim_start_matches("RESULT ")).context("a generator's result")
}

/// Every `--failover` generator's result, merged.
pub fn failover_results(
    processes: &mut [Supervised],
    limit: Duration,
) -> anyhow::Result<FailoverResult> {
    let mut merged = FailoverResult::default();
    for process in processes {
        let part: FailoverResult = result(process, limit)?;
        merged.clients += part.clients;
        merged.connected += part.connected;
        merged.affected += part.affected;
        merged.gap_ms.extend(part.gap_ms);
        merged.resumed += part.resumed;
        merged.restarted += part.restarted;
        merged.gave_up += part.gave_up;
        sum_into(&mut merged.reconnects_per_100ms, &part.reconnects_per_100ms);
        merged.backwards += part.backwards;
        sum_into(&mut merged.ticks_per_second, &part.ticks_per_second);
        // Percentiles of separate runs cannot be merged exactly: the worst one's are kept.
        merged.lateness_ms = merged.lateness_ms.worst(&part.lateness_ms);
        max_into(&mut merged.worst_lateness_ms_per_second, &part.worst_lateness_ms_per_second);
    }
    Ok(merged)
}
