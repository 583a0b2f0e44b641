//! Per-client limits: how many sockets one address may hold on this instance
//! (`MAX_CONNECTIONS_PER_CLIENT`), how fast it may open them (`CONNECT_RATE_PER_CLIENT`,
//! a token bucket per address), and how many of its connections may be in their HTTP phase
//! at once (`MAX_PENDING_HANDSHAKES_PER_CLIENT`: handshakes, page loads, health checks,
//! the instance's pending pool), so one address cannot take every connection slot nor hold
//! up everyone else's handshakes.
//!
//! An address is the client's (see [`crate::client_addr`]); an IPv6 client is counted by
//! its /64, which is what one subscriber usually holds, and its /48 by a looser limit of
//! [`SHARES_PER_RANGE`] clients' worth, which it shares with the /64s beside it. The table
//! is bounded: an entry with no socket open and a full bucket carries no state, and is
//! swept out.

use std::{
    collections::HashMap,
    iter,
    net::{IpAddr, Ipv6Addr},
    str::FromStr,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use tokio::time::Instant;

/// The slowest rate `CONNECT_RATE_PER_CLIENT` takes: an upgrade every 1,000 s (about 17
/// minutes). Slower would be a ban rather than a rate, and a refused client is told to come
/// back in up to one interval.
pub const MIN_RATE: f64 = 0.001;

/// The fastest: a million upgrades a second, far more than one instance can accept, so
/// anything faster would limit nothing (`0` turns the limit off and says so).
pub const MAX_RATE: f64 = 1_000_000.0;

/// How many clients' worth of sockets, rate and burst the /64s of one IPv6 /48 share.
///
/// Counted only by /64, whoever holds a /48 would be 65,536 clients, and a /48 is easy to
/// hold: an ISP hands one to a customer (or a /56: a /64 per network in the home or
/// office), and anyone can rent one. At a hosting provider, which hands each VM a /64 out
/// of a /48 it shares between customers, it is a few neighbours. Four shares is room for a
/// customer with a few busy networks and for those neighbours, since one share is sized for
/// a whole NAT (`MAX_CONNECTIONS_PER_CLIENT` defaults to 2,000 sockets, and a page opens
/// one), while one /48 takes no more than four IPv4 addresses could.
pub const SHARES_PER_RANGE: u32 = 4;

/// Upgrades per second an address may make, with a burst.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConnectRate {
    /// Tokens added per second.
    pub per_second: f64,
    /// The bucket's size: upgrades an address may make at once after a quiet while.
    pub burst: f64,
}

impl FromStr for ConnectRate {
    type Err = String;

    /// `RATE` (a burst of 20 seconds' worth) or `RATE/BURST`, e.g. `50/1000`, with RATE
    /// from [`MIN_RATE`] to [`MAX_RATE`].
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let (rate, burst) = match raw.split_once('/') {
            Some((rate, burst)) => (rate, Some(burst)),
            None => (raw, None),
        };
        let number =
            |text: &str| text.trim().parse::<f64>().ok().filter(|n| *n > 0.0 && n.is_finite());
        let message = || format!("{raw:?} is not RATE or RATE/BURST, such as 50 or 50/1000");
        let per_second = number(rate).ok_or_else(message)?;
        if !(MIN_RATE..=MAX_RATE).contains(&per_second) {
            // One line, without the value: clap's message quotes it already.
            return Err(format!(
                "the rate must be from {MIN_RATE} to {MAX_RATE} upgrades a second"
            ));
        }
        let burst = match burst {
            Some(burst) => number(burst).ok_or_else(message)?,
            None => per_second * 20.0,
        };
        Ok(Self { per_second, burst: burst.max(1.0) })
    }
}

/// Why an address was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverLimit {
    /// It holds `MAX_CONNECTIONS_PER_CLIENT` sockets already (or its /48 holds its share).
    TooMany,
    /// It opens them faster than `CONNECT_RATE_PER_CLIENT`; a token is due in this long.
    TooFast(Duration),
}

