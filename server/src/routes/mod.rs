//! The plain HTTP routes: the health check, the liveness check, the metrics, the cluster and
//! the page. WebSocket
//! upgrades never reach them: actix-http hands those to [`crate::upgrade`] first.
//!
//! By default the app port serves them all. With `ADMIN_BIND`, what tells more than a load
//! balancer needs (`/metrics`, `/cluster`, the health check's JSON: instance addresses,
//! counts, the version) moves to the admin address, and the app port keeps the page and the
//! plain-text health check.

mod cluster;
mod health;
mod live;
mod metrics;
mod page;

use std::path::Path;

use actix_web::web;
use wstime_protocol::{cluster::PATH as CLUSTER, health::PATH as HEALTHCHECK};

/// Where the metrics are served.
const METRICS: &str = "/metrics";

/// What the app port serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppPort {
    /// Everything: no admin address is set.
    Everything,
    /// The page and the plain-text health check; the rest is on the admin address.
    PublicOnly,
}

/// Registers the app port's routes on `cfg`.
pub fn app(cfg: &mut web::ServiceConfig, static_dir: &Path, port: AppPort) {
    match port {
        AppPort::Everything => admin(cfg),
        AppPort::PublicOnly => {
            cfg.route(HEALTHCHECK, web::get().to(health::plain_healthcheck));
        }
    }
    cfg.route(live::PATH, web::get().to(live::livez)).service(page::files(static_dir));
}

/// Registers the admin address's routes on `cfg` (the app port's too, without one).
pub fn admin(cfg: &mut web::ServiceConfig) {
    cfg.route(HEALTHCHECK, web::get().to(health::healthcheck))
        .route(METRICS, web::get().to(metrics::metrics))
        .route(CLUSTER, web::get().to(cluster::cluster));
}
