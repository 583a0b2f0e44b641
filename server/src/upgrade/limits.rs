//! Per-client limits: how many sockets one address may hold on this instance
//! (`MAX_CONNECTIONS_PER_CLIENT`) and how fast it may open them (`CONNECT_RATE_PER_CLIENT`,
//! a token bucket per address), so one address cannot take every connection slot.
//!
//! An address is the client's (see [`crate::client_addr`]); an IPv6 client is counted by
//! its /64, which is what one subscriber usually holds. The table is bounded: an address
//! with no socket open and a full bucket carries no state, and is swept out.

use std::{
    collections::HashMap,
    net::IpAddr,
    str::FromStr,
    sync::{Arc, Mutex},
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
    /// It holds `MAX_CONNECTIONS_PER_CLIENT` sockets already.
    TooMany,
    /// It opens them faster than `CONNECT_RATE_PER_CLIENT`; a token is due in this long.
    TooFast(Duration),
}

/// Addresses the table holds before it sweeps out the idle ones.
const SWEEP_AT: usize = 4096;

/// The limits, and what each address has used of them.
#[derive(Debug)]
pub struct ClientLimits {
    max_connections: Option<u32>,
    rate: Option<ConnectRate>,
    table: Mutex<Table>,
}

#[derive(Debug)]
struct Table {
    clients: HashMap<IpAddr, Usage>,
    sweep_at: usize,
}

#[derive(Debug)]
struct Usage {
    open: u32,
    tokens: f64,
    refilled: Instant,
}

/// One admitted socket's share of its address's limit, given back when dropped.
#[derive(Debug)]
pub struct ClientSlot {
    limits: Arc<ClientLimits>,
    client: IpAddr,
}

impl ClientLimits {
    /// Limits of at most `max_connections` sockets and `rate` upgrades per address; `None`
    /// leaves that limit off.
    pub fn new(max_connections: Option<u32>, rate: Option<ConnectRate>) -> Self {
        let table = Table { clients: HashMap::new(), sweep_at: SWEEP_AT };
        Self { max_connections, rate, table: Mutex::new(table) }
    }

    /// Admits one more socket from `client` at `now`, or says which limit it is over.
    pub fn admit(self: &Arc<Self>, client: IpAddr, now: Instant) -> Result<ClientSlot, OverLimit> {
        let client = counted_as(client);
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if table.clients.len() >= table.sweep_at {
            table.clients.retain(|_, usage| !self.is_idle(usage, now));
            table.sweep_at = (table.clients.len() * 2).max(SWEEP_AT);
        }
        let burst = self.rate.map_or(0.0, |rate| rate.burst);
        let usage =
            table.clients.entry(client).or_insert(Usage { open: 0, tokens: burst, refilled: now });
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
            usage.tokens -= 1.0;
        }
        usage.open += 1;
        Ok(ClientSlot { limits: Arc::clone(self), client })
    }

    /// Whether an address's entry carries nothing worth keeping.
    fn is_idle(&self, usage: &Usage, now: Instant) -> bool {
        usage.open == 0
            && self.rate.is_none_or(|rate| {
                let elapsed = now.saturating_duration_since(usage.refilled).as_secs_f64();
                usage.tokens + elapsed * rate.per_second >= rate.burst
            })
    }

    /// Addresses the table holds now.
    pub fn tracked(&self) -> usize {
        self.table.lock().unwrap_or_else(|e| e.into_inner()).clients.len()
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut table = self.limits.table.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(usage) = table.clients.get_mut(&self.client) {
            usage.open = usage.open.saturating_sub(1);
        }
    }
}

/// The key an address is counted under: itself for IPv4, its /64 for IPv6.
fn counted_as(client: IpAddr) -> IpAddr {
    match client.to_canonical() {
        IpAddr::V6(v6) => {
            let mut octets = v6.octets();
            octets[8..].fill(0);
            IpAddr::from(octets)
        }
        v4 => v4,
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
}
