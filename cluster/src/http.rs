//! Blocking HTTP requests to loopback, with `ureq`: enough to read the instances' registry,
//! HAProxy's status CSV or Prometheus's API from the cluster's own threads, without a runtime.

use std::time::Duration;

use anyhow::Context as _;
use wstime_protocol::{health, HealthReport};

/// A response: status code and body.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// Sends `method path` to `127.0.0.1:port` with `accept` and returns the response, whatever
/// its status, failing if it takes longer than `limit`.
pub fn request(
    method: &str,
    port: u16,
    path: &str,
    accept: &str,
    limit: Duration,
) -> anyhow::Result<Response> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(limit))
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("http://127.0.0.1:{port}{path}");
    let request = ureq::http::Request::builder()
        .method(method)
        .uri(&url)
        .header("Accept", accept)
        .body(())
        .context("a request")?;
    let mut response = agent.run(request).with_context(|| format!("{method} {url}"))?;
    let body =
        response.body_mut().read_to_string().with_context(|| format!("the body of {url}"))?;
    Ok(Response { status: response.status().as_u16(), body })
}

/// The `/healthcheck` report of the instance on `port`.
pub fn health_report(port: u16) -> anyhow::Result<HealthReport> {
    let response = request("GET", port, health::PATH, "application/json", Duration::from_secs(2))?;
    HealthReport::parse(&response.body).context("a health check's JSON")
}
