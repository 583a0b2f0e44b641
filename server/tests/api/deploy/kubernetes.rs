//! The Kubernetes manifests (deploy/kustomization.yaml and deploy/kubernetes/): valid
//! objects by the API's own schemas, and the figures that keep a drain whole agree with each
//! other and with the server: the grace period with the drain, the probes with the routes,
//! the autoscaler with the health threshold, HAProxy with the instances, the PrometheusRule
//! with deploy/prometheus-alerts.yml.
//!
//! No cluster runs here. `kubectl kustomize` renders the objects and `kubernetes-validate`
//! checks them against the schemas of Kubernetes 1.37 (`make test` installs what is
//! missing). It has no schemas for the Prometheus Operator's kinds (ServiceMonitor,
//! PrometheusRule): the tests below check those field by field.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use clap::{CommandFactory as _, FromArgMatches as _};
use serde_yaml::Value;
use wstime_server::{startup::STOP_AFTER_WINDOW, Config};

use super::deploy;
use crate::helpers::{within, TestServer};

/// The longest a socket's closing handshake may take once its 1012 is sent (the
/// connection's 2 s limit and a second of overrun).
const CLOSING_SECS: Duration = Duration::from_secs(3);

/// What the grace period must leave beyond the worst-case stop before the kubelet's SIGKILL.
const GRACE_MARGIN_SECS: u64 = 5;

/// The Prometheus job every rule of deploy/prometheus-alerts.yml selects.
const JOB: &str = "wstime";

/// The one object in `deploy/kubernetes/<file>`.
fn manifest(file: &str) -> Value {
    let path = deploy("kubernetes").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{file} is not one YAML object: {e}"))
}

fn seq(value: &Value) -> &[Value] {
    value.as_sequence().map_or(&[], Vec::as_slice)
}

fn text<'a>(value: &'a Value, what: &str) -> &'a str {
    value.as_str().unwrap_or_else(|| panic!("{what} is not a string: {value:?}"))
}

fn number(value: &Value, what: &str) -> u64 {
    value.as_u64().unwrap_or_else(|| panic!("{what} is not a whole number: {value:?}"))
}

/// The one container of a Deployment's pods.
fn container(deployment: &Value) -> &Value {
    let containers = seq(&deployment["spec"]["template"]["spec"]["containers"]);
    assert_eq!(containers.len(), 1, "one container a pod");
    &containers[0]
}

/// A Kubernetes quantity (`256Mi`, `8k`, `8000`) as a number.
fn quantity(value: &Value) -> f64 {
    let raw = match value {
        Value::Number(n) => return n.as_f64().expect("a number"),
        other => text(other, "a quantity"),
    };
    let units = [
        ("Ki", 1024f64),
        ("Mi", 1024f64.powi(2)),
        ("Gi", 1024f64.powi(3)),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
    ];
    let (digits, factor) = units
        .iter()
        .find_map(|(suffix, factor)| raw.strip_suffix(suffix).map(|digits| (digits, *factor)))
        .unwrap_or((raw, 1.0));
    digits.parse::<f64>().unwrap_or_else(|e| panic!("quantity {raw:?}: {e}")) * factor
}

/// The example pod the environment is filled in for (the downward API's fields).
fn pod_field(path: &str) -> &'static str {
    match path {
        "status.podIP" => "10.244.1.7",
        "metadata.name" => "wstime-5d9c8b7f6-x2x4q",
        "metadata.namespace" => "wstime",
        other => panic!("a downward API field the test does not know: {other}"),
    }
}

/// A value the kustomization's secretGenerator makes (`literals: [key=value]`).
fn generated_secret(name: &str, key: &str) -> String {
    let kustomization: Value =
        serde_yaml::from_str(&std::fs::read_to_string(deploy("kustomization.yaml")).unwrap())
            .expect("kustomization.yaml is YAML");
    let secret = seq(&kustomization["secretGenerator"])
        .iter()
        .find(|secret| secret["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no secretGenerator makes the Secret {name}"));
    seq(&secret["literals"])
        .iter()
        .filter_map(|literal| literal.as_str()?.split_once('='))
        .find_map(|(k, v)| (k == key).then(|| v.to_owned()))
        .unwrap_or_else(|| panic!("the Secret {name} has no literal {key}"))
}

/// A value as the kubelet expands it: `$(NAME)` of an earlier variable becomes its value
/// (and stays as it is otherwise), `$$` becomes `$`. With the names it refers to.
fn expand(value: &str, earlier: &[(String, String)]) -> (String, Vec<String>) {
    let (mut expanded, mut names) = (String::new(), Vec::new());
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        expanded.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(after) = after.strip_prefix('$') {
            expanded.push('$');
            rest = after;
        } else if let Some((name, after)) = after.strip_prefix('(').and_then(|s| s.split_once(')'))
        {
            match earlier.iter().find(|(earlier, _)| earlier == name) {
                Some((_, value)) => expanded.push_str(value),
                None => expanded.push_str(&format!("$({name})")),
            }
            names.push(name.to_owned());
            rest = after;
        } else {
            expanded.push('$');
            rest = after;
        }
    }
    expanded.push_str(rest);
    (expanded, names)
}

