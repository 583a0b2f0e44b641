//! A tick wheel: where each connection waits for its next tick, by the moment in the
//! second its ticks fall on.
//!
//! A second is cut into slots of [`SLOT`]. Each connection sits in the slot of its ticks'
//! phase, and a worker's one task ([`crate::worker`]) comes round to a slot when its moment
//! arrives and sends the tick of every connection in it. A tick then costs no timer of its
//! own: tokio's timer inserts and fires every `Sleep`, every time, and wakes a task per
//! socket. With the wheel, a worker wakes at most two hundred times a second however many
//! sockets it holds, and only for slots that hold any. A second is a whole number of
//! slots, so a connection stays in its slot from tick to tick.
//!
//! A slot is 5 ms. With 10 ms, 15,000 connections left in bursts of 150 a slot; a client
//! reading a burst reads its last tick a burst's worth after its first, in an order that
//! changes from second to second. Finer slots spread the ticks as the connections' phases
//! are (Node's timers fire in the loop turn of their millisecond), but every slot is a wake
//! of the worker, and a wake costs the server CPU of its own and, on loopback, the wake of
//! a client's thread for its first tick. Measured at 15,000 connections, in pairs against
//! 10 ms slots: 1 ms slots cost 29% more CPU per tick, 2 ms 18%, 5 ms 5% (docs/benchmarks.md,
//! "Tick timing").

use slab::Slab;
use std::time::Duration;
use tokio::time::Instant;

/// The wheel's resolution: a tick is sent up to this much after its moment.
pub const SLOT: Duration = Duration::from_millis(5);

const SLOT_NANOS: u64 = SLOT.as_nanos() as u64;

/// Slots in a second: how many times a second a busy worker comes round.
pub const SLOTS: usize = 200;

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

/// A connection's place on the wheel, to leave it by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    slot: usize,
    key: usize,
}

/// The wheel's slots, each holding the connections whose ticks fall in it.
pub struct Wheel<C> {
    /// Where slot boundaries are counted from: the same for every worker, the instance's
    /// start, so that the slot of a moment is the same on every worker.
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
        let micros = Duration::from_micros;
        assert_eq!(on_grid(epoch + micros(100), epoch), epoch + ms(5));
        assert_eq!(on_grid(epoch + ms(10), epoch), epoch + ms(10));
        assert_eq!(on_grid(epoch + ms(10) + Duration::from_nanos(1), epoch), epoch + ms(15));
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
    async fn connections_a_few_milliseconds_apart_are_visited_apart() {
        let epoch = Instant::now();
        let mut wheel = Wheel::new(epoch);
        for (millis, name) in [(5, "a"), (10, "b"), (15, "c")] {
            wheel.insert(epoch + ms(millis), name);
        }
        let at = |millis| epoch + ms(millis);
        assert_eq!(
            visits(&mut wheel, &[at(5), at(10), at(15)]),
            [vec!["a"], vec!["b"], vec!["c"]],
            "each at its own moment, not one burst"
        );
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
        assert_eq!(wheel.next_occupied(), Some(epoch + ms(800)), "not every slot");
        wheel.insert(epoch + ms(1300), ());
        assert_eq!(wheel.next_occupied(), Some(epoch + ms(300)), "a second's slot comes round");
        wheel.remove(place);
        assert!(!wheel.is_empty());
    }
}
