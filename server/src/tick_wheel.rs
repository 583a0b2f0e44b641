//! One tick clock per worker thread, instead of a timer per socket.
//!
//! A second is cut into slots of [`SLOT`]. Each connection sits in the slot of its ticks'
//! phase, and one task per worker wakes a slot's connections when the slot comes round.
//! A tick then costs the socket only its wake: no timer-wheel insertion and firing, which
//! tokio's timer does for every `Sleep`, every time. And the connections sharing a slot are
//! woken together, so a worker wakes a hundred times a second however many sockets it holds.
//! A second is a whole number of slots, so a connection stays in its slot from tick to tick.

use std::{cell::RefCell, task::Waker, time::Duration};

use slab::Slab;
use tokio::time::Instant;

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
    members: usize,
    /// Whether this worker's [`turn`] task is running.
    turning: bool,
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
                members: 0,
                turning: false,
            });
            let slot = slot_of(tick, wheel.epoch);
            let key = wheel.slots[slot].insert(waker.clone());
            wheel.members += 1;
            if !wheel.turning {
                wheel.turning = true;
                actix_web::rt::spawn(turn(wheel.epoch));
            }
            Self { slot, key }
        })
    }

    /// Moves to the slot of `tick` (after a stall moved the connection's phase).
    pub fn follow(&mut self, tick: Instant) {
        WHEEL.with_borrow_mut(|wheel| {
            let Some(wheel) = wheel else { return };
            let slot = slot_of(tick, wheel.epoch);
            if slot != self.slot {
                let waker = wheel.slots[self.slot].remove(self.key);
                self.key = wheel.slots[slot].insert(waker);
                self.slot = slot;
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
                wheel.members -= 1;
            }
        });
    }
}

/// Turns this worker's wheel: wakes each slot's connections when the slot comes round, until
/// no connection is left.
async fn turn(epoch: Instant) {
    let mut next = on_grid(Instant::now(), epoch);
    loop {
        tokio::time::sleep_until(next).await;
        let now = Instant::now();
        let members = WHEEL.with_borrow_mut(|wheel| {
            let Some(wheel) = wheel else { return 0 };
            // Every slot that has come round: a stalled worker catches up, once per slot.
            for _ in 0..SLOTS {
                if next > now {
                    break;
                }
                for (_, waker) in &wheel.slots[slot_of(next, epoch)] {
                    waker.wake_by_ref();
                }
                next += SLOT;
            }
            if wheel.members == 0 {
                wheel.turning = false;
            }
            wheel.members
        });
        if members == 0 {
            return;
        }
        // After a stall of a second or more every slot has been woken once; go on from now.
        next = next.max(on_grid(now, epoch));
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
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            WHEEL.with_borrow(|wheel| !wheel.as_ref().unwrap().turning),
            "an empty wheel stops"
        );
    }
}
