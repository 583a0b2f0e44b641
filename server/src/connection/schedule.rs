//! When a connection's periodic duties fall due: its ticks, its pings, its session's
//! keep-alive. Plain arithmetic on instants, so every rule is tested without a socket.

use std::time::Duration;

use tokio::time::Instant;

use crate::{session::Opened, tick_wheel};

/// Time between ticks.
pub const TICK_INTERVAL: Duration = Duration::from_secs(1);

/// The timers every connection runs.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Between the server's pings; idleness is checked at each. Pings go out with ticks, so
    /// at most once a second.
    pub ping_interval: Duration,
    /// Silence after which a peer is dropped (noticed at the next ping, so within
    /// `idle_timeout + ping_interval`).
    pub idle_timeout: Duration,
    /// Between refreshes of the session's expiry while the socket holds it.
    pub keep_alive: Duration,
}

/// A connection's timetable.
///
/// The first tick goes out at the open and says the session's count ([`Opened::first`]);
/// each later tick is due when the session's age reaches its count, measured on this
/// instance's monotonic clock from the age the store reported, and rounded up to the tick
/// wheel's grid (where the wheel comes round). So ticks go up by one per second, never
/// repeat, and a reconnect anywhere continues where the last one stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// The count of the last tick sent.
    seconds: u64,
    next_tick: Instant,
    /// Pings fall on tick moments, so a ping leaves in the same write as a tick.
    next_ping: Instant,
    next_keep_alive: Instant,
}

/// What a visit of the wheel found due.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Due {
    /// The count of the tick to send now.
    pub tick: Option<u64>,
    /// Time to ping the client (and to judge whether it has gone quiet).
    pub ping: bool,
    /// Time to restart the session's expiry in the store.
    pub keep_alive: bool,
}

impl Schedule {
    /// The timetable of a connection opened at `now` on a session the store reported as
    /// `opened`, whose first tick (`opened.first`) is sent at once. `epoch` is where the
    /// wheel's grid is counted from.
    pub fn new(opened: Opened, now: Instant, epoch: Instant, timing: &Timing) -> Self {
        // `first` is at least the age rounded up, so the next count is always in the future.
        let next_tick =
            tick_wheel::on_grid(now + (Duration::from_secs(opened.first + 1) - opened.age), epoch);
        Self {
            seconds: opened.first,
            next_tick,
            next_ping: next_tick + timing.ping_interval.saturating_sub(TICK_INTERVAL),
            next_keep_alive: next_tick + timing.keep_alive,
        }
    }

    /// The count of the last tick sent.
    pub fn seconds(&self) -> u64 {
        self.seconds
    }

    /// When the next tick is due: the wheel's slot for this connection.
    pub fn next_tick(&self) -> Instant {
        self.next_tick
    }

    /// What is due at `now`, moving each duty that is on to its next moment.
    ///
    /// After a stall (the wheel came round late), one tick is sent for all that were
    /// missed, never a burst, and the following ones keep their moments: a client sees one
    /// late tick, not every later tick shifted by the stall. The count still goes up by
    /// one per tick sent.
    pub fn advance(&mut self, now: Instant, timing: &Timing) -> Due {
        let mut due = Due::default();
        if self.next_tick <= now {
            self.seconds += 1;
            due.tick = Some(self.seconds);
            self.next_tick = first_after(self.next_tick, TICK_INTERVAL, now);
        }
        if self.next_ping <= now {
            due.ping = true;
            // At least a second apart: the wheel visits a connection once a second.
            let interval = timing.ping_interval.max(TICK_INTERVAL);
            self.next_ping = first_after(self.next_ping, interval, now);
        }
        if self.next_keep_alive <= now {
            due.keep_alive = true;
            self.next_keep_alive = now + timing.keep_alive;
        }
        due
    }
}

/// The first of `from`, `from + every`, `from + 2·every`, … that is after `now`.
fn first_after(from: Instant, every: Duration, now: Instant) -> Instant {
    let behind = now.saturating_duration_since(from).as_nanos();
    let steps = behind / every.as_nanos() + 1;
    from + every * u32::try_from(steps).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing(ping_secs: f64) -> Timing {
        Timing {
            ping_interval: Duration::from_secs_f64(ping_secs),
            idle_timeout: Duration::from_secs(30),
            keep_alive: Duration::from_secs(60),
        }
    }

    const fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    #[test]
    fn a_new_session_ticks_one_second_after_its_open_on_the_grid() {
        let epoch = Instant::now();
        let now = epoch + ms(1234) + Duration::from_micros(300);
        let opened = Opened::at(Duration::ZERO);
        let schedule = Schedule::new(opened, now, epoch, &timing(10.0));
        assert_eq!(schedule.next_tick(), epoch + ms(2240), "rounded up to the 10 ms grid");
        assert_eq!(schedule.seconds(), 0);
    }

    #[test]
    fn a_resumed_session_ticks_when_its_age_reaches_the_next_count() {
        let epoch = Instant::now();
        // The store says the session is 12.3 s old: the first tick says 13 at once, and
        // 14 is due when the age reaches 14, 1.7 s from now.
        let opened = Opened::at(ms(12_300));
        let schedule = Schedule::new(opened, epoch, epoch, &timing(10.0));
        assert_eq!((schedule.seconds(), schedule.next_tick()), (13, epoch + ms(1700)));
    }

    #[test]
    fn ticks_count_up_once_a_second_and_pings_fall_on_ticks() {
        let epoch = Instant::now();
        let timing = timing(3.0);
        let mut schedule = Schedule::new(Opened::at(Duration::ZERO), epoch, epoch, &timing);
        let visits: Vec<Due> =
            (1..=7).map(|s| schedule.advance(epoch + Duration::from_secs(s), &timing)).collect();
        let ticks: Vec<_> = visits.iter().map(|due| due.tick).collect();
        assert_eq!(ticks, [1, 2, 3, 4, 5, 6, 7].map(Some));
        let pings: Vec<_> = visits.iter().map(|due| due.ping).collect();
        assert_eq!(pings, [false, false, true, false, false, true, false]);
        assert!(schedule.advance(epoch + ms(7_500), &timing) == Due::default(), "nothing early");
    }

    #[test]
    fn after_a_stall_one_tick_is_sent_and_the_next_keeps_its_moment() {
        let epoch = Instant::now();
        let timing = timing(10.0);
        let mut schedule = Schedule::new(Opened::at(Duration::ZERO), epoch, epoch, &timing);
        assert_eq!(schedule.advance(epoch + Duration::from_secs(1), &timing).tick, Some(1));
        // The wheel comes round 3.25 s late: ticks 2, 3 and 4 were due; one tick goes out.
        let late = epoch + ms(4_250);
        assert_eq!(schedule.advance(late, &timing).tick, Some(2));
        assert_eq!(schedule.advance(late, &timing).tick, None, "no burst");
        assert_eq!(schedule.next_tick(), epoch + Duration::from_secs(5), "same phase as before");
        assert_eq!(schedule.advance(epoch + Duration::from_secs(5), &timing).tick, Some(3));
    }

    #[test]
    fn the_keep_alive_comes_round_at_its_interval() {
        let epoch = Instant::now();
        let timing = timing(10.0);
        let mut schedule = Schedule::new(Opened::at(Duration::ZERO), epoch, epoch, &timing);
        let kept: Vec<u64> = (1..=130)
            .filter(|&s| schedule.advance(epoch + Duration::from_secs(s), &timing).keep_alive)
            .collect();
        assert_eq!(kept, [61, 121]);
    }
}
