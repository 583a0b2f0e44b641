//! The `wstime-cluster` command: start real instances (with Redis and HAProxy) on loopback
//! and keep them running (`up`), or run a command against them (`exec`); and, from another
//! terminal, look at (`status`), signal (`kill`), restart (`restart`, `roll`) or stop
//! (`down`) a running one.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _};
use clap::{Args, Parser, Subcommand};
use serde::{Deserialize, Serialize};
use wstime_cluster::{
    cluster::{node_name, PrometheusSpec},
    control, http,
    roll::RollReport,
    Cluster, ClusterSpec, ClusterStatus, Discovery, HaProxySpec, InstanceSpec, RedisSetup,
};

#[derive(Debug, Parser)]
#[command(name = "wstime-cluster", version, about)]
struct Cli {
    /// Where `up` records how to reach it, for `status`, `kill` and `down`.
    #[arg(long, global = true, default_value = "target/wstime-cluster.json")]
    state_file: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start a cluster and keep it running until Ctrl-C (or `wstime-cluster down`).
    Up {
        #[command(flatten)]
        options: Options,
    },
    /// Start a cluster, run COMMAND with WSTIME_CONTROL_URL set, stop the cluster, and exit
    /// with COMMAND's status.
    Exec {
        #[command(flatten)]
        options: Options,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Show the running cluster: each instance's health and connections as the instances'
    /// registry (`GET /cluster`) lists them, and HAProxy's state.
    Status,
    /// Send a signal to one instance of the running cluster.
    Kill {
        /// The instance, as HAProxy names it: 1 for node1, …
        node: usize,
        /// KILL (a crash), TERM (a graceful drain), INT, STOP (a hang) or CONT.
        #[arg(long, default_value = "KILL")]
        signal: String,
    },
    /// Start a new process (a new name) in place of an instance, on the same port.
    Restart {
        /// The instance, as HAProxy names it: 1 for node1, …
        node: usize,
    },
    /// Drain and replace every instance in turn, each once the last replacement is up in
    /// HAProxy (with a standby slot, each replacement starts before its old instance
    /// drains), and say how many clients moved and how long they were away.
    Roll {
        /// Leave the instances waiting their turn in HAProxy's rotation, as a plain
        /// Kubernetes rolling update does, instead of cordoning them once the first
        /// replacement is up (to measure what the cordon saves).
        #[arg(long)]
        no_cordon: bool,
    },
    /// Stop the running cluster and everything it started.
    Down,
}

#[derive(Debug, Args)]
struct Options {
    /// How many wstime-server instances to start.
    #[arg(long, default_value_t = 3)]
    instances: usize,
    /// How many more HAProxy knows but that start only when restarted (`restart N`):
    /// a scale-out to watch the cluster rebalance.
    #[arg(long, default_value_t = 0)]
    standby: usize,
    /// The wstime-server binary.
    #[arg(long, default_value = "target/release/wstime-server")]
    server_bin: PathBuf,
    /// The built page, passed to every instance as STATIC_DIR.
    #[arg(long, default_value = "dist")]
    static_dir: PathBuf,
    /// Share sessions through Redis: `--redis` (or `--redis single`) starts one
    /// redis-server; `--redis sentinel` a master, a replica and three sentinels (kill the
    /// master by hand to watch a failover); `--redis cluster` a Redis Cluster of three masters.
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "single")]
    redis: Option<RedisSetup>,
    /// Put HAProxy in front of the instances, running this file of servers
    /// (`deploy/haproxy.cfg`) after `haproxy-common.cfg` beside it.
    #[arg(long, value_name = "CONFIG")]
    haproxy: Option<PathBuf>,
    /// How HAProxy finds the instances: `static`, listed by address in its configuration
    /// (`deploy/haproxy.cfg`); or `dns`, the A records of one name (`deploy/haproxy-dns.cfg`),
    /// which a dnsmasq started here answers, each instance on a loopback address of its own
    /// (127.0.0.11, .12, …) and all on one port. A record comes when its instance listens and
    /// goes when it is killed or drained.
    #[arg(long, value_enum, default_value_t = Discovery::Static, requires = "haproxy")]
    discovery: Discovery,
    /// The port HAProxy listens on (0: any free port).
    #[arg(long, default_value_t = 0)]
    lb_port: u16,
    /// Scrape every instance each second with a real Prometheus (Debian's `prometheus`).
    #[arg(long)]
    prometheus: bool,
    /// A rule file for that Prometheus to evaluate (`deploy/prometheus-alerts.yml`).
    #[arg(long, value_name = "FILE", requires = "prometheus")]
    alert_rules: Option<PathBuf>,
    /// HAProxy serves HTTPS and WSS, with a certificate made at start for 127.0.0.1 (its
    /// CA is printed, to trust in a browser or pass to a client).
    #[arg(long, requires = "haproxy")]
    tls: bool,
    /// Extra environment for every instance, as NAME=VALUE (repeatable).
    #[arg(long = "env", value_name = "NAME=VALUE", value_parser = parse_env)]
    env: Vec<(String, String)>,
    /// Port of the control API on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    control_port: u16,
    /// Print every process's log, prefixed with its label.
    #[arg(long)]
    echo: bool,
}