/// A container's environment as the kubelet gives it to the example pod: the downward
/// API's fields, the generated Secret's values, `$(NAME)` of an earlier variable expanded.
fn environment(container: &Value) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::new();
    for var in seq(&container["env"]) {
        let name = text(&var["name"], "an env name").to_owned();
        let value = if let Some(value) = var["value"].as_str() {
            expand(value, &env).0
        } else if let Some(field) = var["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            pod_field(field).to_owned()
        } else if let Some(secret) = var["valueFrom"]["secretKeyRef"].as_mapping() {
            let field = |key: &str| text(&secret[key], "a secretKeyRef field").to_owned();
            generated_secret(&field("name"), &field("key"))
        } else {
            panic!("{name}: an env source the test does not know: {var:?}");
        };
        env.push((name, value));
    }
    env
}

fn env_value<'a>(env: &'a [(String, String)], name: &str) -> &'a str {
    env.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("{name} is not set"))
}

/// The names a container's environment only defines for other values' `$(NAME)`.
fn helper_names(container: &Value) -> BTreeSet<String> {
    seq(&container["env"])
        .iter()
        .filter_map(|var| var["value"].as_str())
        .flat_map(|value| expand(value, &[]).1)
        .collect()
}

/// The configuration the server makes of the instances' environment, through its own
/// parsers and checks (as the binary reads it, with nothing of this process's environment).
fn instance_config() -> Config {
    let deployment = manifest("wstime-deployment.yaml");
    let container = container(&deployment);
    let helpers = helper_names(container);
    let settings = Config::command();
    let mut args = vec!["wstime-server".to_owned()];
    for (name, value) in environment(container) {
        let flag = settings
            .get_arguments()
            .find(|arg| arg.get_env().is_some_and(|env| env == name.as_str()))
            .and_then(|arg| arg.get_long());
        match flag {
            Some(long) => args.push(format!("--{long}={value}")),
            None => assert!(
                helpers.contains(&name),
                "{name} is set for the instances, but it is no setting of wstime-server \
                 (docs/configuration.md), nor used by one as $({name})"
            ),
        }
    }
    let matches = Config::command()
        .mut_args(|arg| arg.env(None::<&str>))
        .try_get_matches_from(&args)
        .unwrap_or_else(|e| panic!("the Deployment's settings: {e}"));
    Config::from_arg_matches(&matches)
        .and_then(Config::checked)
        .unwrap_or_else(|e| panic!("the Deployment's settings: {e}"))
}

/// The container port a probe's or a service's `port` names (a number, or a port's name).
fn container_port(container: &Value, port: &Value) -> u64 {
    match port.as_str() {
        Some(name) => seq(&container["ports"])
            .iter()
            .find(|p| p["name"].as_str() == Some(name))
            .map(|p| number(&p["containerPort"], "containerPort"))
            .unwrap_or_else(|| panic!("the container has no port named {name}")),
        None => number(port, "a port"),
    }
}

/// Runs a program, failing the test with its output (and `install`, when it is missing).
fn run(command: &mut Command, install: &str) -> String {
    let program = command.get_program().to_string_lossy().into_owned();
    let output = command.output().unwrap_or_else(|e| panic!("run {program}: {e}; {install}"));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let args: Vec<_> = command.get_args().collect();
    assert!(output.status.success(), "{program} {args:?}:\n{said}");
    said
}

/// What is applied: `kubectl kustomize deploy/`, as YAML documents.
fn kustomize() -> String {
    let output = Command::new("kubectl")
        .arg("kustomize")
        .arg(deploy(""))
        .output()
        .expect("run kubectl (make test installs it when it is missing: make k8s-tools)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "kubectl kustomize deploy/:\n{stderr}");
    String::from_utf8(output.stdout).expect("UTF-8")
}

/// What is applied, object by object.
fn rendered() -> Vec<Value> {
    kustomize()
        .split("\n---\n")
        .map(|document| serde_yaml::from_str(document).expect("kustomize's output is YAML"))
        .collect()
}

/// Where pip puts a user's programs (`pip install --user`), which may not be on PATH.
fn path_with_python_user_bin() -> std::ffi::OsString {
    let base = Command::new("python3").args(["-m", "site", "--user-base"]).output();
    let mut paths: Vec<PathBuf> =
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).collect();
    if let Ok(base) = base {
        paths.push(Path::new(String::from_utf8_lossy(&base.stdout).trim()).join("bin"));
    }
    std::env::join_paths(paths).expect("PATH")
}