/// Entries the table holds before it sweeps out the idle ones.
const SWEEP_AT: usize = 4096;

/// The limits, and what each client and IPv6 range has used of them.
#[derive(Debug)]
pub struct ClientLimits {
    /// An IPv4 address's or an IPv6 /64's.
    client: Limit,
    /// An IPv6 /48's: [`SHARES_PER_RANGE`] times the client's.
    range: Limit,
    table: Mutex<Table>,
}

/// The limits on one bucket; `None` leaves that limit off.
#[derive(Debug, Clone, Copy)]
struct Limit {
    max_connections: Option<u32>,
    rate: Option<ConnectRate>,
    max_pending: Option<u32>,
}

/// What a socket is counted under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Bucket {
    /// An IPv4 address or an IPv6 /64 (its first 64 bits): one client.
    Client(IpAddr),
    /// An IPv6 /48 (its first 48 bits): the range its /64s share.
    Range(Ipv6Addr),
}

/// The buckets one client's sockets count against.
#[derive(Debug, Clone, Copy)]
struct Buckets {
    client: Bucket,
    range: Option<Bucket>,
}

#[derive(Debug)]
struct Table {
    buckets: HashMap<Bucket, Usage>,
    sweep_at: usize,
}

#[derive(Debug)]
struct Usage {
    open: u32,
    tokens: f64,
    refilled: Instant,
    /// Connections in their HTTP phase.
    pending: u32,
}

/// One admitted socket's share of its client's limits (and its /48's), given back when
/// dropped.
#[derive(Debug)]
pub struct ClientSlot {
    limits: Arc<ClientLimits>,
    buckets: Buckets,
}

/// One connection's place among its client's connections in their HTTP phase, given back
/// when dropped (the connection closed, or became a WebSocket).
#[derive(Debug)]
pub struct PendingSlot {
    limits: Arc<ClientLimits>,
    buckets: Buckets,
}

impl ClientLimits {
    /// Limits of at most `max_connections` sockets and `rate` upgrades per client; `None`
    /// leaves that limit off.
    pub fn new(max_connections: Option<u32>, rate: Option<ConnectRate>) -> Self {
        let client = Limit { max_connections, rate, max_pending: None };
        let shares = f64::from(SHARES_PER_RANGE);
        let range = Limit {
            max_connections: max_connections.map(|max| max.saturating_mul(SHARES_PER_RANGE)),
            rate: rate.map(|rate| ConnectRate {
                per_second: rate.per_second * shares,
                burst: rate.burst * shares,
            }),
            max_pending: None,
        };
        let table = Table { buckets: HashMap::new(), sweep_at: SWEEP_AT };
        Self { client, range, table: Mutex::new(table) }
    }

    /// The same limits, and at most `max_pending` connections per client in their HTTP
    /// phase at once (its /48: [`SHARES_PER_RANGE`] times that).
    pub fn with_max_pending(mut self, max_pending: Option<u32>) -> Self {
        self.client.max_pending = max_pending;
        self.range.max_pending = max_pending.map(|max| max.saturating_mul(SHARES_PER_RANGE));
        self
    }

    /// Counts one more connection of `client` in its HTTP phase, or `None` when the client
    /// (or its /48) already holds its share of the instance's pending pool. No time: a
    /// connection is counted from its accept to its end or its `101`.
    pub fn admit_pending(self: &Arc<Self>, client: IpAddr) -> Option<PendingSlot> {
        let buckets = Buckets::of(client);
        let now = Instant::now();
        let mut table = self.swept(now);
        let full = buckets.iter().any(|bucket| {
            let limit = self.limit(bucket);
            let usage = table.buckets.get(&bucket).map_or(0, |usage| usage.pending);
            limit.max_pending.is_some_and(|max| usage >= max)
        });
        if full {
            return None;
        }
        for bucket in buckets.iter() {
            let limit = self.limit(bucket);
            table.buckets.entry(bucket).or_insert_with(|| limit.unused(now)).pending += 1;
        }
        Some(PendingSlot { limits: Arc::clone(self), buckets })
    }

