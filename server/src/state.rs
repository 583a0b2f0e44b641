//! The edge's bundle: what the request handlers ([`crate::routes`]) and the upgrade
//! ([`crate::upgrade`]) reach for, built once by [`crate::startup`]. Nothing beneath the
//! edge takes it: each part gets the few handles it needs.

use std::sync::Arc;

use crate::{
    cluster::KnownCluster, instance::Instance, metrics::Metrics, session::SessionStore,
    worker::WorkerParts,
};

/// The instance's shared handles; one per instance, shared as `web::Data`.
pub struct AppState {
    /// This instance: name, lifecycle, capacity.
    pub instance: Arc<Instance>,
    /// Where sessions live (memory, or Redis with a memory fallback), every operation timed.
    pub sessions: Arc<dyn SessionStore>,
    /// What `/metrics` reports.
    pub metrics: Arc<Metrics>,
    /// The cluster, as the registry last showed it (`/cluster`).
    pub cluster: Arc<KnownCluster>,
    /// What each worker thread's connections are made with.
    pub workers: WorkerParts,
}
