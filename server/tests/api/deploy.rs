//! The files in deploy/ are checked by the tools that will run them. (HAProxy's run in
//! front of real instances in the browser test, the discovery test and `make cluster`; the
//! alert rules in the Prometheus of the cluster test and `make cluster`.) The Kubernetes
//! manifests have a module of their own.

use std::{collections::BTreeSet, path::PathBuf, process::Command};

use clap::Parser as _;
use tokio_tungstenite::tungstenite::Message;
use wstime_cluster::Certificates;
use wstime_server::startup::STOP_AFTER_WINDOW;

use crate::helpers::{eventually, raw_upgrade, within, TestServer};

mod kubernetes;

fn deploy(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy").join(file)
}

#[test]
fn the_nginx_example_is_valid_nginx() {
    let dir = tempfile::tempdir().unwrap();
    let wrapper = dir.path().join("nginx.conf");
    let example = deploy("nginx.conf").canonicalize().expect("deploy/nginx.conf");
    std::fs::write(
        &wrapper,
        format!("events {{}}\nhttp {{\n    include {};\n}}\n", example.display()),
    )
    .unwrap();
    let output = Command::new("nginx")
        .arg("-t")
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&wrapper)
        .args(["-g", "pid nginx.pid; error_log stderr;"])
        .output()
        .expect("run nginx (make packages installs it)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("test is successful"), "{stderr}");
}

/// Checks `haproxy-common.cfg` followed by the file of servers `servers` with `haproxy -c`,
/// given `env` on top of the two addresses every file needs; warnings count as errors
/// (`-dW`), as does any diagnostic (`-dD`: a proxy taking its defaults ambiguously, …).
fn haproxy_check(servers: &str, env: &[(&str, &str)]) {
    let output = Command::new("haproxy")
        .args(["-c", "-dW", "-dD", "-f"])
        .arg(deploy("haproxy-common.cfg"))
        .arg("-f")
        .arg(deploy(servers))
        .env("WSTIME_LB_BIND", "127.0.0.1:1")
        .env("WSTIME_STATS_BIND", "127.0.0.1:2")
        .envs(env.iter().copied())
        .output()
        .expect("run haproxy (make packages installs it)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{servers}: {said}");
    let complaints: Vec<&str> = said
        .lines()
        .filter(|line| !line.contains("[NOTICE]") && !line.contains("is valid"))
        .collect();
    assert!(complaints.is_empty(), "{servers}: {complaints:?}");
}

#[test]
fn the_haproxy_config_is_valid_haproxy() {
    haproxy_check("haproxy.cfg", &[("WSTIME_NODE1", "127.0.0.1:3"), ("WSTIME_AGENT1", "4")]);
    // With TLS and the runtime API too: every branch of the shared file.
    let pem = Certificates::loopback().expect("a certificate");
    let pem = pem.haproxy_pem.to_str().expect("a UTF-8 path");
    let both = [
        ("WSTIME_NODE1", "127.0.0.1:3"),
        ("WSTIME_AGENT1", "4"),
        ("WSTIME_LB_CERT", pem),
        ("WSTIME_ADMIN_SOCKET", "/tmp/wstime-deploy-test.sock"),
    ];
    haproxy_check("haproxy.cfg", &both);
}

#[test]
fn the_dns_haproxy_config_is_valid_haproxy_with_and_without_its_optional_settings() {
    let required = [
        ("WSTIME_DNS_NAME", "wstime-headless.default.svc.cluster.local"),
        ("WSTIME_NODE_PORT", "8080"),
        ("WSTIME_AGENT_PORT", "9081"),
        ("WSTIME_INSTANCES_MAX", "16"),
    ];
    // Without WSTIME_DNS_SERVER it reads /etc/resolv.conf's nameservers.
    haproxy_check("haproxy-dns.cfg", &required);
    let optional = [("WSTIME_DNS_SERVER", "127.0.0.1:53"), ("WSTIME_DNS_HOLD_OBSOLETE", "1s")];
    haproxy_check("haproxy-dns.cfg", &[&required[..], &optional[..]].concat());
}

/// The lines of a configuration file that are not comments.
fn config_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(str::trim).filter(|line| !line.is_empty() && !line.starts_with('#'))
}