    /// Admits one more socket from `client` at `now`, or says which limit it is over. An
    /// IPv6 client must be within both its /64's limits and its /48's, and a refusal by
    /// either takes nothing from the other (it costs a second lookup under the same lock).
    pub fn admit(self: &Arc<Self>, client: IpAddr, now: Instant) -> Result<ClientSlot, OverLimit> {
        let buckets = Buckets::of(client);
        let mut table = self.swept(now);
        let mut verdict = Ok(());
        for bucket in buckets.iter() {
            let limit = self.limit(bucket);
            let usage = table.buckets.entry(bucket).or_insert_with(|| limit.unused(now));
            verdict = worse(verdict, limit.check(usage, now));
        }
        verdict?;
        for bucket in buckets.iter() {
            let limit = self.limit(bucket);
            limit.take(table.buckets.entry(bucket).or_insert_with(|| limit.unused(now)));
        }
        Ok(ClientSlot { limits: Arc::clone(self), buckets })
    }

    /// The table, locked, its idle entries swept out first when it has grown to its next
    /// sweep: so it stays bounded whichever of its counters grows it.
    fn swept(&self, now: Instant) -> MutexGuard<'_, Table> {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if table.buckets.len() >= table.sweep_at {
            table.buckets.retain(|bucket, usage| !self.limit(*bucket).is_idle(usage, now));
            table.sweep_at = (table.buckets.len() * 2).max(SWEEP_AT);
        }
        table
    }

    /// The limits on `bucket`.
    fn limit(&self, bucket: Bucket) -> &Limit {
        match bucket {
            Bucket::Client(_) => &self.client,
            Bucket::Range(_) => &self.range,
        }
    }

    /// Entries (clients and IPv6 ranges) the table holds now.
    pub fn tracked(&self) -> usize {
        self.table.lock().unwrap_or_else(|e| e.into_inner()).buckets.len()
    }
}

/// The refusal that says more: too many sockets (waiting does not help until one closes),
/// else the longer wait.
fn worse(a: Result<(), OverLimit>, b: Result<(), OverLimit>) -> Result<(), OverLimit> {
    match (a, b) {
        (Err(OverLimit::TooMany), _) | (_, Err(OverLimit::TooMany)) => Err(OverLimit::TooMany),
        (Err(OverLimit::TooFast(a)), Err(OverLimit::TooFast(b))) => {
            Err(OverLimit::TooFast(a.max(b)))
        }
        (Err(refused), Ok(())) | (Ok(()), Err(refused)) => Err(refused),
        (Ok(()), Ok(())) => Ok(()),
    }
}

impl Limit {
    /// What a bucket nothing has used holds at `now`.
    fn unused(&self, now: Instant) -> Usage {
        let tokens = self.rate.map_or(0.0, |rate| rate.burst);
        Usage { open: 0, tokens, refilled: now, pending: 0 }
    }

    /// Whether one more socket fits in `usage` at `now`, refilling its tokens to then.
    fn check(&self, usage: &mut Usage, now: Instant) -> Result<(), OverLimit> {
        if self.max_connections.is_some_and(|max| usage.open >= max) {
            return Err(OverLimit::TooMany);
        }
        if let Some(rate) = self.rate {
            let elapsed = now.saturating_duration_since(usage.refilled).as_secs_f64();
            usage.tokens = (usage.tokens + elapsed * rate.per_second).min(rate.burst);
            usage.refilled = now;
            if usage.tokens < 1.0 {
                let wait = (1.0 - usage.tokens) / rate.per_second;
                // The parser's bounds keep it short, but no rate, however it was made, may
                // panic a request.
                let wait = Duration::try_from_secs_f64(wait).unwrap_or(Duration::MAX);
                return Err(OverLimit::TooFast(wait));
            }
        }
        Ok(())
    }

    /// Takes one socket's share of `usage`, once [`Limit::check`] said it fits.
    fn take(&self, usage: &mut Usage) {
        if self.rate.is_some() {
            usage.tokens -= 1.0;
        }
        usage.open += 1;
    }

