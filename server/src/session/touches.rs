//! Session touches, taken off the connections' path.
//!
//! A connection restarts its session's expiry on a slow keep-alive and once when it ends.
//! It cannot await the store itself: it is driven by synchronous visits and polls, and it
//! may end by being dropped (a peer reset, a worker stopping). So it queues the client id, and
//! one background task per instance does the touching, a bounded number at a time. At
//! shutdown it is flushed: the touches of the last sockets to close are written before the
//! process exits.

use std::{future::Future, pin::pin, sync::Arc};

use futures_util::StreamExt as _;
use tokio::sync::mpsc;
use wstime_protocol::ClientId;

use super::SessionStore;

/// How many touches may be in flight at once: enough to keep up with a drain closing every
/// socket within seconds, few enough not to flood the store.
const CONCURRENT_TOUCHES: usize = 64;

/// Where connections ask for a touch. Cloning is cheap.
#[derive(Clone)]
pub struct Touches(mpsc::UnboundedSender<ClientId>);

/// The other end: the queue [`TouchQueue::run`] works through.
pub struct TouchQueue(mpsc::UnboundedReceiver<ClientId>);

/// A new, empty queue.
pub fn queue() -> (Touches, TouchQueue) {
    let (sender, receiver) = mpsc::unbounded_channel();
    (Touches(sender), TouchQueue(receiver))
}

impl Touches {
    /// Asks for `id`'s expiry to be restarted. Never waits; once the queue's task has stopped
    /// the process is exiting and there is nothing left to keep.
    pub fn request(&self, id: ClientId) {
        let _ = self.0.send(id);
    }
}

impl TouchQueue {
    /// Touches every queued session in `store` until `flush` resolves; then takes no more
    /// requests, finishes the ones already queued and returns. A failed touch is logged and
    /// dropped: the session then expires a little earlier, which only matters if the store
    /// is down, and then nothing could be kept anyway.
    pub async fn run(mut self, store: Arc<dyn SessionStore>, flush: impl Future<Output = ()>) {
        let mut flush = pin!(flush);
        let mut flushing = false;
        let ids = futures_util::stream::poll_fn(|cx| {
            if !flushing && flush.as_mut().poll(cx).is_ready() {
                flushing = true;
                // Later requests are refused; the queued ones still come out, then the end.
                self.0.close();
            }
            self.0.poll_recv(cx)
        });
        ids.for_each_concurrent(CONCURRENT_TOUCHES, |id| {
            let store = Arc::clone(&store);
            async move {
                if let Err(error) = store.touch(&id).await {
                    tracing::debug!(client_id = %id, %error, "session touch failed");
                }
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use futures_util::future::BoxFuture;

    use super::*;
    use crate::session::{Opened, StoreError, StoreStatus};

    /// Records the ids it is asked to touch.
    #[derive(Default)]
    struct Recording(Mutex<Vec<String>>);

    impl SessionStore for Recording {
        fn open<'a>(&'a self, _: &'a ClientId) -> BoxFuture<'a, Result<Opened, StoreError>> {
            unreachable!("the queue only touches")
        }

        fn touch<'a>(&'a self, id: &'a ClientId) -> BoxFuture<'a, Result<(), StoreError>> {
            self.0.lock().unwrap().push(id.to_string());
            Box::pin(async { Ok(()) })
        }

        fn status(&self) -> StoreStatus {
            StoreStatus { kind: "recording", reachable: true }
        }
    }

    #[tokio::test]
    async fn every_request_queued_before_the_flush_is_touched_then_the_queue_ends() {
        let store = Arc::new(Recording::default());
        let (touches, queue) = queue();
        for id in ["a", "b", "a"] {
            touches.request(ClientId::parse(id).unwrap());
        }
        // The senders live on (as the instance's do): the flush alone ends the queue.
        queue.run(store.clone(), std::future::ready(())).await;
        touches.request(ClientId::parse("late").unwrap());
        let mut touched = store.0.lock().unwrap().clone();
        touched.sort();
        assert_eq!(touched, ["a", "a", "b"]);
    }
}