#[test]
fn the_haproxy_rules_are_in_one_file_and_each_file_of_servers_only_adds_servers() {
    // What a file of servers may hold: its backend, the servers, the DNS resolvers and
    // the conditions around them. Any rule (a check, a retry, a timeout) belongs in the
    // shared file, so the two ways of finding instances cannot drift apart.
    let allowed = [
        "backend wstime from wstime",
        "server ",
        "server-template ",
        ".if ",
        ".else",
        ".endif",
        "resolvers ",
        "nameserver ",
        "parse-resolv-conf",
        "accepted_payload_size ",
        "timeout resolve ",
        "timeout retry ",
        "resolve_retries ",
        "hold ",
    ];
    for file in ["haproxy.cfg", "haproxy-dns.cfg"] {
        let text = std::fs::read_to_string(deploy(file)).unwrap();
        for line in config_lines(&text) {
            assert!(
                allowed.iter().any(|start| line.starts_with(start)),
                "{file} holds {line:?}, which belongs in haproxy-common.cfg"
            );
        }
    }
    let common = std::fs::read_to_string(deploy("haproxy-common.cfg")).unwrap();
    for rule in ["http-check send", "agent-check", "send-proxy-v2", "retry-on", "redispatch"] {
        assert!(config_lines(&common).any(|line| line.contains(rule)), "{rule} is shared");
    }
    assert!(
        !config_lines(&common).any(|line| line.contains("shutdown-sessions")),
        "no server's sockets are cut when it is taken out"
    );
}

#[test]
fn every_haproxy_file_lists_the_environment_it_reads_at_its_top() {
    for file in ["haproxy-common.cfg", "haproxy.cfg", "haproxy-dns.cfg"] {
        let text = std::fs::read_to_string(deploy(file)).unwrap();
        let header: String = text.lines().take_while(|line| line.starts_with('#')).collect();
        let read: BTreeSet<&str> = config_lines(&text)
            .flat_map(|line| line.split("${").skip(1).chain(line.split("defined(").skip(1)))
            .filter_map(|rest| rest.split(['}', ')']).next())
            .collect();
        assert!(!read.is_empty(), "{file} reads no variable?");
        for name in read {
            // haproxy.cfg lists its nine as WSTIME_NODE1..9.
            let listed = name.trim_end_matches(|c: char| c.is_ascii_digit());
            assert!(header.contains(listed), "{file} reads {name} but its header does not say so");
        }
    }
}

#[test]
fn the_systemd_unit_sets_only_settings_the_server_knows() {
    let unit = std::fs::read_to_string(deploy("wstime@.service")).unwrap();
    let help = Command::new(env!("CARGO_BIN_EXE_wstime-server")).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let names: Vec<&str> = unit
        .lines()
        .filter_map(|line| line.strip_prefix("Environment="))
        .filter_map(|assignment| assignment.split_once('=').map(|(name, _)| name))
        .collect();
    assert!(names.len() >= 3, "{names:?}");
    for name in names {
        assert!(help.contains(&format!("[env: {name}=")), "{name} is not a wstime-server setting");
    }
    assert!(unit.contains("KillSignal=SIGTERM"), "SIGTERM starts the drain");
    // The unit keeps the default drain (5 s of grace, 5 of window).
    let defaults = wstime_server::Config::try_parse_from(["wstime-server"]).unwrap();
    let stop = defaults.drain_grace + defaults.drain_window + STOP_AFTER_WINDOW;
    let timeout: u64 = unit
        .lines()
        .find_map(|line| line.strip_prefix("TimeoutStopSec="))
        .and_then(|value| value.parse().ok())
        .expect("TimeoutStopSec= in whole seconds");
    assert!(
        std::time::Duration::from_secs(timeout) > stop,
        "TimeoutStopSec={timeout}: a stop with the default drain takes up to {stop:?}"
    );
}

/// Runs `promtool` with `args`, failing the test with its output unless it succeeds.
fn promtool(args: &[&std::ffi::OsStr]) -> String {
    let output = Command::new("promtool")
        .args(args)
        .output()
        .expect("run promtool (Debian's prometheus; make packages installs it)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool {args:?}:\n{said}");
    said
}

#[test]
fn the_alert_rules_are_valid_and_fire_when_their_tests_say() {
    let rules = deploy("prometheus-alerts.yml");
    let said = promtool(&["check".as_ref(), "rules".as_ref(), rules.as_os_str()]);
    assert!(said.contains("SUCCESS"), "{said}");
    let tests = deploy("prometheus-alerts.test.yml");
    promtool(&["test".as_ref(), "rules".as_ref(), tests.as_os_str()]);
}

