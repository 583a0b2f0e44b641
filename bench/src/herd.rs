//! A reconnect herd: one server holds 1,000 bystanders and 15,000 herd clients, each set in
//! one load generator process; at one moment every herd client closes its connection and
//! comes back with the same id, at once or as the page does. Measured: how long until all
//! tick again, handshakes per second, each client's time from its attempt to its first
//! tick, failures and count resets, and the bystanders' tick lateness meanwhile; on wstime
//! with sessions in memory and in Redis, and on the post's Node server.

use std::time::Duration;

use anyhow::Context as _;
use wstime_cluster::{http, Redis};

use crate::{
    generators,
    node::NodeParts,
    proc,
    report::{self, HerdRow},
    results::{HerdResult, SteadyResult},
    servers::Server,
    setup::Setup,
};

/// What to run.
pub struct Herd {
    /// Clients that drop and come back, in one generator process.
    pub clients: usize,
    /// Clients that stay connected through the herd and measure their ticks' lateness, in
    /// another.
    pub bystanders: usize,
    /// How long after the drop the clients are watched (and the bystanders measured).
    pub watch: Duration,
}

/// From the start signal to the drop: the bystanders' warm-up, every generator reading.
const LEAD_SECS: f64 = 3.0;

/// The page's two ways back, as `wstime-loadgen --herd` names them.
const RETRIES: [&str; 2] = ["immediate", "page"];

impl Herd {
    /// Each way back on wstime with sessions in memory, wstime with sessions in Redis and,
    /// with `node`, the post's server; each run on a fresh server.
    pub fn run(&self, setup: &Setup, node: Option<&NodeParts>) -> anyhow::Result<Vec<HerdRow>> {
        let redis = Redis::start(false).context("start Redis for the sessions")?;
        let mut in_redis = setup.wstime();
        in_redis.env.push(("REDIS_URL".into(), redis.url()));
        let subjects: Vec<(&str, Server)> =
            [("memory", Server::Wstime(setup.wstime())), ("redis", Server::Wstime(in_redis))]
                .into_iter()
                .collect();
        let peer = node.map(|n| ("memory", &n.peer));
        let mut rows = Vec::new();
        for (run, retry) in RETRIES.into_iter().enumerate() {
            let servers = subjects.iter().map(|(sessions, server)| (*sessions, server)).chain(peer);
            for (i, (sessions, server)) in servers.enumerate() {
                let prefix = format!("herd{run}{i}-");
                rows.push(self.measure(setup, server, sessions, retry, &prefix)?);
            }
        }
        Ok(rows)
    }

    /// One herd on a fresh `server` whose sessions are kept in `sessions`.
    fn measure(
        &self,
        setup: &Setup,
        server: &Server,
        sessions: &str,
        retry: &str,
        prefix: &str,
    ) -> anyhow::Result<HerdRow> {
        let instance = server.start()?;
        let pid = instance.process.pid();
        let url = server.url(instance.port);
        let loadgen = setup.loadgen();
        let (lead, watch) = (LEAD_SECS.to_string(), self.watch.as_secs_f64().to_string());
        let timing = ["--start-on-signal", "--warmup-secs", &lead, "--hold-secs", &watch];
        let (mut bystanders, _) = generators::start_in(
            &loadgen,
            &url,
            self.bystanders,
            1,
            &format!("{prefix}bystander"),
            &timing,
        )?;
        let herd_flags = [&timing[..], &["--herd", retry]].concat();
        let (mut herd, _) =
            generators::start_in(&loadgen, &url, self.clients, 1, prefix, &herd_flags)?;
        for process in bystanders.iter_mut().chain(&mut herd) {
            process.signal("USR1")?;
        }
        std::thread::sleep(Duration::from_secs_f64(LEAD_SECS));
        let (cpu_before, opens_before) = (proc::cpu_time(pid)?, store_opens(server, instance.port));
        let pressure_before = proc::cpu_pressure_us();
        std::thread::sleep(self.watch);
        let (cpu_after, opens_after) = (proc::cpu_time(pid)?, store_opens(server, instance.port));
        let pressure = pressure_before.zip(proc::cpu_pressure_us()).map(|(before, after)| {
            after.saturating_sub(before) as f64 / (self.watch.as_secs_f64() * 1e6) * 100.0
        });
        let limit = self.watch + Duration::from_secs(60);
        let result: HerdResult = generators::result(&mut herd[0], limit)?;
        let seen: SteadyResult = generators::result(&mut bystanders[0], limit)?;
        let cpu_us = (cpu_after.user_us + cpu_after.kernel_us)
            .saturating_sub(cpu_before.user_us + cpu_before.kernel_us);
        let row = HerdRow::new(server.label(), sessions, retry, result, seen).with_server(
            cpu_us as f64 / 1e6,
            opens_before.zip(opens_after),
            pressure,
        );
        eprintln!(
            "wstime-bench: herd on {} (sessions in {sessions}, {retry}): {} of {} back, all \
             ticking after {}, {:.0} handshakes/s (peak {}/s), first tick p99 {:.0} ms from \
             the attempt, {} failed attempts, {} count resets; bystanders p99 {:.1} ms, max \
             {:.1} ms by interval; CPU pressure {}",
            row.server,
            row.herd.rejoined,
            row.herd.clients,
            row.herd.all_ticking_ms.map_or("never".into(), |ms| format!("{ms:.0} ms")),
            row.handshakes_per_second_mean,
            row.handshakes_per_second_peak,
            row.herd.connect_to_tick_ms.p99,
            row.herd.failed_attempts,
            row.herd.count_resets,
            row.bystanders.lateness_ms.p99,
            row.bystanders.lateness_ms.max,
            report::percent(row.cpu_pressure_percent),
        );
        Ok(row)
    }
}

/// wstime's session opens so far: their count and total seconds, from its `/metrics`
/// (`None` for a server without them, or when it did not answer).
fn store_opens(server: &Server, port: u16) -> Option<(f64, f64)> {
    if !matches!(server, Server::Wstime(_)) {
        return None;
    }
    let page =
        http::request("GET", port, "/metrics", "text/plain", Duration::from_secs(10)).ok()?;
    let value = |series: &str| -> Option<f64> {
        let name =
            format!("wstime_store_operation_duration_seconds_{series}{{operation=\"open\"}} ");
        page.body.lines().find_map(|line| line.strip_prefix(name.as_str()))?.trim().parse().ok()
    };
    Some((value("count")?, value("sum")?))
}
