//! Every session-store operation timed, in one place: a wrapper around whichever store the
//! instance runs with, so `wstime_store_operation_duration_seconds` counts an open or a
//! touch however it was made (a WebSocket's open, the touch queue) and whichever backend
//! answered it (a session kept in memory while Redis is down included).

use std::sync::Arc;

use futures_util::future::{BoxFuture, FutureExt as _};
use tokio::time::Instant;
use wstime_protocol::ClientId;

use super::{Opened, SessionStore, StoreError, StoreStatus};
use crate::metrics::{Metrics, StoreOperation};

/// `inner`, with each operation's time counted in `metrics`.
pub struct Timed<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S: SessionStore> Timed<S> {
    /// `inner`, timed into `metrics`.
    pub fn new(inner: S, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }
}

impl<S: SessionStore> SessionStore for Timed<S> {
    fn open<'a>(&'a self, id: &'a ClientId) -> BoxFuture<'a, Result<Opened, StoreError>> {
        let started = Instant::now();
        self.inner
            .open(id)
            .inspect(move |_| self.metrics.store_operation(StoreOperation::OPEN, started.elapsed()))
            .boxed()
    }

    fn touch<'a>(&'a self, id: &'a ClientId) -> BoxFuture<'a, Result<(), StoreError>> {
        let started = Instant::now();
        self.inner
            .touch(id)
            .inspect(move |_| {
                self.metrics.store_operation(StoreOperation::TOUCH, started.elapsed())
            })
            .boxed()
    }

    fn status(&self) -> StoreStatus {
        self.inner.status()
    }
}