/// Every query of the Grafana dashboard, with Grafana's variables replaced by what they
/// stand for at their widest: `$instance` by every instance, `$__rate_interval` by 1m.
fn dashboard_queries() -> Vec<String> {
    let text = std::fs::read_to_string(deploy("grafana-dashboard.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    fn collect(panels: &serde_json::Value, queries: &mut Vec<String>) {
        for panel in panels.as_array().into_iter().flatten() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"].as_str().expect("every target has an expr");
                queries.push(expr.replace("$__rate_interval", "1m").replace("$instance", ".*"));
            }
            collect(&panel["panels"], queries);
        }
    }
    let mut queries = Vec::new();
    collect(&dashboard["panels"], &mut queries);
    queries
}

#[test]
fn every_dashboard_query_is_valid_promql() {
    let queries = dashboard_queries();
    assert!(queries.len() >= 15, "{queries:?}");
    for query in &queries {
        assert!(!query.contains('$'), "a Grafana variable the test does not know: {query}");
    }
    // promtool checks PromQL only inside rule files: one recording rule per query.
    let rules: String = queries
        .iter()
        .enumerate()
        .map(|(i, query)| {
            let quoted = serde_json::Value::String(query.clone()).to_string();
            format!("      - record: dashboard_query_{i}\n        expr: {quoted}\n")
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard.rules.yml");
    std::fs::write(&file, format!("groups:\n  - name: dashboard\n    rules:\n{rules}")).unwrap();
    let said = promtool(&["check".as_ref(), "rules".as_ref(), file.as_os_str()]);
    assert!(said.contains(&format!("SUCCESS: {} rules found", queries.len())), "{said}");
}

/// The names of the series a scrape holds (`wstime_ticks_sent_total`, a histogram's
/// `_bucket`, `_sum` and `_count`, …): what a query can select.
fn series_names(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// The `wstime_…` names a text mentions.
fn wstime_names(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("wstime_"))
        .map(str::to_owned)
        .collect()
}

/// A scrape of a server that has seen one of everything: a session opened and resumed, a
/// refused upgrade, a close, store operations and store errors (its Redis is not there;
/// sessions fall back to memory). Labelled series appear only once something happened.
async fn scrape_of_everything() -> String {
    let dead = wstime_cluster::free_port().unwrap();
    let server =
        TestServer::builder().env("REDIS_URL", format!("redis://127.0.0.1:{dead}/0")).start();
    let mut client = server.connect("/?id=everything").await;
    client.next_tick().await;
    drop(client);
    eventually("the socket to go", || async { server.live_connections().await == 0 }).await;
    let mut client = server.connect("/?id=everything").await;
    client.next_tick().await;
    raw_upgrade(server.port, "/?id=a%20b", "websocket").await;
    client.send(Message::Text("x".repeat(5000).into())).await;
    client.expect_close().await;
    let scrape = || async {
        let request = awc::Client::default().get(server.http_url("/metrics"));
        let mut response = within("a scrape", request.send()).await.expect("GET /metrics");
        let body = within("the scrape body", response.body()).await.expect("a body");
        String::from_utf8(body.to_vec()).expect("UTF-8")
    };
    // The registry's first write to the missing Redis fails within its first refresh.
    eventually("a store error", || async { scrape().await.contains("wstime_store_errors_total") })
        .await;
    scrape().await
}

#[actix_web::test]
async fn the_dashboard_the_alerts_and_the_autoscaler_use_only_metrics_the_server_exposes() {
    let exposed = series_names(&scrape_of_everything().await);
    let families = ["wstime_sessions_opened_total", "wstime_store_errors_total"];
    assert!(families.iter().all(|name| exposed.contains(*name)), "{exposed:?}");
    for (file, text) in [
        ("grafana-dashboard.json", dashboard_queries().join("\n")),
        (
            "prometheus-alerts.yml",
            std::fs::read_to_string(deploy("prometheus-alerts.yml")).unwrap(),
        ),
    ] {
        let used = wstime_names(&text);
        assert!(used.len() >= 10, "{file} uses {used:?}");
        let unknown: Vec<_> = used.difference(&exposed).collect();
        assert!(unknown.is_empty(), "{file} uses {unknown:?}, which /metrics does not expose");
    }
    let scaled_on = kubernetes::autoscaler_metrics();
    assert!(!scaled_on.is_empty());
    let unknown: Vec<_> = scaled_on.difference(&exposed).collect();
    assert!(unknown.is_empty(), "the autoscaler reads {unknown:?}, which /metrics does not expose");
}