/// How long a control request may take: signalling with TERM waits for the drain.
const CONTROL_LIMIT: Duration = Duration::from_secs(90);

/// How long a rolling restart may take: a drain and a start for each of up to nine.
const ROLL_LIMIT: Duration = Duration::from_secs(15 * 60);

/// What `up` writes to the state file.
#[derive(Debug, Serialize, Deserialize)]
struct State {
    pid: u32,
    control_port: u16,
}

fn parse_env(raw: &str) -> Result<(String, String), String> {
    raw.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{raw:?} is not NAME=VALUE"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up { options } => start(options, None, &cli.state_file),
        Command::Exec { options, command } => start(options, Some(command), &cli.state_file),
        Command::Status => status(&cli.state_file),
        Command::Kill { node, signal } => {
            post(&cli.state_file, &format!("/instances/{}/signal/{signal}", index(node)))
        }
        Command::Restart { node } => {
            post(&cli.state_file, &format!("/instances/{}/restart", index(node)))
        }
        Command::Roll { no_cordon } => roll(&cli.state_file, !no_cordon),
        Command::Down => down(&cli.state_file),
    };
    result.unwrap_or_else(|error| {
        eprintln!("wstime-cluster: {error:#}");
        ExitCode::FAILURE
    })
}

/// HAProxy's node numbers start at 1; the control API's indices at 0.
fn index(node: usize) -> usize {
    node.saturating_sub(1)
}

fn start(
    options: Options,
    command: Option<Vec<String>>,
    state_file: &Path,
) -> anyhow::Result<ExitCode> {
    actix_web::rt::System::new().block_on(run(options, command, state_file))
}

async fn run(
    options: Options,
    child: Option<Vec<String>>,
    state_file: &Path,
) -> anyhow::Result<ExitCode> {
    let spec = ClusterSpec {
        instance: InstanceSpec {
            binary: options.server_bin.clone(),
            static_dir: options.static_dir.clone(),
            env: options.env.clone(),
            echo: options.echo,
        },
        instances: options.instances,
        standby: options.standby,
        redis: options.redis,
        haproxy: options.haproxy.clone().map(|config| HaProxySpec {
            config,
            port: options.lb_port,
            tls: options.tls,
            discovery: options.discovery,
            env: Vec::new(),
        }),
        prometheus: options
            .prometheus
            .then(|| PrometheusSpec { rules: options.alert_rules.clone() }),
    };
    let cluster = actix_web::web::block(move || Cluster::start(spec)).await??;
    if let Some(certificate) = cluster.certificate() {
        println!(
            "TLS: HAProxy's certificate is signed by the CA in {} (trust it in your browser \
             or client); its key's SPKI SHA-256 is {}",
            certificate.ca.display(),
            certificate.spki_sha256
        );
    }
    let cluster = Arc::new(Mutex::new(cluster));
    let listener = std::net::TcpListener::bind(("127.0.0.1", options.control_port))
        .context("cannot bind the control API's port")?;
    let control_port = listener.local_addr()?.port();
    let server = control::serve(Arc::clone(&cluster), listener)?;
    let server_handle = server.handle();
    actix_web::rt::spawn(server);
    let summary = {
        let mut cluster = cluster.lock().unwrap_or_else(|e| e.into_inner());
        cluster.status()
    };
    print_status(&summary);

    let code = match child {
        Some(command) => {
            let status = tokio::process::Command::new(&command[0])
                .args(&command[1..])
                .env("WSTIME_CONTROL_URL", format!("http://127.0.0.1:{control_port}"))
                .status()
                .await
                .with_context(|| format!("cannot run {:?}", command[0]))?;
            ExitCode::from(status.code().map_or(1, |c| u8::try_from(c).unwrap_or(1)))
        }
        None => {
            let state = State { pid: std::process::id(), control_port };
            if let Some(dir) = state_file.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(state_file, serde_json::to_string(&state)?)?;
            match &summary.balancer {
                Some(url) => println!("\nOpen {url} and press Connect."),
                None => println!("\nThe cluster is running."),
            }
            if let Some(url) = &summary.prometheus {
                println!("Watch it in Prometheus: {}", graph_link(url, CONNECTIONS_BY_NODE));
            }
            println!(
                "Status: make cluster-status · kill one: make cluster-kill NODE=1 SIGNAL=KILL \
                 · stop: Ctrl-C or make cluster-down"
            );
            if options.redis == Some(RedisSetup::Sentinel) {
                println!(
                    "Fail Redis over: kill -KILL <pid of the master above>; the sentinels \
                     promote the replica within seconds (make cluster-status shows it)"
                );
            }
            if options.discovery == Discovery::Dns {
                println!(
                    "HAProxy finds the instances by DNS: a killed or drained one's record goes \
                     at once, and a restarted one's comes back once it listens"
                );
                if options.standby > 0 {
                    let node = options.instances + 1;
                    println!("Scale out: make cluster-restart NODE={node} starts a standby one");
                }
            }
            wait_for_stop().await?;
            let _ = std::fs::remove_file(state_file);
            ExitCode::SUCCESS
        }
    };
    server_handle.stop(false).await;
    cluster.lock().unwrap_or_else(|e| e.into_inner()).stop();
    eprintln!("wstime-cluster: stopped everything it started");
    Ok(code)
}

