//! What every connection on one worker shares: the worker owns one [`Shared`] and lends it
//! to each connection's visit and poll. The buffers are the worker's (a connection holds
//! none while it is quiet); the rest is the instance's, the same on every worker.

use std::{
    cell::{RefCell, RefMut},
    ops::{Deref, DerefMut},
    sync::Arc,
};

use bytes::BytesMut;

use super::schedule::Timing;
use crate::{metrics::Metrics, session::touches::Touches, traffic::Traffic};

/// One worker's share of what its connections need.
pub struct Shared {
    /// Where outgoing frames are built (the wheel's visits and the connections' answers
    /// take turns with it): a tick allocates nothing.
    out: RefCell<BytesMut>,
    /// Where the clients' bytes are read into, one connection at a time.
    input: RefCell<BytesMut>,
    /// This worker's ticks and bytes sent, summed over workers by the capacity sampler.
    traffic: Arc<Traffic>,
    /// The instance's, the same on every worker.
    settings: Settings,
}

/// What every connection of the instance reads, whichever worker it is on.
#[derive(Clone)]
pub struct Settings {
    /// The start of every tick's text (`<name>: you have been connected for `), built once.
    pub tick_prefix: Arc<str>,
    /// The connection timers.
    pub timing: Timing,
    /// Where connections ask for their session's expiry to be restarted.
    pub touches: Touches,
    /// Where closes are counted.
    pub metrics: Arc<Metrics>,
}

/// A buffer of the worker's, lent to one writer or reader; emptied when given back.
pub struct Lent<'a>(RefMut<'a, BytesMut>);

impl Deref for Lent<'_> {
    type Target = BytesMut;
    fn deref(&self) -> &BytesMut {
        &self.0
    }
}

impl DerefMut for Lent<'_> {
    fn deref_mut(&mut self) -> &mut BytesMut {
        &mut self.0
    }
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        self.0.clear();
    }
}

impl Shared {
    /// A worker's share of `settings`, counting its ticks in `traffic`.
    pub fn new(traffic: Arc<Traffic>, settings: Settings) -> Self {
        Self {
            out: RefCell::new(BytesMut::with_capacity(4096)),
            input: RefCell::new(BytesMut::new()),
            traffic,
            settings,
        }
    }

    /// The outgoing buffer, empty.
    pub fn out(&self) -> Lent<'_> {
        Lent(self.out.borrow_mut())
    }

    /// The buffer clients' bytes are read into, empty.
    pub fn input(&self) -> Lent<'_> {
        Lent(self.input.borrow_mut())
    }

    /// This worker's traffic counters.
    pub fn traffic(&self) -> &Traffic {
        &self.traffic
    }

    /// The start of every tick's text.
    pub fn tick_prefix(&self) -> &str {
        &self.settings.tick_prefix
    }

    /// The connection timers.
    pub fn timing(&self) -> &Timing {
        &self.settings.timing
    }

    /// Where session touches are queued.
    pub fn touches(&self) -> &Touches {
        &self.settings.touches
    }

    /// The instance's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.settings.metrics
    }
}