#[test]
fn every_object_is_valid_by_the_kubernetes_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rendered.yaml");
    std::fs::write(&file, kustomize()).unwrap();
    let said = run(
        Command::new("kubernetes-validate")
            .args(["--strict", "--kubernetes-version", "1.37.0"])
            .arg(&file)
            .env("PATH", path_with_python_user_bin()),
        "make test installs it when it is missing (make k8s-tools: \
         pip install --user kubernetes-validate==1.37.0)",
    );
    // An object of a kind or version it has no schema for is only a warning: allow that
    // for the Prometheus Operator's kinds alone (checked by the tests below), so that a
    // Deployment with a mistyped apiVersion cannot pass unchecked.
    let mut checked = 0;
    for object in &rendered() {
        let kind = text(&object["kind"], "kind");
        let name = text(&object["metadata"]["name"], "metadata.name");
        let api = text(&object["apiVersion"], "apiVersion");
        if api == "monitoring.coreos.com/v1" && ["ServiceMonitor", "PrometheusRule"].contains(&kind)
        {
            continue;
        }
        let passed = format!("passed for resource {}/{name}", kind.to_lowercase());
        assert!(said.contains(&passed), "{kind} {name} ({api}) was not validated:\n{said}");
        checked += 1;
    }
    assert!(checked >= 9, "{checked} objects validated:\n{said}");
}

#[test]
fn the_instances_settings_are_settings_the_server_accepts() {
    let config = instance_config();
    assert_eq!(config.agent_port, Some(9081), "HAProxy's agent check needs AGENT_PORT");
    assert!(config.redis_url.is_some(), "instances share sessions through Redis");
    assert!(config.max_connections.is_some(), "MAX_CONNECTIONS, sized to the memory limit");
}

#[test]
fn the_grace_period_outlasts_the_drain() {
    let config = instance_config();
    let deployment = manifest("wstime-deployment.yaml");
    let grace = number(
        &deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"],
        "terminationGracePeriodSeconds",
    );
    let worst_stop = config.drain_grace + config.drain_window + STOP_AFTER_WINDOW;
    let needed = worst_stop + Duration::from_secs(GRACE_MARGIN_SECS);
    assert!(
        Duration::from_secs(grace) >= needed,
        "terminationGracePeriodSeconds {grace} s: a stop takes up to {worst_stop:?} \
         (DRAIN_GRACE_SECS + DRAIN_WINDOW_SECS + {STOP_AFTER_WINDOW:?}), and the margin \
         is {GRACE_MARGIN_SECS} s"
    );
}

#[actix_web::test]
async fn readiness_is_the_health_check_and_a_full_instance_stays_alive() {
    let config = instance_config();
    let deployment = manifest("wstime-deployment.yaml");
    let container = container(&deployment);
    let readiness = &container["readinessProbe"]["httpGet"];
    let health = wstime_protocol::health::PATH;
    assert_eq!(readiness["path"].as_str(), Some(health), "readiness is the health check");
    assert_eq!(container_port(container, &readiness["port"]), u64::from(config.port), "PORT");
    let mut alive = Vec::new();
    for probe in ["livenessProbe", "startupProbe"] {
        let check = &container[probe]["httpGet"];
        let path = text(&check["path"], probe);
        assert_ne!(path, wstime_protocol::health::PATH, "{probe} must not restart a full instance");
        assert_eq!(container_port(container, &check["port"]), u64::from(config.port), "{probe}");
        alive.push(path.to_owned());
    }

    // The same paths on a real instance: ready and alive while it has room; unready and
    // still alive once it is full.
    let server = TestServer::builder().env("MAX_CONNECTIONS", "1").start();
    let status = |path: String| {
        let request = awc::Client::default().get(server.http_url(&path));
        async move { within(&path, request.send()).await.expect("an answer").status().as_u16() }
    };
    let readiness = text(&readiness["path"], "readiness path").to_owned();
    assert_eq!(status(readiness.clone()).await, 200, "ready while it has room");
    let mut client = server.connect("/?id=fills-it").await;
    client.next_tick().await;
    assert_eq!(status(readiness).await, 503, "not ready once full");
    for path in alive {
        assert_eq!(status(path.clone()).await, 200, "{path}: a full instance is alive");
    }
}

/// The TTL of a Service's records in CoreDNS's kubernetes plugin (its `ttl` option's
/// default), the cluster DNS of kubeadm, kind and the managed offerings.
const CLUSTER_DNS_TTL_SECS: u64 = 5;

/// The seconds in an HAProxy duration such as `1s` or `500ms`.
fn haproxy_secs(duration: &str) -> f64 {
    match duration.strip_suffix("ms") {
        Some(ms) => ms.parse::<f64>().expect("milliseconds") / 1000.0,
        None => duration.trim_end_matches('s').parse().expect("seconds"),
    }
}

