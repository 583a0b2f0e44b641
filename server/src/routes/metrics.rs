//! `GET /metrics`: the instance's metrics for Prometheus (see [`crate::metrics`]).

use actix_web::{http::header, web, HttpResponse};

use crate::state::AppState;

/// The OpenMetrics text exposition.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.encode())
}
