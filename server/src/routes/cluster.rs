//! `GET /cluster`: the live instances, as the registry last showed them (see
//! [`crate::registry`] and [`crate::cluster`]), the answering instance's own row as it is
//! now.

use actix_web::{http::header, web, HttpResponse};

use crate::state::AppState;

/// The cluster as JSON.
pub async fn cluster(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(state.cluster.answer(state.instance.entry()))
}
