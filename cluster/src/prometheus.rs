//! A real Prometheus on a free loopback port, scraping every instance of the cluster each
//! second, its storage in a temporary directory; and questions to its HTTP query API.
//!
//! The instances reach its configuration through a file-discovery list that the cluster
//! rewrites when it adds an instance, so Prometheus never needs restarting.

use std::{collections::BTreeMap, net::SocketAddr, path::Path, process::Command, time::Duration};

use anyhow::{bail, Context as _};

use crate::{
    http,
    process::{free_port, Supervised},
};

/// How long Prometheus may take to start (it replays an empty write-ahead log).
const START_LIMIT: Duration = Duration::from_secs(30);
/// How long a query may take.
const QUERY_LIMIT: Duration = Duration::from_secs(5);
/// The scrape job's name, as the alert rules and the dashboard select it (`job="wstime"`).
pub const JOB: &str = "wstime";

/// An instance to scrape: its address, and the cluster's name for it (`node1`, also
/// HAProxy's when deploy/haproxy.cfg lists the instances), which becomes the series' `node`
/// label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub node: String,
    pub address: SocketAddr,
}

/// A running Prometheus.
pub struct Prometheus {
    /// Declared before `files`, so the process stops before its storage is removed.
    pub process: Supervised,
    /// Its web UI and HTTP API.
    pub port: u16,
    /// The configuration, the list of targets and the storage.
    files: tempfile::TempDir,
}

/// One series of a query's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Prometheus {
    /// Starts Prometheus on a free port, scraping `targets` every second and, with `rules`,
    /// evaluating that rule file (`deploy/prometheus-alerts.yml`) every second; waits until
    /// it serves its API.
    pub fn start(targets: &[Target], rules: Option<&Path>, echo: bool) -> anyhow::Result<Self> {
        let files = tempfile::tempdir().context("a directory for Prometheus")?;
        let rules = rules
            .map(|rules| rules.canonicalize().with_context(|| format!("{}", rules.display())))
            .transpose()?;
        let config = files.path().join("prometheus.yml");
        std::fs::write(&config, config_text(&files.path().join(TARGETS), rules.as_deref()))?;
        write_targets(files.path(), targets)?;
        let port = free_port()?;
        let mut command = Command::new("prometheus");
        command
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", files.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .current_dir(files.path());
        let mut process = Supervised::spawn("prometheus", &mut command, echo)?;
        process.wait_for_line("Server is ready to receive web requests", START_LIMIT)?;
        Ok(Self { process, port, files })
    }

    /// Replaces the instances it scrapes; it notices within a second or so.
    pub fn set_targets(&self, targets: &[Target]) -> anyhow::Result<()> {
        write_targets(self.files.path(), targets)
    }

    /// Its web UI (and API) address.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// Asks the instant query `promql` of the HTTP API (`/api/v1/query`), now.
    pub fn query(&self, promql: &str) -> anyhow::Result<Vec<Sample>> {
        let query =
            form_urlencoded::Serializer::new(String::new()).append_pair("query", promql).finish();
        let path = format!("/api/v1/query?{query}");
        let response = http::request("GET", self.port, &path, "application/json", QUERY_LIMIT)?;
        parse_vector(&response.body).with_context(|| format!("the answer to {promql}"))
    }
}

/// The file-discovery list of targets, in Prometheus's directory.
const TARGETS: &str = "targets.json";

/// Writes the list of targets into `dir`: to a new file renamed over the old one, so
/// Prometheus, which watches the directory, never reads half a list.
fn write_targets(dir: &Path, targets: &[Target]) -> anyhow::Result<()> {
    let groups: Vec<serde_json::Value> = targets
        .iter()
        .map(|target| {
            serde_json::json!({
                "targets": [target.address.to_string()],
                "labels": { "node": target.node },
            })
        })
        .collect();
    let fresh = dir.join(format!("{TARGETS}.new"));
    std::fs::write(&fresh, serde_json::to_string_pretty(&groups)?)?;
    std::fs::rename(&fresh, dir.join(TARGETS)).context("the list of targets")?;
    Ok(())
}

