//! A tick wheel: where each connection waits for its next tick, by the moment in the
//! second its ticks fall on.
//!
//! A second is cut into slots of [`SLOT`]. Each connection sits in the slot of its ticks'
//! phase, and a worker's one task ([`crate::worker`]) comes round to a slot when its moment
//! arrives and sends the tick of every connection in it. A tick then costs no timer of its
//! own: tokio's timer inserts and fires every `Sleep`, every time, and wakes a task per
//! socket. With the wheel, a worker wakes at most a hundred times a second however many
//! sockets it holds, and only for slots that hold any. A second is a whole number of
//! slots, so a connection stays in its slot from tick to tick.
//!
//! The workers' grids are staggered ([`Stagger`]): with two workers, one's slots fall 5 ms
//! after the other's. With one grid for all, 15,000 connections left in bursts of 150
//! every 10 ms, both workers sending at the same moment; a client reading a burst reads its
//! last tick a burst's worth after its first, in an order that changes from second to
//! second. Staggered, the bursts are half as large and twice as frequent, for no more
//! wakes. Finer slots would spread the ticks further (Node's timers fire in the loop turn
//! of their millisecond), but every slot is a wake, and a wake costs the server CPU of its
//! own and, on loopback, the wake of a client's thread: measured at 15,000 connections in
//! pairs against 10 ms slots, 1 ms slots cost 29% more CPU per tick, 2 ms 18%, 5 ms 5%
//! (and 13% at 5,000; docs/benchmarks.md, "Round three: tick timing").

use slab::Slab;
use std::{
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};
use tokio::time::Instant;

/// The wheel's resolution: a tick is sent up to this much after its moment.
pub const SLOT: Duration = Duration::from_millis(10);

const SLOT_NANOS: u64 = SLOT.as_nanos() as u64;

/// Slots in a second: how many times a second a busy worker comes round.
pub const SLOTS: usize = 100;

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

/// Where each worker's grid starts: the instance's start, moved on by the worker's share of
/// a slot, so that the workers' slot moments interleave instead of coinciding.
#[derive(Debug)]
pub struct Stagger {
    workers: usize,
    /// Wheels made so far.
    made: AtomicUsize,
}

impl Stagger {
    /// The grids of `workers` workers.
    pub fn new(workers: usize) -> Self {
        Self { workers: workers.max(1), made: AtomicUsize::new(0) }
    }

    /// The epoch of the next worker's wheel, for an instance that started at `started`.
    pub fn next_epoch(&self, started: Instant) -> Instant {
        let index = self.made.fetch_add(1, Ordering::Relaxed) % self.workers;
        started + SLOT * index as u32 / self.workers as u32
    }
}

/// A connection's place on the wheel, to leave it by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    slot: usize,
    key: usize,
}

/// The wheel's slots, each holding the connections whose ticks fall in it.
pub struct Wheel<C> {
    /// Where slot boundaries are counted from: the instance's start, staggered per worker
    /// ([`Stagger`]).
    epoch: Instant,
    slots: Vec<Slab<C>>,
    /// Connections on the wheel, so that an emptied wheel is known without a look at
    /// every slot.
    len: usize,
    /// The next slot moment not yet come round to.
    next: Instant,
}

impl<C> Wheel<C> {
    /// An empty wheel whose grid counts from `epoch`.
    pub fn new(epoch: Instant) -> Self {
        Self {
            epoch,
            slots: (0..SLOTS).map(|_| Slab::new()).collect(),
            len: 0,
            next: on_grid(Instant::now(), epoch),
        }
    }

    /// Where the grid is counted from.
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// Puts `connection` in the slot of `moment` (a moment on the grid).
    pub fn insert(&mut self, moment: Instant, connection: C) -> Place {
        let slot = self.slot_of(moment);
        self.len += 1;
        Place { slot, key: self.slots[slot].insert(connection) }
    }

    /// Takes the connection at `place` off the wheel.
    pub fn remove(&mut self, place: Place) -> C {
        self.len -= 1;
        self.slots[place.slot].remove(place.key)
    }

    /// Whether no connection is on the wheel.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every connection on the wheel.
    pub fn iter(&self) -> impl Iterator<Item = &C> {
        self.slots.iter().flat_map(|slot| slot.iter().map(|(_, connection)| connection))
    }