async fn wait_for_stop() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result?,
        _ = terminate.recv() => {}
    }
    Ok(())
}

fn read_state(state_file: &Path) -> anyhow::Result<State> {
    let text = std::fs::read_to_string(state_file).with_context(|| {
        format!(
            "no running cluster ({} is missing): start one with `make cluster`",
            state_file.display()
        )
    })?;
    Ok(serde_json::from_str(&text)?)
}

fn status(state_file: &Path) -> anyhow::Result<ExitCode> {
    let state = read_state(state_file)?;
    let response =
        http::request("GET", state.control_port, "/cluster", "application/json", CONTROL_LIMIT)?;
    print_status(&serde_json::from_str(&response.body)?);
    Ok(ExitCode::SUCCESS)
}

/// The query `make cluster` links to: what a failover looks like at a glance.
const CONNECTIONS_BY_NODE: &str = "sum by (node) (wstime_connections)";

/// A link to Prometheus's graph page showing `query` over the last five minutes.
fn graph_link(prometheus: &str, query: &str) -> String {
    let parameters = form_urlencoded::Serializer::new(String::new())
        .append_pair("g0.expr", query)
        .append_pair("g0.tab", "0")
        .append_pair("g0.range_input", "5m")
        .finish();
    format!("{prometheus}graph?{parameters}")
}

fn print_status(status: &ClusterStatus) {
    if let Some(url) = &status.balancer {
        println!(
            "load balancer  {url}  (HAProxy status page: {})",
            status.balancer_stats.as_deref().unwrap_or("-")
        );
    }
    if let Some(url) = &status.prometheus {
        println!("prometheus     {url}  (scrapes every instance each second)");
    }
    if let Some(url) = &status.redis {
        println!("redis          {url}");
    }
    if let Some(dns) = &status.dns {
        let records: Vec<String> = dns.records.iter().map(ToString::to_string).collect();
        println!(
            "dns            {} at {} (dnsmasq): {}",
            dns.name,
            dns.server,
            if records.is_empty() { "no records".to_owned() } else { records.join(" ") }
        );
    }
    for process in &status.redis_processes {
        let keys = process.keys.map_or_else(String::new, |keys| format!(", {keys} keys"));
        println!(
            "  {:<11}  127.0.0.1:{:<6} pid {:<8} {}{keys}",
            process.label,
            process.port,
            process.pid.map_or("-".into(), |pid| pid.to_string()),
            process.role,
        );
    }
    println!(
        "{:<6} {:<24} {:<16} {:<8} {:<22} {:>11} {:>6} haproxy",
        "node", "name", "address", "pid", "health", "connections", "load"
    );
    for instance in &status.instances {
        let info = &instance.info;
        let entry = instance.registered.as_ref();
        let health = match (info.running, entry) {
            (false, _) => format!("stopped ({})", info.last_exit.as_deref().unwrap_or("?")),
            (true, Some(entry)) => entry.health.to_string(),
            (true, None) => "not in the registry".to_owned(),
        };
        let address = info.address().to_string();
        let row =
            Row { node: &node_name(info.index), name: info.name.as_deref(), address: &address };
        row.print(info.pid, &health, entry, instance.balancer.as_deref());
    }
    for entry in &status.unknown {
        // Its advertised address is a URL (`http://127.0.0.1:37425`).
        let address = entry.address.trim_start_matches("http://").trim_start_matches("https://");
        let health = format!("{} (registry only)", entry.health);
        let row = Row { node: "-", name: Some(&entry.name), address };
        row.print(None, &health, Some(entry), None);
    }
}