/// The word after `keyword` on the first line of deploy/`file` that holds it.
fn haproxy_setting(file: &str, keyword: &str) -> String {
    let text = std::fs::read_to_string(deploy(file)).unwrap();
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .find_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let at =
                words.windows(keyword.split(' ').count()).position(|w| w.join(" ") == keyword)?;
            words.get(at + keyword.split(' ').count()).map(|word| (*word).to_owned())
        })
        .unwrap_or_else(|| panic!("{file} sets no {keyword}"))
}

#[test]
fn the_autoscaler_owns_the_count_and_a_new_pod_is_in_haproxy_before_the_next_drains() {
    let deployment = manifest("wstime-deployment.yaml");
    assert!(
        deployment["spec"].get("replicas").is_none(),
        "the autoscaler owns the count: a `replicas` here is set back on every apply"
    );
    // The rollout drains the next old pod minReadySeconds after a new one is ready: by then
    // HAProxy must have it, through the cluster DNS's cache, its own next query, and the
    // health checks that put a server up.
    let ready_after = number(&deployment["spec"]["minReadySeconds"], "minReadySeconds");
    let query_every = haproxy_secs(&haproxy_setting("haproxy-dns.cfg", "hold valid"));
    let check_every = haproxy_secs(&haproxy_setting("haproxy-common.cfg", "inter"));
    let checks: f64 = haproxy_setting("haproxy-common.cfg", "rise").parse().expect("rise");
    let found_within = CLUSTER_DNS_TTL_SECS as f64 + query_every + checks * check_every;
    assert!(
        ready_after as f64 >= found_within,
        "minReadySeconds {ready_after}: HAProxy may take {found_within} s to send to a new pod"
    );
}

#[test]
fn a_rolling_update_never_runs_fewer_instances_than_asked_for() {
    let deployment = manifest("wstime-deployment.yaml");
    let strategy = &deployment["spec"]["strategy"];
    assert_eq!(strategy["type"].as_str(), Some("RollingUpdate"));
    assert_eq!(strategy["rollingUpdate"]["maxUnavailable"], Value::from(0), "maxUnavailable");
    assert_eq!(
        strategy["rollingUpdate"]["maxSurge"],
        Value::from(1),
        "one pod's clients at a time"
    );
    let budget = manifest("wstime-pdb.yaml");
    assert_eq!(budget["spec"]["maxUnavailable"], Value::from(1), "one eviction at a time");
    let pods = &deployment["spec"]["template"]["metadata"]["labels"];
    for selector in
        [&budget["spec"]["selector"]["matchLabels"], &deployment["spec"]["selector"]["matchLabels"]]
    {
        let selector = selector.as_mapping().expect("matchLabels");
        assert!(!selector.is_empty());
        for (key, value) in selector {
            assert_eq!(&pods[key], value, "the selector {key:?} must match the pods");
        }
    }
}

