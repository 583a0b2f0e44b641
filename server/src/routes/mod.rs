//! The plain HTTP routes of the one port: the health check and the page. WebSocket
//! upgrades never reach them: actix-http hands those to [`crate::upgrade`] first.

mod health;
mod page;

use std::path::Path;

use actix_web::web;

/// Registers every route on `cfg`.
pub fn configure(cfg: &mut web::ServiceConfig, static_dir: &Path) {
    cfg.route("/healthcheck", web::get().to(health::healthcheck)).service(page::files(static_dir));
}