    /// Whether an entry carries nothing worth keeping.
    fn is_idle(&self, usage: &Usage, now: Instant) -> bool {
        usage.open == 0
            && usage.pending == 0
            && self.rate.is_none_or(|rate| {
                let elapsed = now.saturating_duration_since(usage.refilled).as_secs_f64();
                usage.tokens + elapsed * rate.per_second >= rate.burst
            })
    }
}

impl Buckets {
    /// An IPv4 address is its own client; an IPv6 one is its /64, within its /48.
    fn of(client: IpAddr) -> Self {
        match client.to_canonical() {
            IpAddr::V6(v6) => {
                let bits = u128::from(v6);
                let slash_64 = Ipv6Addr::from(bits & !(u128::MAX >> 64));
                let slash_48 = Ipv6Addr::from(bits & !(u128::MAX >> 48));
                Self {
                    client: Bucket::Client(slash_64.into()),
                    range: Some(Bucket::Range(slash_48)),
                }
            }
            v4 => Self { client: Bucket::Client(v4), range: None },
        }
    }

    fn iter(self) -> impl Iterator<Item = Bucket> {
        iter::once(self.client).chain(self.range)
    }
}

impl ClientLimits {
    /// Gives back one of what `counter` picks (open sockets, pending connections) in each of
    /// `buckets`.
    fn give_back(&self, buckets: Buckets, counter: fn(&mut Usage) -> &mut u32) {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        for bucket in buckets.iter() {
            if let Some(usage) = table.buckets.get_mut(&bucket) {
                let count = counter(usage);
                *count = count.saturating_sub(1);
            }
        }
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.limits.give_back(self.buckets, |usage| &mut usage.open);
    }
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        self.limits.give_back(self.buckets, |usage| &mut usage.pending);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_address_holds_at_most_its_share_of_the_pending_pool() {
        let limits = Arc::new(ClientLimits::new(None, None).with_max_pending(Some(2)));
        let held: Vec<_> = (0..2).map(|_| limits.admit_pending(ip("203.0.113.1"))).collect();
        assert!(held.iter().all(Option::is_some));
        assert!(limits.admit_pending(ip("203.0.113.1")).is_none(), "its share is held");
        assert!(limits.admit_pending(ip("203.0.113.2")).is_some(), "another address is its own");
        drop(held);
        assert!(limits.admit_pending(ip("203.0.113.1")).is_some(), "given back at the end");
        // Eight /64s of one /48 hold the /48's four shares between them.
        let range: Vec<_> = (0..8)
            .filter_map(|i| limits.admit_pending(ip(&format!("2001:db8:1:{i}::1"))))
            .collect();
        assert_eq!(range.len(), 8);
        assert!(limits.admit_pending(ip("2001:db8:1:ff::1")).is_none(), "the /48 is full");
        drop(range);
        assert!(limits.admit_pending(ip("2001:db8:1:ff::1")).is_some(), "given back too");
    }

    #[test]
    fn connections_in_http_alone_keep_the_table_bounded() {
        let limits = Arc::new(ClientLimits::new(None, None).with_max_pending(Some(4)));
        for i in 0..(3 * SWEEP_AT as u32) {
            drop(limits.admit_pending(IpAddr::from(i.to_be_bytes())));
        }
        assert!(limits.tracked() <= 2 * SWEEP_AT, "{} addresses held", limits.tracked());
    }

    #[test]
    fn an_address_holds_at_most_its_share_and_gets_it_back() {
        let limits = Arc::new(ClientLimits::new(Some(2), None));
        let now = Instant::now();
        let first = limits.admit(ip("203.0.113.1"), now).unwrap();
        let _second = limits.admit(ip("203.0.113.1"), now).unwrap();
        assert_eq!(limits.admit(ip("203.0.113.1"), now).unwrap_err(), OverLimit::TooMany);
        assert!(limits.admit(ip("203.0.113.2"), now).is_ok(), "another address is its own");
        drop(first);
        assert!(limits.admit(ip("203.0.113.1"), now).is_ok());
    }

