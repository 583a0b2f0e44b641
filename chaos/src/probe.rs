//! What an instance says about itself, read over the lab's network from another host: its
//! health report (`/healthcheck` as JSON) and its metrics (`/metrics`).

use std::{net::SocketAddr, time::Duration};

use wstime_cluster::{http, lab::Host};
use wstime_protocol::HealthReport;

/// The health report of the instance at `address`, asked from `from`.
pub fn health(from: &Host, address: SocketAddr) -> anyhow::Result<HealthReport> {
    from.enter(move || http::health_report_at(address))?
}

/// The metric `name` of the instance at `address`, asked from `from`: the sum of all its
/// series (`wstime_store_errors_total` over every operation), 0 if it has none.
pub fn metric(from: &Host, address: SocketAddr, name: &str) -> anyhow::Result<f64> {
    let limit = Duration::from_secs(2);
    let response =
        from.enter(move || http::request_at("GET", address, "/metrics", "text/plain", limit))??;
    Ok(response
        .body
        .lines()
        .filter_map(|line| line.strip_prefix(name))
        .filter(|rest| rest.starts_with('{') || rest.starts_with(' '))
        .filter_map(|rest| rest.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}
