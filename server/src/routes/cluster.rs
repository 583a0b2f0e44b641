//! `GET /cluster`: the live instances, as the registry last showed them (see
//! [`crate::registry`] and [`crate::cluster`]); the same answer from every instance.

use actix_web::{http::header, web, HttpResponse};

use crate::state::AppState;

/// The cluster as JSON.
pub async fn cluster(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(state.cluster.report())
}
