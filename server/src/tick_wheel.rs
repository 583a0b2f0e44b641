//! One tick clock per worker thread, instead of a timer per socket.
//!
//! A second is cut into slots of [`SLOT`]. Each connection sits in the slot of its ticks'
//! phase, and one task per worker wakes a slot's connections when the slot comes round.
//! A tick then costs the socket only its wake: no timer-wheel insertion and firing, which
//! tokio's timer does for every `Sleep`, every time. And the connections sharing a slot are
//! woken together, so a worker wakes at most a hundred times a second however many sockets
//! it holds, and only for slots that hold any: a worker with one socket wakes once a second.
//! A second is a whole number of slots, so a connection stays in its slot from tick to tick.

use std::{cell::RefCell, rc::Rc, task::Waker, time::Duration};

use slab::Slab;
use tokio::{sync::Notify, time::Instant};

/// The wheel's resolution: a tick is sent up to this much after its moment.
pub const SLOT: Duration = Duration::from_millis(10);

const SLOT_NANOS: u64 = SLOT.as_nanos() as u64;

/// Slots in a second.
const SLOTS: usize = 100;

const _: () = assert!(SLOT_NANOS * SLOTS as u64 == 1_000_000_000);

/// The first slot boundary, counted from `epoch`, that is not before `moment`.
pub fn on_grid(moment: Instant, epoch: Instant) -> Instant {
    epoch + Duration::from_nanos(slots_since(moment, epoch).saturating_mul(SLOT_NANOS))
}

/// Slot boundaries from `epoch` to `moment`, rounded up.
fn slots_since(moment: Instant, epoch: Instant) -> u64 {
    let nanos = u64::try_from(moment.saturating_duration_since(epoch).as_nanos());
    nanos.unwrap_or(u64::MAX).div_ceil(SLOT_NANOS)
}

/// The slot of a second that `moment` falls in.
fn slot_of(moment: Instant, epoch: Instant) -> usize {
    (slots_since(moment, epoch) % SLOTS as u64) as usize
}

/// One worker's wheel.
struct Wheel {
    /// Where slot boundaries are counted from: the same for every worker, the instance's start.
    epoch: Instant,
    /// The wakers of the connections in each slot.
    slots: Vec<Slab<Waker>>,
    /// Whether this worker's [`turn`] task is running.
    turning: bool,
    /// When the turn task wakes next: the next moment of the first slot that holds anyone.
    wakes_at: Instant,
    /// Tells the turn task that a connection joined a slot that comes round before
    /// `wakes_at` (waking a task that is merely sleeping would not cut its sleep short).
    joined_earlier: Rc<Notify>,
}

impl Wheel {
    /// Puts `waker` in the slot of `tick`, making sure the turn task wakes for it; returns
    /// the slot and the waker's key in it.
    fn insert(&mut self, tick: Instant, waker: Waker) -> (usize, usize) {
        let slot = slot_of(tick, self.epoch);
        let key = self.slots[slot].insert(waker);
        if tick < self.wakes_at {
            self.wakes_at = tick;
            self.joined_earlier.notify_one();
        }
        (slot, key)
    }

    /// Wakes the connections of every slot whose moment, from `next` on, has come by `now`,
    /// and returns the first slot moment not yet woken. After a stall of a second or more
    /// every slot is woken once, and the wheel goes on from `now`.
    fn wake_due(&self, mut next: Instant, now: Instant) -> Instant {
        for _ in 0..SLOTS {
            if next > now {
                break;
            }
            for (_, waker) in &self.slots[slot_of(next, self.epoch)] {
                waker.wake_by_ref();
            }
            next += SLOT;
        }
        next.max(on_grid(now, self.epoch))
    }

    /// The first moment from `next` on whose slot holds a connection (`None`: the wheel is
    /// empty). Under load that is `next` itself; a nearly idle worker skips the empty slots
    /// instead of waking for each of them.
    fn first_occupied(&self, next: Instant) -> Option<Instant> {
        let start = slot_of(next, self.epoch);
        (0..SLOTS)
            .find(|offset| !self.slots[(start + offset) % SLOTS].is_empty())
            .map(|offset| next + SLOT * offset as u32)
    }
}

thread_local! {
    static WHEEL: RefCell<Option<Wheel>> = const { RefCell::new(None) };
}

/// A connection's place on its worker's wheel; it leaves the wheel when dropped. It must stay
/// on the thread that made it, as everything an actix worker runs does.
pub struct Place {
    slot: usize,
    key: usize,
}

impl Place {
    /// Joins this worker's wheel in the slot of `tick`, to be woken through `waker` each
    /// time that slot comes round. Starts the worker's wheel if it is not turning.
    pub fn join(tick: Instant, epoch: Instant, waker: &Waker) -> Self {
        WHEEL.with_borrow_mut(|wheel| {
            let wheel = wheel.get_or_insert_with(|| Wheel {
                epoch,
                slots: (0..SLOTS).map(|_| Slab::new()).collect(),
                turning: false,
                wakes_at: epoch,
                joined_earlier: Rc::new(Notify::new()),
            });
            let (slot, key) = wheel.insert(tick, waker.clone());
            if !wheel.turning {
                wheel.turning = true;
                actix_web::rt::spawn(turn(wheel.epoch, Rc::clone(&wheel.joined_earlier)));
            }
            Self { slot, key }
        })
    }

