//! Redis with a local fallback: the store a multi-instance deployment runs with.
//!
//! While Redis answers, sessions are shared. While it does not, new sessions are kept in
//! this instance's memory: a connect still succeeds and ticks, it just will not resume on
//! another instance. Sessions opened during the outage stay local after Redis returns
//! (their start time exists nowhere else); sessions opened after it are shared again.

use std::sync::Arc;

use futures_util::future::{BoxFuture, FutureExt as _};
use wstime_protocol::ClientId;

use super::{
    memory::MemoryStore, redis::RedisStore, Opened, SessionStore, StoreError, StoreStatus,
};
use crate::{
    log_id::LoggedId,
    metrics::{Metrics, StoreOperation},
};

/// Redis first, this instance's memory when Redis cannot answer.
pub struct FallbackStore {
    shared: Arc<RedisStore>,
    local: MemoryStore,
    /// Hears every operation Redis failed: the fallback hides them from the caller.
    metrics: Arc<Metrics>,
}

impl FallbackStore {
    /// Sessions in `shared` Redis, in `local` memory while it cannot answer, its failures
    /// counted in `metrics`.
    pub fn new(shared: Arc<RedisStore>, local: MemoryStore, metrics: Arc<Metrics>) -> Self {
        Self { shared, local, metrics }
    }

    async fn open_session(&self, id: &ClientId) -> Result<Opened, StoreError> {
        match self.shared.open(id).await {
            Ok(opened) => Ok(opened),
            // Redis answered: the session is shared and busy, and a local copy would fork it.
            Err(StoreError::Busy) => Err(StoreError::Busy),
            Err(error) => {
                self.metrics.store_failed(StoreOperation::OPEN);
                tracing::debug!(id = %LoggedId(id), %error, "opening the session locally");
                self.local.open(id).await
            }
        }
    }

    async fn touch_session(&self, id: &ClientId) -> Result<(), StoreError> {
        // Both may hold the id (opened locally in an outage, then again in Redis once it was
        // back), so both are touched; a session this instance holds needs nothing from Redis.
        let held_here = self.local.touch_now(id);
        let shared = self.shared.touch(id).await;
        if shared.is_err() {
            self.metrics.store_failed(StoreOperation::TOUCH);
        }
        if held_here {
            return Ok(());
        }
        shared
    }
}

impl SessionStore for FallbackStore {
    fn open<'a>(&'a self, id: &'a ClientId) -> BoxFuture<'a, Result<Opened, StoreError>> {
        self.open_session(id).boxed()
    }

    fn touch<'a>(&'a self, id: &'a ClientId) -> BoxFuture<'a, Result<(), StoreError>> {
        self.touch_session(id).boxed()
    }

    fn status(&self) -> StoreStatus {
        self.shared.status()
    }
}