#[test]
fn the_autoscaler_aims_below_the_health_threshold_and_scales_in_one_drain_at_a_time() {
    let config = instance_config();
    let deployment = manifest("wstime-deployment.yaml");
    let hpa = manifest("wstime-hpa.yaml");
    let spec = &hpa["spec"];
    assert_eq!(spec["scaleTargetRef"]["kind"].as_str(), Some("Deployment"));
    assert_eq!(spec["scaleTargetRef"]["name"], deployment["metadata"]["name"]);

    let min = number(&spec["minReplicas"], "minReplicas") as f64;
    assert!(min >= 2.0, "one instance cannot take another's clients");
    let [metric] = seq(&spec["metrics"]) else { panic!("one metric") };
    assert_eq!(metric["type"].as_str(), Some("Pods"));
    assert_eq!(metric["pods"]["target"]["type"].as_str(), Some("AverageValue"));
    let target = quantity(&metric["pods"]["target"]["averageValue"]);
    let max_connections = config.max_connections.expect("MAX_CONNECTIONS is set") as f64;
    // Losing one of the fewest instances must leave the others under the health threshold.
    let room_for_a_failover = config.healthy_below * max_connections * (min - 1.0) / min;
    assert!(
        target <= room_for_a_failover,
        "the autoscaler aims at {target} connections a pod; with {min} pods, losing one puts \
         the others past HEALTHY_BELOW x MAX_CONNECTIONS unless it is at most {room_for_a_failover}"
    );
    assert!(
        target >= room_for_a_failover / 2.0,
        "{target}: twice the pods the failover buffer needs (a typo?)"
    );

    let grace = number(
        &deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"],
        "terminationGracePeriodSeconds",
    );
    let down = &spec["behavior"]["scaleDown"];
    let window = number(&down["stabilizationWindowSeconds"], "scaleDown stabilization");
    assert!(window >= 300, "scale-down stabilization {window} s: a dip is not a trend");
    let policies = seq(&down["policies"]);
    assert!(!policies.is_empty(), "scaleDown needs a policy, or it removes any number at once");
    for policy in policies {
        assert_eq!(policy["type"].as_str(), Some("Pods"), "{policy:?}");
        assert_eq!(number(&policy["value"], "value"), 1, "one pod a period: {policy:?}");
        let period = number(&policy["periodSeconds"], "periodSeconds");
        assert!(period >= grace, "one pod every {period} s: a drain may take {grace} s");
    }
    let up = &spec["behavior"]["scaleUp"];
    assert_eq!(number(&up["stabilizationWindowSeconds"], "scaleUp stabilization"), 0, "prompt");

    // prometheus-adapter serves the metric under that name, from the series of that name.
    let name = text(&metric["pods"]["metric"]["name"], "the metric's name");
    let adapter = manifest("prometheus-adapter-values.yaml");
    let rule = seq(&adapter["rules"]["custom"])
        .iter()
        .find(|rule| rule["name"]["as"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no prometheus-adapter rule serves {name}"));
    let series = text(&rule["seriesQuery"], "seriesQuery");
    assert!(series.starts_with(&format!("{name}{{")), "{series} is not the series {name}");
    for label in ["namespace", "pod"] {
        let resource = &rule["resources"]["overrides"][label]["resource"];
        assert_eq!(resource.as_str(), Some(label), "the {label} label names the {label}");
    }
}

/// The series the autoscaler reads, for the scrape test in deploy.rs.
pub(super) fn autoscaler_metrics() -> BTreeSet<String> {
    let hpa = manifest("wstime-hpa.yaml");
    seq(&hpa["spec"]["metrics"])
        .iter()
        .map(|metric| text(&metric["pods"]["metric"]["name"], "a Pods metric").to_owned())
        .collect()
}

/// The header of deploy/kubernetes/prometheus-rule.yaml.
const PROMETHEUS_RULE_HEADER: &str = "\
# Generated from deploy/prometheus-alerts.yml by `make k8s-rules`: edit that file, not this
# one (a test fails while this one is stale). The Prometheus Operator loads these rules into
# each Prometheus that selects this PrometheusRule (kube-prometheus-stack's asks for the
# label `release: <its release name>`: add it in an overlay). Every rule selects
# job=\"wstime\", the job the ServiceMonitor (service-monitor.yaml) gives the instances.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: wstime
  labels:
    app.kubernetes.io/name: wstime
    app.kubernetes.io/part-of: wstime
spec:
";

/// deploy/kubernetes/prometheus-rule.yaml as deploy/prometheus-alerts.yml makes it: the
/// rule file's `groups:`, comments and all, indented under the PrometheusRule's `spec:`
/// (the file's own opening comment, about loading it into Prometheus, is left out).
fn prometheus_rule(alerts: &str) -> String {
    let mut lines = alerts.lines().peekable();
    while let Some(line) = lines.next_if(|line| !line.starts_with("groups:")) {
        assert!(line.is_empty() || line.starts_with('#'), "before `groups:`: {line}");
    }
    assert!(lines.peek().is_some(), "prometheus-alerts.yml has no `groups:`");
    let mut made = PROMETHEUS_RULE_HEADER.to_owned();
    for line in lines {
        if !line.is_empty() {
            made.push_str("  ");
        }
        made.push_str(line);
        made.push('\n');
    }
    made
}

/// `make k8s-rules` runs this with `WSTIME_WRITE_K8S_RULES=1` to write the file anew.
#[test]
fn the_prometheus_rule_is_built_from_the_alert_rules() {
    let alerts = std::fs::read_to_string(deploy("prometheus-alerts.yml")).unwrap();
    let path = deploy("kubernetes/prometheus-rule.yaml");
    let made = prometheus_rule(&alerts);
    if std::env::var_os("WSTIME_WRITE_K8S_RULES").is_some() {
        std::fs::write(&path, &made).expect("write deploy/kubernetes/prometheus-rule.yaml");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == made,
        "deploy/kubernetes/prometheus-rule.yaml is stale: run `make k8s-rules`"
    );
    // The same rules, read as YAML (not only the same text).
    let rule = manifest("prometheus-rule.yaml");
    let alerts: Value = serde_yaml::from_str(&alerts).expect("the alert rules are YAML");
    assert_eq!(rule["apiVersion"].as_str(), Some("monitoring.coreos.com/v1"));
    assert_eq!(rule["kind"].as_str(), Some("PrometheusRule"));
    let groups = &rule["spec"]["groups"];
    assert!(seq(groups).len() >= 4, "{groups:?}");
    assert_eq!(groups, &alerts["groups"]);
    let keys: Vec<_> = rule["spec"].as_mapping().expect("spec").keys().collect();
    assert_eq!(keys, [&Value::from("groups")], "a PrometheusRule's spec holds its groups");
}

/// The `job="…"` values a rule file's expressions select.
fn selected_jobs(rules: &str) -> BTreeSet<String> {
    rules
        .split("job=\"")
        .skip(1)
        .filter_map(|rest| rest.split_once('"').map(|(job, _)| job.to_owned()))
        .collect()
}

#[test]
fn prometheus_scrapes_every_instance_as_the_job_the_alerts_select() {
    let config = instance_config();
    let monitor = manifest("service-monitor.yaml");
    let service = manifest("wstime-service.yaml");
    let deployment = manifest("wstime-deployment.yaml");
    assert_eq!(monitor["apiVersion"].as_str(), Some("monitoring.coreos.com/v1"));
    assert_eq!(monitor["kind"].as_str(), Some("ServiceMonitor"));
    // No schema checks this kind: at least no field it does not know.
    let known = |value: &Value, fields: &[&str], what: &str| {
        for key in value.as_mapping().unwrap_or_else(|| panic!("{what}")).keys() {
            let key = text(key, "a key");
            assert!(fields.contains(&key), "{what}.{key}: no ServiceMonitor field this test knows");
        }
    };
    known(&monitor["spec"], &["jobLabel", "selector", "endpoints", "namespaceSelector"], "spec");
    let [endpoint] = seq(&monitor["spec"]["endpoints"]) else { panic!("one endpoint") };
    known(endpoint, &["port", "path", "interval", "scrapeTimeout", "scheme"], "endpoints[0]");

    for (key, value) in
        monitor["spec"]["selector"]["matchLabels"].as_mapping().expect("matchLabels")
    {
        assert_eq!(
            &service["metadata"]["labels"][key], value,
            "it must select {:?}",
            service["metadata"]["name"]
        );
    }
    // Scraped on the app port (without ADMIN_BIND, /metrics is there).
    assert!(config.admin_bind.is_none(), "with ADMIN_BIND, scrape the admin port instead");
    assert_eq!(endpoint["path"].as_str(), Some("/metrics"), "where the instances serve metrics");
    let port = seq(&service["spec"]["ports"])
        .iter()
        .find(|port| port["name"] == endpoint["port"])
        .unwrap_or_else(|| panic!("the service has no port {:?}", endpoint["port"]));
    assert_eq!(container_port(container(&deployment), &port["targetPort"]), u64::from(config.port));

    // Prometheus names the job after the service's jobLabel label: the alerts' job.
    let job_label = &monitor["spec"]["jobLabel"];
    let job = text(&service["metadata"]["labels"][job_label], "the service's jobLabel label");
    assert_eq!(job, JOB, "the job the service's {job_label:?} label gives");
    let alerts = std::fs::read_to_string(deploy("prometheus-alerts.yml")).unwrap();
    let selected = selected_jobs(&alerts);
    assert_eq!(selected, BTreeSet::from([JOB.to_owned()]), "the jobs the alert rules select");
}

/// The `WSTIME_…` variables HAProxy's configuration files read: (every one, the ones it
/// reads only inside `.if defined(…)`).
fn haproxy_variables(files: &[String]) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut read = BTreeSet::new();
    let mut optional = BTreeSet::new();
    for file in files {
        let config = std::fs::read_to_string(deploy(file)).unwrap();
        for line in config.lines().filter(|line| !line.trim_start().starts_with('#')) {
            for rest in line.split("${").skip(1) {
                read.extend(rest.split_once('}').map(|(name, _)| name.to_owned()));
            }
            if let Some(rest) = line.trim().strip_prefix(".if defined(") {
                optional.extend(rest.split_once(')').map(|(name, _)| name.to_owned()));
            }
        }
    }
    (read, optional)
}

/// The files HAProxy's container loads (`-f <mount>/<file>`), by name.
fn haproxy_files(haproxy: &Value) -> Vec<String> {
    let container = container(haproxy);
    let mount = seq(&container["volumeMounts"])
        .iter()
        .find(|mount| mount["name"].as_str() == Some("config"))
        .expect("HAProxy's configuration is mounted as `config`");
    let dir = text(&mount["mountPath"], "mountPath");
    let args: Vec<&str> = seq(&container["args"]).iter().map(|a| text(a, "an arg")).collect();
    let files: Vec<String> = args
        .windows(2)
        .filter(|pair| pair[0] == "-f")
        .map(|pair| {
            let file = pair[1].strip_prefix(dir).and_then(|f| f.strip_prefix('/'));
            file.unwrap_or_else(|| panic!("{} is not in the mounted {dir}", pair[1])).to_owned()
        })
        .collect();
    assert!(!files.is_empty(), "HAProxy loads no file: {args:?}");
    files
}

#[test]
fn haproxys_configuration_is_generated_from_deploys_own_files() {
    let haproxy = manifest("haproxy-deployment.yaml");
    let files = haproxy_files(&haproxy);
    let objects = rendered();
    let by_kind = |kind: &str, name: &str| {
        objects
            .iter()
            .find(|o| {
                o["kind"].as_str() == Some(kind) && o["metadata"]["name"].as_str() == Some(name)
            })
            .unwrap_or_else(|| panic!("kustomize made no {kind} {name}"))
    };
    let rendered_haproxy = by_kind("Deployment", "wstime-haproxy");
    let volume = seq(&rendered_haproxy["spec"]["template"]["spec"]["volumes"])
        .iter()
        .find(|volume| volume["name"].as_str() == Some("config"))
        .expect("the config volume");
    let config_map = by_kind("ConfigMap", text(&volume["configMap"]["name"], "its ConfigMap"));
    let keys: BTreeSet<&str> = config_map["data"]
        .as_mapping()
        .expect("the ConfigMap's data")
        .keys()
        .map(|key| text(key, "a key"))
        .collect();
    let loaded: BTreeSet<&str> = files.iter().map(String::as_str).collect();
    assert_eq!(keys, loaded, "the ConfigMap holds exactly the files HAProxy loads");
    for file in &files {
        let original = std::fs::read_to_string(deploy(file)).unwrap();
        assert!(
            config_map["data"][file.as_str()].as_str() == Some(original.as_str()),
            "the ConfigMap's {file} is not deploy/{file}"
        );
    }
    // And no copy of them beside the manifests.
    for entry in std::fs::read_dir(deploy("kubernetes")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.ends_with(".cfg"), "deploy/kubernetes/{name}: a copy of HAProxy's files");
    }
}

