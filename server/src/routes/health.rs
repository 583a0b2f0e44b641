//! `GET /healthcheck`: whether this instance should be sent new connections.

use actix_web::{http::header, web, HttpRequest, HttpResponse};
use serde::Serialize;

use crate::{session::StoreStatus, state::AppState};

/// The health check's JSON form (`Accept: application/json`).
#[derive(Debug, Serialize)]
struct HealthReport<'a> {
    name: &'a str,
    status: &'static str,
    connections: usize,
    store: StoreStatus,
    uptime_secs: u64,
}

/// `200 ok` in plain text for load balancers, the details as JSON for people and tools.
pub async fn healthcheck(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let status = "ok";
    if wants_json(&req) {
        HttpResponse::Ok().json(HealthReport {
            name: &state.name,
            status,
            connections: state.live_connections(),
            store: state.sessions.status(),
            uptime_secs: state.started.elapsed().as_secs(),
        })
    } else {
        HttpResponse::Ok().content_type("text/plain; charset=utf-8").body(status)
    }
}

fn wants_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"))
}
