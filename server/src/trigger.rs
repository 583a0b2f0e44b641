//! A one-way switch that every connection watches: firing it wakes them all, and checking
//! it is one atomic load.
//!
//! A `CancellationToken` would do the same, but checking one takes its lock, and every
//! connection checks on every poll: at thousands of ticks a second on two workers that
//! lock is contended. Here a connection takes the lock once, to leave its waker.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    task::{Context, Poll},
};

use pin_project_lite::pin_project;
use tokio::sync::{futures::OwnedNotified, Notify};

/// The switch.
#[derive(Debug, Default)]
pub struct Trigger {
    fired: AtomicBool,
    notify: Arc<Notify>,
}

impl Trigger {
    /// Fires the trigger and wakes every [`Watch`] waiting on it.
    pub fn fire(&self) {
        self.fired.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    /// Whether the trigger has fired.
    pub fn has_fired(&self) -> bool {
        self.fired.load(Ordering::Acquire)
    }

    /// A watch on this trigger; it sees a firing from the moment it is created, even before
    /// it is first polled.
    pub fn watch(&self) -> Watch {
        Watch { notified: Arc::clone(&self.notify).notified_owned() }
    }
}

pin_project! {
    /// One watcher's registration.
    pub struct Watch {
        #[pin]
        notified: OwnedNotified,
    }
}

impl Watch {
    /// Ready once `trigger` (the trigger this watch came from) has fired. A call that finds
    /// it unfired leaves the task's waker, under the trigger's lock; the waker stays until
    /// the firing, so a task polled often calls this once, then again only when
    /// [`Trigger::has_fired`] says so.
    pub fn poll_fired(self: Pin<&mut Self>, trigger: &Trigger, cx: &mut Context<'_>) -> Poll<()> {
        if trigger.has_fired() {
            return Poll::Ready(());
        }
        self.project().notified.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use super::*;

    /// Counts its wakes.
    struct Counting(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Counting {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn firing_wakes_a_waiting_watch_once_and_it_then_stays_ready() {
        let trigger = Trigger::default();
        let wakes = Arc::new(Counting(0.into()));
        let waker = Waker::from(Arc::clone(&wakes));
        let mut cx = Context::from_waker(&waker);
        let mut watch = std::pin::pin!(trigger.watch());

        assert!(watch.as_mut().poll_fired(&trigger, &mut cx).is_pending());
        assert!(watch.as_mut().poll_fired(&trigger, &mut cx).is_pending());
        trigger.fire();
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
        assert!(watch.as_mut().poll_fired(&trigger, &mut cx).is_ready());
        assert!(watch.as_mut().poll_fired(&trigger, &mut cx).is_ready());
    }

    #[test]
    fn a_watch_first_polled_after_the_firing_is_ready_at_once() {
        let trigger = Trigger::default();
        let mut watch = std::pin::pin!(trigger.watch());
        trigger.fire();
        let mut cx = Context::from_waker(Waker::noop());
        assert!(watch.as_mut().poll_fired(&trigger, &mut cx).is_ready());
    }
}