/// The configuration: one job scraping the listed targets every second, and the rules.
fn config_text(targets: &Path, rules: Option<&Path>) -> String {
    let rule_files = rules
        .map_or_else(String::new, |rules| format!("rule_files:\n  - {}\n", yaml_string(rules)));
    format!(
        "# Written by wstime-cluster: every instance of the cluster, scraped every second.\n\
         global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         {rule_files}\
         scrape_configs:\n  - job_name: {JOB}\n    file_sd_configs:\n      - files:\n          - {}\n",
        yaml_string(targets),
    )
}

/// A path as a YAML string (JSON's quoting is valid YAML).
fn yaml_string(path: &Path) -> String {
    serde_json::Value::String(path.display().to_string()).to_string()
}

/// Reads an instant vector from an `/api/v1/query` answer.
fn parse_vector(body: &str) -> anyhow::Result<Vec<Sample>> {
    let answer: serde_json::Value = serde_json::from_str(body).context("not JSON")?;
    if answer["status"] != "success" {
        bail!("{}: {}", answer["errorType"], answer["error"]);
    }
    if answer["data"]["resultType"] != "vector" {
        bail!("not an instant vector: {}", answer["data"]["resultType"]);
    }
    let series = answer["data"]["result"].as_array().context("no result")?;
    series
        .iter()
        .map(|series| {
            let labels = series["metric"]
                .as_object()
                .context("no labels")?
                .iter()
                .map(|(name, value)| (name.clone(), value.as_str().unwrap_or_default().to_owned()))
                .collect();
            let value = series["value"][1].as_str().context("no value")?;
            Ok(Sample { labels, value: value.parse().context("not a number")? })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instant_vector_reads_back() {
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"__name__":"up","instance":"127.0.0.1:1","node":"node1"},"value":[1764748800.5,"1"]},
            {"metric":{},"value":[1764748800.5,"+Inf"]}]}}"#;
        let samples = parse_vector(body).unwrap();
        assert_eq!(samples[0].labels["node"], "node1");
        assert_eq!(samples[0].value, 1.0);
        assert!(samples[1].labels.is_empty() && samples[1].value.is_infinite());
    }

    #[test]
    fn an_error_says_what_prometheus_said() {
        let body = r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#;
        let error = parse_vector(body).unwrap_err().to_string();
        assert!(error.contains("bad_data") && error.contains("parse error"), "{error}");
        let range = r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert!(parse_vector(range).is_err());
    }

    #[test]
    fn the_configuration_scrapes_the_list_every_second_and_loads_the_rules() {
        let text = config_text(Path::new("/tmp/x/targets.json"), Some(Path::new("/d/a.yml")));
        assert!(text.contains("scrape_interval: 1s"), "{text}");
        assert!(text.contains("- job_name: wstime"), "{text}");
        assert!(text.contains("- \"/tmp/x/targets.json\""), "{text}");
        assert!(text.contains("rule_files:\n  - \"/d/a.yml\""), "{text}");
        assert!(!config_text(Path::new("/t.json"), None).contains("rule_files"));
    }

    #[test]
    fn a_real_prometheus_scrapes_a_target_added_while_it_runs() {
        let prometheus = Prometheus::start(&[], None, false).expect("start prometheus");
        assert_eq!(prometheus.query("up").unwrap(), [], "nothing to scrape yet");
        // Prometheus serves its own metrics: scrape itself, as an instance would be.
        let address = SocketAddr::from(([127, 0, 0, 1], prometheus.port));
        let itself = Target { node: "node1".into(), address };
        prometheus.set_targets(&[itself]).unwrap();
        crate::process::poll_until("the new target scraped", Duration::from_secs(30), || {
            match prometheus.query(r#"up{job="wstime",node="node1"}"#) {
                Ok(samples) if samples.first().is_some_and(|s| s.value == 1.0) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .unwrap();
        let refused = prometheus.query("sum(").unwrap_err();
        assert!(format!("{refused:#}").contains("bad_data"), "{refused:#}");
    }
}
