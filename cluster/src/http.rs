//! Blocking HTTP requests to loopback, with `ureq`: enough to read the instances' registry,
//! HAProxy's status CSV or Prometheus's API from the cluster's own threads, without a runtime.

use std::{
    net::{Ipv4Addr, SocketAddr},
    time::Duration,
};

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
    request_at(method, (Ipv4Addr::LOCALHOST, port).into(), path, accept, limit)
}

/// [`request`] to any address: an instance on a loopback address of its own (127.0.0.11).
pub fn request_at(
    method: &str,
    address: SocketAddr,
    path: &str,
    accept: &str,
    limit: Duration,
) -> anyhow::Result<Response> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(limit))
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("http://{address}{path}");
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

/// The `/healthcheck` report of the instance on `port` (of 127.0.0.1).
pub fn health_report(port: u16) -> anyhow::Result<HealthReport> {
    health_report_at((Ipv4Addr::LOCALHOST, port).into())
}

/// The `/healthcheck` report of the instance at `address`.
pub fn health_report_at(address: SocketAddr) -> anyhow::Result<HealthReport> {
    let limit = Duration::from_secs(2);
    let response = request_at("GET", address, health::PATH, "application/json", limit)?;
    HealthReport::parse(&response.body).context("a health check's JSON")
}
