//! The plain HTTP routes of the one port: the health check, the metrics, the cluster and
//! the page. WebSocket upgrades never reach them: actix-http hands those to
//! [`crate::upgrade`] first.

mod cluster;
mod health;
mod metrics;
mod page;

use std::path::Path;

use actix_web::web;

/// Registers every route on `cfg`.
pub fn configure(cfg: &mut web::ServiceConfig, static_dir: &Path) {
    cfg.route("/healthcheck", web::get().to(health::healthcheck))
        .route("/metrics", web::get().to(metrics::metrics))
        .route("/cluster", web::get().to(cluster::cluster))
        .service(page::files(static_dir));
}