#[test]
fn haproxy_finds_every_instance_the_autoscaler_may_run() {
    let config = instance_config();
    let haproxy = manifest("haproxy-deployment.yaml");
    let files = haproxy_files(&haproxy);
    let container = container(&haproxy);
    let env = environment(container);
    let helpers = helper_names(container);

    // It sets what its files read, and nothing they do not.
    let (read, optional) = haproxy_variables(&files);
    for name in read.difference(&optional) {
        assert!(env.iter().any(|(n, _)| n == name), "{files:?} read {name}, which is not set");
    }
    for (name, _) in &env {
        assert!(
            read.contains(name) || helpers.contains(name),
            "{name} is set, but {files:?} never read it"
        );
    }

    let service = manifest("wstime-service.yaml");
    let service_name = text(&service["metadata"]["name"], "the service's name");
    assert_eq!(service["spec"]["clusterIP"].as_str(), Some("None"), "headless: one record a pod");
    assert_eq!(
        service["spec"]["publishNotReadyAddresses"],
        Value::from(true),
        "every pod until it is gone: HAProxy's own checks take a full or draining one out"
    );
    let dns_name = env_value(&env, "WSTIME_DNS_NAME");
    let namespace = pod_field("metadata.namespace");
    assert_eq!(
        dns_name,
        format!("{service_name}.{namespace}.svc.cluster.local"),
        "WSTIME_DNS_NAME must be the headless service's name in the pod's namespace"
    );
    assert_eq!(env_value(&env, "WSTIME_NODE_PORT"), config.port.to_string(), "the instances' PORT");
    let agent = config.agent_port.expect("AGENT_PORT").to_string();
    assert_eq!(env_value(&env, "WSTIME_AGENT_PORT"), agent, "the instances' AGENT_PORT");

    let slots: u64 = env_value(&env, "WSTIME_INSTANCES_MAX").parse().expect("a number");
    let hpa = manifest("wstime-hpa.yaml");
    let deployment = manifest("wstime-deployment.yaml");
    // Terminating pods stay in the answer, and a rollout does not count them: one starts
    // to drain every minReadySeconds, and each takes up to the grace period.
    let pod = &deployment["spec"]["template"]["spec"];
    let grace = number(&pod["terminationGracePeriodSeconds"], "terminationGracePeriodSeconds");
    let every = number(&deployment["spec"]["minReadySeconds"], "minReadySeconds");
    let most = number(&hpa["spec"]["maxReplicas"], "maxReplicas")
        + number(&deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "maxSurge")
        + grace.div_ceil(every);
    assert!(
        slots >= most,
        "{slots} server slots for up to {most} pods (maxReplicas + maxSurge + terminating)"
    );

    // HAProxy opens every connection with a PROXY v2 header: the instances must trust its
    // pods, which have addresses in the same pod network as theirs.
    let proxied = files
        .iter()
        .any(|file| std::fs::read_to_string(deploy(file)).unwrap().contains("send-proxy-v2"));
    let haproxy_pod = pod_field("status.podIP").parse().expect("an address");
    assert!(
        !proxied || config.trusted_proxies.trusts(haproxy_pod),
        "HAProxy sends PROXY v2, and TRUSTED_PROXIES does not cover the pod network"
    );

    // A drained instance's server outlives its DNS record until its last socket closes.
    let hold = env_value(&env, "WSTIME_DNS_HOLD_OBSOLETE");
    let hold =
        Duration::from_secs(hold.strip_suffix('s').and_then(|s| s.parse().ok()).expect("seconds"));
    let last_close = config.drain_grace + config.drain_window + CLOSING_SECS;
    assert!(
        hold >= last_close,
        "WSTIME_DNS_HOLD_OBSOLETE {hold:?}: sockets close until {last_close:?}"
    );

    // And HAProxy itself accepts the files with these values.
    let mut check = Command::new("haproxy");
    check.arg("-c");
    for file in &files {
        check.arg("-f").arg(deploy(file));
    }
    check.envs(env.iter().map(|(name, value)| (name, value)));
    run(&mut check, "make packages installs haproxy");
}

