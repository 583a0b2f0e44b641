//! Shutdown, told once: the signals that start it, and the drain, step by step.
//!
//! On the first SIGTERM or SIGINT:
//! 1. the health check turns `503 draining` at once and new upgrades are refused, while the
//!    open sockets keep ticking for the grace period (the load balancer's time to notice);
//! 2. every socket is closed with 1012 at its own random moment within the drain window,
//!    so the clients' reconnects reach the other instances spread out;
//! 3. once every socket is gone, the sessions' last touches (queued as each socket closed)
//!    are written to the store, so each session's resume window counts from its close;
//! 4. background work stops and the process exits 0.
//!
//! Each step is a [`Stage`] of the instance's [`crate::lifecycle::Lifecycle`], which every
//! part watches. A second signal exits at once.

use std::{future::Future, io, time::Duration};

use tokio::{
    signal::unix::{signal, SignalKind},
    sync::mpsc,
};

use crate::{
    connection::CLOSING_LIMIT,
    lifecycle::{Lifecycle, Stage},
};

/// A signal that asks the server to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Interrupt,
    Terminate,
}

impl Signal {
    /// The exit code of a process ended by this signal (128 + its number), used when a
    /// second signal cuts the drain short.
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Interrupt => 130,
            Self::Terminate => 143,
        }
    }
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Interrupt => "SIGINT",
            Self::Terminate => "SIGTERM",
        })
    }
}

/// How a server stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Every socket was closed in order.
    Drained,
    /// A second signal ended the drain early.
    Forced(Signal),
}

/// Where a server hears the signals that stop it: the process's own ([`OsSignals`]), or a
/// test's channel.
pub trait Signals {
    /// The next signal; `None` once no more can come.
    fn next(&mut self) -> impl Future<Output = Option<Signal>>;
}

/// The process's SIGINT and SIGTERM, as they arrive.
pub struct OsSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

/// Starts listening for SIGINT and SIGTERM. Must be called inside the runtime.
pub fn signals() -> io::Result<OsSignals> {
    Ok(OsSignals {
        interrupt: signal(SignalKind::interrupt())?,
        terminate: signal(SignalKind::terminate())?,
    })
}

impl Signals for OsSignals {
    async fn next(&mut self) -> Option<Signal> {
        tokio::select! {
            Some(()) = self.interrupt.recv() => Some(Signal::Interrupt),
            Some(()) = self.terminate.recv() => Some(Signal::Terminate),
            else => None,
        }
    }
}

impl Signals for mpsc::Receiver<Signal> {
    async fn next(&mut self) -> Option<Signal> {
        self.recv().await
    }
}

/// The drain's timing.
#[derive(Debug, Clone, Copy)]
pub struct DrainTiming {
    /// How long sockets keep ticking after the health check turns 503.
    pub grace: Duration,
    /// The window over which they are then closed.
    pub window: Duration,
}

/// How long, past the window, closing handshakes may take before the drain goes on anyway:
/// a peer that never answers must not hold the process up. (A closing socket is checked
/// on its wheel's once-a-second visit, hence the second on top of the close's own limit.)
const CLOSING_OVERRUN: Duration = CLOSING_LIMIT.saturating_add(Duration::from_secs(1));

/// How long the last session touches may take to reach the store.
const FLUSH_LIMIT: Duration = Duration::from_secs(5);

/// The longest the drain runs past its window: the last closing handshakes, then the last
/// touches. What a supervisor's stop timeout must allow beyond grace + window, with
/// [`crate::startup::STOP_AFTER_WINDOW`]'s other parts.
pub const DRAIN_AFTER_WINDOW: Duration = CLOSING_OVERRUN.saturating_add(FLUSH_LIMIT);

/// Runs the drain after the first signal, moving `lifecycle` along with `timing`.
/// `touches_written` resolves once the session touches queued so far are done (the queue
/// stops taking more at [`Stage::Flushing`]).
pub async fn drain(
    lifecycle: &Lifecycle,
    timing: DrainTiming,
    touches_written: impl Future<Output = ()>,
) {
    lifecycle.advance(Stage::Draining);
    tracing::info!(
        connections = lifecycle.live_connections(),
        "draining: health check is 503; sockets keep ticking for {:?}, then close over {:?}",
        timing.grace,
        timing.window
    );
    tokio::time::sleep(timing.grace).await;

    lifecycle.advance(Stage::Closing);
    tracing::info!(connections = lifecycle.live_connections(), "closing every socket with 1012");
    let limit = timing.window + CLOSING_OVERRUN;
    if tokio::time::timeout(limit, lifecycle.all_closed()).await.is_err() {
        tracing::warn!(
            connections = lifecycle.live_connections(),
            "some sockets did not finish closing; stopping anyway"
        );
    }

    lifecycle.advance(Stage::Flushing);
    if tokio::time::timeout(FLUSH_LIMIT, touches_written).await.is_err() {
        tracing::warn!("the sessions' last touches did not all reach the store");
    }
    lifecycle.advance(Stage::Stopped);
}
