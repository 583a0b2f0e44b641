//! `GET /livez`: whether the process still serves HTTP at all, for a liveness probe.
//!
//! Not the health check: an instance at its load threshold, or draining, says 503 there so
//! that no new clients come, and it must not be killed for it (a liveness probe that read
//! the health check would restart a full instance and drop every socket it holds). This
//! answers 200 for as long as the instance's workers answer anything.

use actix_web::{http::header, HttpResponse};

/// Where it is served.
pub const PATH: &str = "/livez";

/// `200 alive`.
pub async fn livez() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .content_type("text/plain; charset=utf-8")
        .body("alive")
}
