//! `GET /healthcheck`: whether this instance should be sent new connections.

use actix_web::{http::header, http::StatusCode, web, HttpRequest, HttpResponse};
use wstime_protocol::{health::StoreReport, Health, HealthReport};

use crate::state::AppState;

/// `200 ok` while this instance should get new connections; `503 server is overloaded`
/// from the load threshold until it recovers; `503 draining` during shutdown. Plain text
/// for load balancers, the details as JSON for people and tools. (The post's snippet
/// answered twice and used 400; a load balancer reads 503 as "not now".)
///
/// A plain-text check is a load balancer's (HAProxy's `httpchk`, a Kubernetes probe): it is
/// noted, so the cluster can tell when the balancer stops reaching this instance. A person
/// or tool asking for the JSON is not the balancer, and is not noted.
pub async fn healthcheck(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let json = wants_json(&req);
    if !json {
        state.instance.note_health_check();
    }
    answer(&state, json)
}

/// The same in plain text whatever the client asks: the app port's, when the JSON (the
/// instance's name, counts and store) is kept to the admin address (`ADMIN_BIND`).
pub async fn plain_healthcheck(state: web::Data<AppState>) -> HttpResponse {
    state.instance.note_health_check();
    answer(&state, false)
}

fn answer(state: &AppState, json: bool) -> HttpResponse {
    let instance = &state.instance;
    let connections = instance.live_connections();
    let (health, load) = instance.assess();
    let status = match health {
        Health::Ok => StatusCode::OK,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    let mut response = HttpResponse::build(status);
    response.insert_header((header::CACHE_CONTROL, "no-store"));
    if json {
        let limits = instance.capacity.limits;
        let store = state.sessions.status();
        response.json(HealthReport {
            name: instance.name.to_string(),
            status: health,
            connections: connections as u64,
            load,
            outbound_bps: instance.capacity.outbound_bps(),
            max_connections: limits.max_connections,
            healthy_below: limits.healthy_below,
            recover_below: limits.recover_below,
            network_capacity_bps: limits.network_capacity_bps,
            store: StoreReport { kind: store.kind.to_owned(), reachable: store.reachable },
            draining: instance.lifecycle.is_draining(),
            uptime_secs: instance.started.elapsed().as_secs(),
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