    /// Comes round to every slot whose moment has arrived by `now`, calling `visit` for
    /// each connection in it. After a stall of a second or more every slot is visited
    /// once, and the wheel goes on from `now`.
    pub fn come_round(&mut self, now: Instant, mut visit: impl FnMut(&C)) {
        for _ in 0..SLOTS {
            if self.next > now {
                break;
            }
            for (_, connection) in &self.slots[self.slot_of(self.next)] {
                visit(connection);
            }
            self.next += SLOT;
        }
        self.next = self.next.max(on_grid(now, self.epoch));
    }

    /// The next moment the wheel must come round for: the first slot moment from the next
    /// one on whose slot holds a connection (`None`: the wheel is empty). Under load that is
    /// the next slot itself; a nearly idle worker sleeps through the empty ones.
    pub fn next_occupied(&self) -> Option<Instant> {
        if self.is_empty() {
            return None;
        }
        let start = self.slot_of(self.next);
        (0..SLOTS)
            .find(|offset| !self.slots[(start + offset) % SLOTS].is_empty())
            .map(|offset| self.next + SLOT * offset as u32)
    }

    /// The slot of a second that `moment` falls in.
    fn slot_of(&self, moment: Instant) -> usize {
        (slots_since(moment, self.epoch) % SLOTS as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    #[test]
    fn moments_round_up_to_the_grid() {
        let epoch = Instant::now();
        assert_eq!(on_grid(epoch + ms(1), epoch), epoch + ms(10));
        assert_eq!(on_grid(epoch + ms(10), epoch), epoch + ms(10));
        assert_eq!(on_grid(epoch + ms(10) + Duration::from_nanos(1), epoch), epoch + ms(20));
    }

    /// Which connections a wheel comes round to at each of `moments`.
    fn visits(wheel: &mut Wheel<&'static str>, moments: &[Instant]) -> Vec<Vec<&'static str>> {
        moments
            .iter()
            .map(|&now| {
                let mut seen = Vec::new();
                wheel.come_round(now, |name| seen.push(*name));
                seen
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn each_connection_is_visited_once_a_second_in_its_slot() {
        let epoch = Instant::now();
        let mut wheel = Wheel::new(epoch);
        wheel.insert(epoch + ms(50), "early");
        let late = wheel.insert(epoch + ms(550), "late");
        let at = |millis| epoch + ms(millis);
        assert_eq!(
            visits(&mut wheel, &[at(40), at(300), at(999), at(1050), at(1600)]),
            [vec![], vec!["early"], vec!["late"], vec!["early"], vec!["late"]]
        );
        wheel.remove(late);
        assert_eq!(visits(&mut wheel, &[at(2999)]), [vec!["early"]], "a connection that left");
    }

    #[tokio::test(start_paused = true)]
    async fn the_workers_grids_interleave() {
        let started = Instant::now();
        let stagger = Stagger::new(2);
        let epochs: Vec<_> = (0..3).map(|_| stagger.next_epoch(started)).collect();
        assert_eq!(epochs, [started, started + ms(5), started], "half a slot apart");
        // The same moment falls in a slot of each, 5 ms apart.
        let moment = started + ms(1001);
        assert_eq!(on_grid(moment, epochs[0]), started + ms(1010));
        assert_eq!(on_grid(moment, epochs[1]), started + ms(1005));
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_stall_every_slot_is_visited_once() {
        let epoch = Instant::now();
        let mut wheel = Wheel::new(epoch);
        wheel.insert(epoch + ms(50), "a");
        wheel.insert(epoch + ms(550), "b");
        let mut seen = visits(&mut wheel, &[epoch + ms(3_600)]).remove(0);
        seen.sort_unstable();
        assert_eq!(seen, ["a", "b"], "once each, not once per second missed");
        assert_eq!(wheel.next_occupied(), Some(epoch + ms(4_050)), "on from the stall's end");
    }

    #[tokio::test(start_paused = true)]
    async fn a_nearly_idle_wheel_sleeps_until_its_next_occupied_slot() {
        let epoch = Instant::now();
        let mut wheel = Wheel::new(epoch);
        assert_eq!(wheel.next_occupied(), None);
        let place = wheel.insert(epoch + ms(800), ());
        assert_eq!(wheel.next_occupied(), Some(epoch + ms(800)), "not every 10 ms");
        wheel.insert(epoch + ms(1300), ());
        assert_eq!(wheel.next_occupied(), Some(epoch + ms(300)), "a second's slot comes round");
        wheel.remove(place);
        assert!(!wheel.is_empty());
    }
}
