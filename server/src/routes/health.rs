//! `GET /healthcheck`: whether this instance should be sent new connections.

use actix_web::{http::header, http::StatusCode, web, HttpRequest, HttpResponse};
use serde::Serialize;

use crate::{
    capacity::{Health, Limits},
    session::StoreStatus,
    state::AppState,
};

/// The health check's JSON form (`Accept: application/json`).
#[derive(Debug, Serialize)]
struct HealthReport<'a> {
    name: &'a str,
    status: Health,
    connections: usize,
    load: f64,
    outbound_bps: u64,
    #[serde(flatten)]
    limits: Limits,
    store: StoreStatus,
    draining: bool,
    uptime_secs: u64,
}

/// `200 ok` while this instance should get new connections; `503 server is overloaded`
/// from the load threshold until it recovers; `503 draining` during shutdown. Plain text
/// for load balancers, the details as JSON for people and tools. (The post's snippet
/// answered twice and used 400; a load balancer reads 503 as "not now".)
pub async fn healthcheck(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let connections = state.live_connections();
    let (mut health, load) = state.capacity.assess(connections);
    let draining = state.lifecycle.is_draining();
    if draining {
        health = Health::Draining;
    }
    let status = match health {
        Health::Ok => StatusCode::OK,
        Health::Overloaded | Health::Draining => StatusCode::SERVICE_UNAVAILABLE,
    };
    let mut response = HttpResponse::build(status);
    response.insert_header((header::CACHE_CONTROL, "no-store"));
    if wants_json(&req) {
        response.json(HealthReport {
            name: &state.name,
            status: health,
            connections,
            load,
            outbound_bps: state.capacity.outbound_bps(),
            limits: state.capacity.limits,
            store: state.sessions.status(),
            draining,
            uptime_secs: state.started.elapsed().as_secs(),
        })
    } else {
        response.content_type("text/plain; charset=utf-8").body(health.text())
    }
}

fn wants_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"))
}