    #[test]
    fn the_rate_allows_a_burst_then_one_per_interval() {
        let rate: ConnectRate = "2/3".parse().unwrap();
        let limits = Arc::new(ClientLimits::new(None, Some(rate)));
        let now = Instant::now();
        let slots: Vec<_> =
            (0..3).map(|_| limits.admit(ip("198.51.100.7"), now).unwrap()).collect();
        let Err(OverLimit::TooFast(wait)) = limits.admit(ip("198.51.100.7"), now) else {
            panic!("the burst is spent")
        };
        assert_eq!(wait, Duration::from_millis(500), "one token every half second");
        assert!(limits.admit(ip("198.51.100.7"), now + Duration::from_millis(500)).is_ok());
        drop(slots);
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_slash_64() {
        let limits = Arc::new(ClientLimits::new(Some(1), None));
        let now = Instant::now();
        let _one = limits.admit(ip("2001:db8:1:2::1"), now).unwrap();
        assert!(limits.admit(ip("2001:db8:1:2::ffff"), now).is_err(), "same /64");
        assert!(limits.admit(ip("2001:db8:1:3::1"), now).is_ok());
    }

    #[test]
    fn idle_addresses_are_swept_so_the_table_stays_bounded() {
        let rate: ConnectRate = "10".parse().unwrap();
        let limits = Arc::new(ClientLimits::new(Some(5), Some(rate)));
        let start = Instant::now();
        for i in 0..(3 * SWEEP_AT as u32) {
            let address = IpAddr::from(i.to_be_bytes());
            drop(limits.admit(address, start + Duration::from_secs(u64::from(i) * 60)));
        }
        assert!(limits.tracked() <= 2 * SWEEP_AT, "{} addresses held", limits.tracked());
    }

    #[test]
    fn rates_read_as_rate_or_rate_and_burst() {
        assert_eq!(
            "50".parse::<ConnectRate>().unwrap(),
            ConnectRate { per_second: 50.0, burst: 1000.0 }
        );
        assert_eq!(
            "0.5/4".parse::<ConnectRate>().unwrap(),
            ConnectRate { per_second: 0.5, burst: 4.0 }
        );
        for bad in ["", "0", "-1", "fast", "5/0", "5/x"] {
            assert!(bad.parse::<ConnectRate>().is_err(), "{bad}");
        }
    }

    #[test]
    fn absurd_rates_are_refused_naming_the_bounds() {
        for absurd in ["1e-20", "0.0009", "1e300", "1000001", "1e-20/5", "0.0001/1000"] {
            let error = absurd.parse::<ConnectRate>().unwrap_err();
            assert!(error.contains("0.001") && error.contains("1000000"), "{absurd}: {error}");
            assert!(!error.contains('\n'), "one line: {error:?}");
        }
        for edge in ["0.001", "1000000", "0.001/1"] {
            assert!(edge.parse::<ConnectRate>().is_ok(), "{edge}");
        }
    }

    #[test]
    fn a_rate_built_past_the_bounds_waits_as_long_as_it_can_and_does_not_panic() {
        let rate = ConnectRate { per_second: 1e-20, burst: 1.0 };
        let limits = Arc::new(ClientLimits::new(None, Some(rate)));
        let now = Instant::now();
        let _first = limits.admit(ip("192.0.2.1"), now).unwrap();
        assert_eq!(
            limits.admit(ip("192.0.2.1"), now).unwrap_err(),
            OverLimit::TooFast(Duration::MAX)
        );
    }

    /// Any rate above zero, down to the smallest subnormal.
    fn positive_rates() -> impl Strategy<Value = f64> {
        use prop::num::f64::{NORMAL, POSITIVE, SUBNORMAL};
        POSITIVE | NORMAL | SUBNORMAL
    }

    proptest! {
        /// No rate and no time between two upgrades makes the wait panic.
        #[test]
        fn any_rate_gives_a_wait(
            per_second in positive_rates(),
            burst in 1.0..3.0f64,
            after_ms in 0..u64::from(u32::MAX),
        ) {
            let rate = ConnectRate { per_second, burst };
            let limits = Arc::new(ClientLimits::new(None, Some(rate)));
            let now = Instant::now();
            let slots: Vec<_> =
                (0..3).filter_map(|_| limits.admit(ip("192.0.2.1"), now).ok()).collect();
            let _ = limits.admit(ip("192.0.2.1"), now + Duration::from_millis(after_ms));
            drop(slots);
        }
    }

    /// An address in /64 number `subnet` of the /48 number `range`.
    fn in_range(range: u16, subnet: u16) -> IpAddr {
        std::net::Ipv6Addr::new(0x2001, 0xdb8, range, subnet, 0, 0, 0, 1).into()
    }

    #[test]
    fn the_slash_64s_of_one_slash_48_share_four_clients_sockets() {
        let limits = Arc::new(ClientLimits::new(Some(2), None));
        let now = Instant::now();
        let held: Vec<_> = (0..8).map(|subnet| limits.admit(in_range(1, subnet), now)).collect();
        assert!(held.iter().all(Result::is_ok), "4 × 2 sockets, one per /64: {held:?}");
        let refused = limits.admit(in_range(1, 8), now);
        assert_eq!(refused.unwrap_err(), OverLimit::TooMany, "a ninth /64 of the same /48");
        let _other = limits.admit(in_range(2, 0), now).expect("another /48 is its own");
        drop(held);
        let again: Vec<_> =
            (100..108).map(|subnet| limits.admit(in_range(1, subnet), now)).collect();
        assert!(again.iter().all(Result::is_ok), "the /48's sockets came back: {again:?}");
        drop(again);
        let _one = limits.admit(in_range(1, 9), now).unwrap();
        let _two = limits.admit(in_range(1, 9), now).unwrap();
        let third = limits.admit(in_range(1, 9), now);
        assert_eq!(third.unwrap_err(), OverLimit::TooMany, "the /64 keeps its own limit");
    }

    #[test]
    fn the_slash_64s_of_one_slash_48_share_four_clients_rate() {
        // Each /64: a token a second, a burst of 2; the /48: 4 a second, a burst of 8.
        let rate: ConnectRate = "1/2".parse().unwrap();
        let limits = Arc::new(ClientLimits::new(None, Some(rate)));
        let now = Instant::now();
        let mut slots = Vec::new();
        for subnet in 0..4 {
            slots.push(limits.admit(in_range(1, subnet), now).unwrap());
            slots.push(limits.admit(in_range(1, subnet), now).unwrap());
            // Refused by its /64, it takes nothing from the /48.
            assert!(matches!(limits.admit(in_range(1, subnet), now), Err(OverLimit::TooFast(_))));
        }
        let Err(OverLimit::TooFast(wait)) = limits.admit(in_range(1, 4), now) else {
            panic!("the /48's burst is spent")
        };
        assert_eq!(wait, Duration::from_millis(250), "the /48 gets a token every quarter second");
        assert!(limits.admit(in_range(2, 0), now).is_ok(), "another /48 is its own");
        // Refused by the /48, the fresh /64 took nothing from its own burst either.
        let later = now + Duration::from_millis(500);
        assert!(limits.admit(in_range(1, 4), later).is_ok());
        assert!(limits.admit(in_range(1, 4), later).is_ok());
        drop(slots);
    }

    #[test]
    fn idle_ipv6_ranges_are_swept_too() {
        let rate: ConnectRate = "10".parse().unwrap();
        let limits = Arc::new(ClientLimits::new(Some(5), Some(rate)));
        let start = Instant::now();
        for i in 0..(3 * SWEEP_AT as u16) {
            let address = in_range(i, i);
            drop(limits.admit(address, start + Duration::from_secs(u64::from(i) * 60)));
        }
        assert!(limits.tracked() <= 2 * SWEEP_AT, "{} entries held", limits.tracked());
    }
}
