//! The routes of the one port: WebSocket upgrades, the health check and the page.
//!
//! Order matters: an upgrade on `/` must reach the WebSocket handler before the static
//! files see `GET /`, so the upgrade routes are guarded and registered first.

mod health;
mod page;
mod websocket;

use std::path::Path;

use actix_web::{guard, web};

/// Registers every route on `cfg`.
pub fn configure(cfg: &mut web::ServiceConfig, static_dir: &Path) {
    cfg.service(
        web::resource(["/", "/ws"])
            .guard(guard::Get())
            .guard(guard::fn_guard(|ctx| websocket::is_upgrade(ctx.head())))
            .to(websocket::upgrade),
    )
    .route("/healthcheck", web::get().to(health::healthcheck))
    .service(page::files(static_dir));
}
