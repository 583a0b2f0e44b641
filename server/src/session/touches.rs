//! Session touches, taken off the connections' path.
//!
//! A connection restarts its session's expiry on a slow keep-alive and once when it ends.
//! It cannot await the store itself: it is driven by synchronous visits and polls, and it
//! may end by being dropped (a peer reset, a worker stopping). So it queues the client id, and
//! one background task per instance does the touching, a bounded number at a time. At
//! shutdown it is flushed: the touches of the last sockets to close are written before the
//! process exits.
//!
//! The queue is bounded, for when the store is slower than the touches arrive (Redis cut
//! off, answering only after its operation limit). A session already waiting in it is not
//! queued twice: one touch restarts its expiry as well as several would, so a queue of
//! distinct sessions is at most as long as the instance has sessions. Past the limit a
//! request is dropped, and counted in the log: that session's expiry then runs from its last
//! touch, a little early, which matters only while the store is failing anyway. A request
//! for a session whose touch is on its way already is kept as a mark on it, and the session
//! is touched once more when that touch is done: the first may have reached the store before
//! the socket it now speaks for let go.

use std::{
    collections::{HashMap, VecDeque},
    future::Future,
    pin::pin,
    sync::{Arc, Mutex, MutexGuard},
};

use futures_util::{stream::FuturesUnordered, StreamExt as _};
use tokio::{sync::Notify, time::Instant};
use wstime_protocol::ClientId;

use super::SessionStore;
use crate::{log_id::LoggedId, log_throttle::LogThrottle};

/// How many touches may be in flight at once: enough to keep up with a drain closing every
/// socket within seconds, few enough not to flood the store.
const CONCURRENT_TOUCHES: usize = 64;

/// Where connections ask for a touch. Cloning is cheap.
#[derive(Clone)]
pub struct Touches(Arc<Queue>);

/// The other end: the queue [`TouchQueue::run`] works through.
pub struct TouchQueue(Arc<Queue>);

struct Queue {
    waiting: Mutex<Waiting>,
    /// Wakes the task when a touch is queued (or the queue is closed meanwhile: a permit is
    /// kept for a task that is not waiting yet, so none is missed).
    queued: Notify,
    /// The most sessions that may wait at once.
    limit: usize,
}

#[derive(Default)]
struct Waiting {
    order: VecDeque<ClientId>,
    /// The sessions in `order` or being touched, so a second request for one is not queued
    /// twice.
    held: HashMap<ClientId, Held>,
    /// Set once the queue is flushing: later requests are refused.
    closed: bool,
    /// When requests dropped at the limit were last logged.
    dropped: LogThrottle,
}

/// Where a session of the queue is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    /// In `order`: its touch, when it comes, covers any request until then.
    Waiting,
    /// Being touched; `again` if a request came meanwhile, which it may not cover.
    InFlight { again: bool },
}

/// A new, empty queue of at most `limit` sessions.
pub fn queue(limit: usize) -> (Touches, TouchQueue) {
    let queue =
        Arc::new(Queue { waiting: Mutex::default(), queued: Notify::new(), limit: limit.max(1) });
    (Touches(Arc::clone(&queue)), TouchQueue(queue))
}

impl Touches {
    /// Asks for `id`'s expiry to be restarted. Never waits; once the queue's task has stopped
    /// the process is exiting and there is nothing left to keep.
    pub fn request(&self, id: ClientId) {
        self.0.request(id);
    }
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a touch of `id`, unless one is queued already (see [`Held`]).
    fn request(&self, id: ClientId) {
        let mut waiting = self.lock();
        if waiting.closed {
            return;
        }
        match waiting.held.get_mut(&id) {
            Some(Held::Waiting) => return,
            Some(Held::InFlight { again }) => {
                *again = true;
                return;
            }
            None => {}
        }
        if waiting.order.len() >= self.limit {
            if let Some(unlogged) = waiting.dropped.turn(Instant::now()) {
                tracing::warn!(
                    "the session store is slower than its touches arrive: {} dropped with {} \
                     waiting (their sessions expire from their last touch)",
                    unlogged + 1,
                    self.limit
                );
            }
            return;
        }
        waiting.held.insert(id.clone(), Held::Waiting);
        waiting.order.push_back(id);
        drop(waiting);
        self.queued.notify_one();
    }

    /// The next session to touch, if any waits; it is held as in flight until
    /// [`Queue::touched`].
    fn next(&self) -> Option<ClientId> {
        let mut waiting = self.lock();
        let id = waiting.order.pop_front()?;
        waiting.held.insert(id.clone(), Held::InFlight { again: false });
        Some(id)
    }

    /// `id`'s touch is done; if it was asked for again meanwhile, it is queued again (a
    /// request taken before the queue closed, so even while it flushes).
    fn touched(&self, id: ClientId) {
        let mut waiting = self.lock();
        if waiting.held.remove(&id) == Some(Held::InFlight { again: true }) {
            waiting.held.insert(id.clone(), Held::Waiting);
            waiting.order.push_back(id);
        }
    }
}