#[test]
fn the_load_balancer_sends_clients_to_haproxy_with_their_own_addresses() {
    let service = manifest("haproxy-service.yaml");
    let haproxy = manifest("haproxy-deployment.yaml");
    assert_eq!(service["spec"]["type"].as_str(), Some("LoadBalancer"));
    // With Cluster, kube-proxy would put a node's address in place of each client's, and
    // every client behind a node would share one address's per-client limits.
    assert_eq!(service["spec"]["externalTrafficPolicy"].as_str(), Some("Local"));
    let pods = &haproxy["spec"]["template"]["metadata"]["labels"];
    for (key, value) in service["spec"]["selector"].as_mapping().expect("a selector") {
        assert_eq!(&pods[key], value, "the service must select HAProxy's pods");
    }
    let [port] = seq(&service["spec"]["ports"]) else { panic!("one port") };
    let env = environment(container(&haproxy));
    let bind = env_value(&env, "WSTIME_LB_BIND");
    let target = container_port(container(&haproxy), &port["targetPort"]);
    assert!(bind.ends_with(&format!(":{target}")), "HAProxy listens on {bind}, not {target}");
}

#[test]
fn every_container_runs_locked_down() {
    for file in ["wstime-deployment.yaml", "haproxy-deployment.yaml"] {
        let deployment = manifest(file);
        let pod = &deployment["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], Value::from(true), "{file}");
        assert_eq!(pod["automountServiceAccountToken"], Value::from(false), "{file}");
        let container = container(&deployment);
        let security = &container["securityContext"];
        assert_eq!(security["allowPrivilegeEscalation"], Value::from(false), "{file}");
        assert_eq!(security["readOnlyRootFilesystem"], Value::from(true), "{file}");
        let dropped: Vec<&str> = seq(&security["capabilities"]["drop"])
            .iter()
            .map(|c| text(c, "a capability"))
            .collect();
        assert_eq!(dropped, ["ALL"], "{file}");
        assert!(seq(&security["capabilities"]["add"]).is_empty(), "{file}");
        let resources = &container["resources"];
        assert_eq!(resources["requests"]["memory"], resources["limits"]["memory"], "{file}");
    }
}

/// The process's own memory, idle (docs/bench/results.json: rss_idle_mb, 9.4).
const IDLE_BYTES: f64 = 9.4e6;
/// A connection's memory: 1.4 KB of the process's (docs/bench/report.md, at 15,000) and
/// 3.7 KB of the kernel's socket objects, which count against the pod's memory cgroup.
const CONNECTION_BYTES: f64 = 1.4e3 + 3.7e3;
/// A connection still in HTTP, behind HAProxy: at most its 16 KiB buffer.
const PENDING_BYTES: f64 = 16.0 * 1024.0;

#[test]
fn the_memory_limit_holds_max_connections() {
    let config = instance_config();
    let deployment = manifest("wstime-deployment.yaml");
    let limit = quantity(&container(&deployment)["resources"]["limits"]["memory"]);
    let connections = config.max_connections.expect("MAX_CONNECTIONS is set") as f64;
    let pending = f64::from(config.max_pending_handshakes);
    let needed = IDLE_BYTES + connections * CONNECTION_BYTES + pending * PENDING_BYTES;
    // Half again for the allocator's slack and what the bench does not see.
    assert!(
        limit >= 1.5 * needed,
        "a memory limit of {:.0} MB for MAX_CONNECTIONS={connections}, which need {:.0} MB \
         (and half again for the allocator)",
        limit / 1e6,
        needed / 1e6
    );
}