    /// Moves to the slot of `tick` (after a stall moved the connection's phase).
    pub fn follow(&mut self, tick: Instant) {
        WHEEL.with_borrow_mut(|wheel| {
            let Some(wheel) = wheel else { return };
            if slot_of(tick, wheel.epoch) != self.slot {
                let waker = wheel.slots[self.slot].remove(self.key);
                (self.slot, self.key) = wheel.insert(tick, waker);
            }
        });
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        // The wheel may already be gone if the worker thread is exiting.
        let _ = WHEEL.try_with(|wheel| {
            if let Some(wheel) = wheel.borrow_mut().as_mut() {
                wheel.slots[self.slot].remove(self.key);
            }
        });
    }
}

/// Turns this worker's wheel: wakes each slot's connections when the slot comes round, until
/// no connection is left. Sleeps through slots that hold nobody; `joined_earlier` cuts the
/// sleep short when a connection joins one of them.
async fn turn(epoch: Instant, joined_earlier: Rc<Notify>) {
    let mut next = on_grid(Instant::now(), epoch);
    loop {
        let now = Instant::now();
        let wakes_at = WHEEL.with_borrow_mut(|wheel| {
            let wheel = wheel.as_mut()?;
            next = wheel.wake_due(next, now);
            let wakes_at = wheel.first_occupied(next);
            match wakes_at {
                Some(at) => wheel.wakes_at = at,
                None => wheel.turning = false,
            }
            wakes_at
        });
        let Some(wakes_at) = wakes_at else { return };
        tokio::select! {
            () = tokio::time::sleep_until(wakes_at) => {}
            () = joined_earlier.notified() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{
            atomic::{AtomicUsize, Ordering},
            Arc,
        },
        task::Wake,
    };

    use super::*;

    #[test]
    fn moments_round_up_to_the_grid_and_a_second_later_is_the_same_slot() {
        let epoch = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(on_grid(epoch + ms(1), epoch), epoch + ms(10));
        assert_eq!(on_grid(epoch + ms(10), epoch), epoch + ms(10));
        assert_eq!(on_grid(epoch + ms(10) + Duration::from_nanos(1), epoch), epoch + ms(20));
        let moment = on_grid(epoch + ms(1234), epoch);
        assert_eq!(slot_of(moment, epoch), slot_of(moment + Duration::from_secs(1), epoch));
        assert_ne!(slot_of(moment, epoch), slot_of(moment + SLOT, epoch));
    }

    /// Counts its wakes.
    #[derive(Default)]
    struct Counting(AtomicUsize);

    impl Wake for Counting {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[actix_web::test]
    async fn each_place_is_woken_once_a_second_in_its_slot_until_it_leaves() {
        let epoch = Instant::now();
        let (early, late) = (Arc::new(Counting::default()), Arc::new(Counting::default()));
        let start = on_grid(Instant::now(), epoch);
        let early_place =
            Place::join(start + Duration::from_millis(50), epoch, &Waker::from(early.clone()));
        let late_place =
            Place::join(start + Duration::from_millis(550), epoch, &Waker::from(late.clone()));

        tokio::time::sleep_until(start + Duration::from_millis(300)).await;
        assert_eq!(early.0.load(Ordering::SeqCst), 1, "woken in its slot");
        assert_eq!(late.0.load(Ordering::SeqCst), 0, "its slot has not come yet");
        tokio::time::sleep_until(start + Duration::from_millis(1300)).await;
        assert_eq!(early.0.load(Ordering::SeqCst), 2, "and again a second later");
        assert_eq!(late.0.load(Ordering::SeqCst), 1);

        drop(early_place);
        tokio::time::sleep_until(start + Duration::from_millis(2300)).await;
        assert_eq!(early.0.load(Ordering::SeqCst), 2, "a place that left is not woken");
        assert_eq!(late.0.load(Ordering::SeqCst), 2);
        drop(late_place);
        // The turn task notices at its next wake, the slot the last place was in.
        tokio::time::sleep_until(start + Duration::from_millis(2600)).await;
        assert!(
            WHEEL.with_borrow(|wheel| !wheel.as_ref().unwrap().turning),
            "an empty wheel stops"
        );
    }

    /// When this worker's turn task will wake next.
    fn wakes_at() -> Instant {
        WHEEL.with_borrow(|wheel| wheel.as_ref().unwrap().wakes_at)
    }

    #[actix_web::test]
    async fn a_nearly_idle_wheel_sleeps_until_the_next_occupied_slot() {
        let epoch = Instant::now();
        let start = on_grid(Instant::now(), epoch);
        let (late, early) = (Arc::new(Counting::default()), Arc::new(Counting::default()));
        let _late = Place::join(start + Duration::from_millis(800), epoch, &Waker::from(late));
        tokio::time::sleep_until(start + Duration::from_millis(100)).await;
        assert_eq!(wakes_at(), start + Duration::from_millis(800), "not at every slot");

        // A place joining a slot that comes round sooner cuts the sleep short.
        let _early =
            Place::join(start + Duration::from_millis(300), epoch, &Waker::from(early.clone()));
        tokio::time::sleep_until(start + Duration::from_millis(400)).await;
        assert_eq!(early.0.load(Ordering::SeqCst), 1, "woken in its slot, not at 800 ms");
        assert_eq!(wakes_at(), start + Duration::from_millis(800));
    }
}