impl TouchQueue {
    /// Touches every queued session in `store` until `flush` resolves; then takes no more
    /// requests, finishes the ones already queued and returns, or returns at `stop` (the
    /// drain's limit on the flush has passed) with whatever is left undone. A failed touch
    /// is logged and dropped: the session then expires a little earlier, which only matters
    /// if the store is down, and then nothing could be kept anyway.
    pub async fn run(
        self,
        store: Arc<dyn SessionStore>,
        flush: impl Future<Output = ()>,
        stop: impl Future<Output = ()>,
    ) {
        let queue = self.0;
        let mut flush = pin!(flush);
        let mut stop = pin!(stop);
        let mut flushing = false;
        let mut in_flight = FuturesUnordered::new();
        loop {
            while in_flight.len() < CONCURRENT_TOUCHES {
                let Some(id) = queue.next() else { break };
                let (store, queue) = (Arc::clone(&store), &queue);
                in_flight.push(async move {
                    if let Err(error) = store.touch(&id).await {
                        tracing::debug!(id = %LoggedId(&id), %error, "session touch failed");
                    }
                    queue.touched(id);
                });
            }
            if flushing && in_flight.is_empty() && queue.lock().order.is_empty() {
                return;
            }
            tokio::select! {
                () = &mut stop => return,
                () = &mut flush, if !flushing => {
                    flushing = true;
                    queue.lock().closed = true;
                }
                Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
                () = queue.queued.notified() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use futures_util::future::BoxFuture;
    use tokio::sync::Semaphore;

    use super::*;
    use crate::session::{Opened, StoreError, StoreStatus};

    /// Records the ids it is asked to touch, each touch waiting for a permit of `open`.
    struct Recording {
        touched: Mutex<Vec<String>>,
        open: Semaphore,
    }

    impl Recording {
        fn new(permits: usize) -> Arc<Self> {
            Arc::new(Self { touched: Mutex::default(), open: Semaphore::new(permits) })
        }

        fn touched(&self) -> Vec<String> {
            let mut touched = self.touched.lock().unwrap().clone();
            touched.sort();
            touched
        }
    }

    impl SessionStore for Recording {
        fn open<'a>(&'a self, _: &'a ClientId) -> BoxFuture<'a, Result<Opened, StoreError>> {
            unreachable!("the queue only touches")
        }

        fn touch<'a>(&'a self, id: &'a ClientId) -> BoxFuture<'a, Result<(), StoreError>> {
            Box::pin(async move {
                self.open.acquire().await.expect("open").forget();
                self.touched.lock().unwrap().push(id.to_string());
                Ok(())
            })
        }

        fn status(&self) -> StoreStatus {
            StoreStatus { kind: "recording", reachable: true }
        }
    }

    fn id(name: &str) -> ClientId {
        ClientId::parse(name).unwrap()
    }

    #[tokio::test]
    async fn every_session_queued_before_the_flush_is_touched_then_the_queue_ends() {
        let store = Recording::new(usize::MAX >> 4);
        let (touches, queue) = queue(100);
        for name in ["a", "b", "c"] {
            touches.request(id(name));
        }
        // The senders live on (as the instance's do): the flush alone ends the queue.
        queue.run(store.clone(), std::future::ready(()), std::future::pending()).await;
        touches.request(id("late"));
        assert_eq!(store.touched(), ["a", "b", "c"]);
    }

    #[tokio::test]
    async fn a_request_during_a_sessions_touch_touches_it_once_more_afterwards() {
        let store = Recording::new(0);
        let (touches, queue) = queue(10);
        let (flush_tx, flush_rx) = tokio::sync::oneshot::channel::<()>();
        let flushed = async move {
            let _ = flush_rx.await;
        };
        let run = tokio::spawn(queue.run(store.clone(), flushed, std::future::pending()));
        touches.request(id("closing"));
        tokio::task::yield_now().await; // its keep-alive touch is now on its way
        touches.request(id("closing")); // and its socket closes
        touches.request(id("closing"));
        let _ = flush_tx.send(());
        store.open.add_permits(10);
        run.await.unwrap();
        assert_eq!(store.touched(), ["closing", "closing"], "once more, not twice more");
    }

    #[tokio::test]
    async fn a_slow_store_holds_each_waiting_session_once_and_no_more_than_the_limit() {
        // The store answers nothing until told to: every request waits in the queue.
        let store = Recording::new(0);
        let (touches, queue) = queue(10);
        let (flush_tx, flush_rx) = tokio::sync::oneshot::channel::<()>();
        let flushed = async move {
            let _ = flush_rx.await;
        };
        let run = tokio::spawn(queue.run(store.clone(), flushed, std::future::pending()));
        tokio::task::yield_now().await;
        for _ in 0..1000 {
            touches.request(id("same"));
        }
        for i in 0..100 {
            touches.request(id(&format!("s{i}")));
        }
        let _ = flush_tx.send(());
        store.open.add_permits(1000);
        run.await.unwrap();
        let touched = store.touched();
        // "same" once, and nine others: the ten places were full before the store answered.
        assert_eq!(touched.iter().filter(|name| *name == "same").count(), 1);
        assert_eq!(touched.len(), 10, "{touched:?}");
    }
}