/// The columns that say which instance a row of the table is.
struct Row<'a> {
    node: &'a str,
    name: Option<&'a str>,
    address: &'a str,
}

impl Row<'_> {
    /// Prints the row, with the registry's numbers when it lists the instance.
    fn print(
        &self,
        pid: Option<u32>,
        health: &str,
        entry: Option<&wstime_protocol::InstanceEntry>,
        balancer: Option<&str>,
    ) {
        println!(
            "{:<6} {:<24} {:<16} {:<8} {:<22} {:>11} {:>6} {}",
            self.node,
            self.name.unwrap_or("-"),
            self.address,
            pid.map_or("-".into(), |p| p.to_string()),
            health,
            entry.map_or("-".into(), |e| e.connections.to_string()),
            entry.map_or("-".into(), |e| format!("{:.3}", e.load)),
            balancer.unwrap_or("-"),
        );
    }
}

fn post(state_file: &Path, path: &str) -> anyhow::Result<ExitCode> {
    let state = read_state(state_file)?;
    let response =
        http::request("POST", state.control_port, path, "application/json", CONTROL_LIMIT)?;
    if response.status != 200 {
        bail!("{}", response.body.trim());
    }
    println!("{}", response.body);
    status(state_file)
}

/// Runs a rolling restart on the running cluster and says what it did.
fn roll(state_file: &Path, cordon: bool) -> anyhow::Result<ExitCode> {
    let state = read_state(state_file)?;
    let path = format!("/roll?cordon={cordon}");
    let response =
        http::request("POST", state.control_port, &path, "application/json", ROLL_LIMIT)?;
    if response.status != 200 {
        bail!("{}", response.body.trim());
    }
    let report: RollReport = serde_json::from_str(&response.body).context("the roll's report")?;
    let how = match report.surge {
        true => "each replacement started before its old instance drained",
        false => "each instance drained, then restarted in its place (no standby slot)",
    };
    let how = match report.cordon {
        true => format!("{how}; the instances waiting their turn cordoned"),
        false => how.to_owned(),
    };
    let away = report.longest_away_secs.map_or("-".into(), |secs| format!("at most {secs} s"));
    println!(
        "rolled {} instances ({how}): {} clients, {} moves ({:.2} a client; 1.00 is the \
         least), longest away {away}",
        report.instances, report.clients, report.moves, report.moves_per_client
    );
    status(state_file)
}

/// Whether `pid` is a `wstime-cluster up` process (by its command line).
fn is_cluster_up(pid: u32) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
    let mut args = cmdline.split(|&byte| byte == 0).map(String::from_utf8_lossy);
    let program = args.next().unwrap_or_default();
    pid > 1 && program.ends_with("wstime-cluster") && args.any(|arg| arg == "up")
}

fn down(state_file: &Path) -> anyhow::Result<ExitCode> {
    let state = match read_state(state_file) {
        Ok(state) => state,
        Err(_) => {
            println!("no cluster is running");
            return Ok(ExitCode::SUCCESS);
        }
    };
    let proc = PathBuf::from(format!("/proc/{}", state.pid));
    if proc.exists() && !is_cluster_up(state.pid) {
        // The cluster died without removing its state, and the pid now names another
        // process: that one is not ours to signal.
        let _ = std::fs::remove_file(state_file);
        println!("no cluster is running (pid {} is not `wstime-cluster up`)", state.pid);
        return Ok(ExitCode::SUCCESS);
    }
    if proc.exists() {
        std::process::Command::new("kill").arg("-TERM").arg(state.pid.to_string()).status()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while proc.exists() {
            if Instant::now() >= deadline {
                bail!("the cluster (pid {}) is still running after 30 s", state.pid);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let _ = std::fs::remove_file(state_file);
    println!("the cluster is down");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn down_leaves_alone_a_process_that_took_a_dead_clusters_pid() {
        let mut stranger = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let state_file = dir.path().join("cluster.json");
        let state = State { pid: stranger.id(), control_port: 1 };
        std::fs::write(&state_file, serde_json::to_string(&state).unwrap()).unwrap();

        down(&state_file).unwrap();
        assert!(stranger.try_wait().unwrap().is_none(), "the stranger was not signalled");
        assert!(!state_file.exists(), "the stale state is gone");
        stranger.kill().unwrap();
        stranger.wait().unwrap();
    }
}
