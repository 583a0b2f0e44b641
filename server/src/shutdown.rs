//! Shutdown: the signals that start it, and the graceful drain it runs.
//!
//! On the first SIGTERM or SIGINT the health check turns `503 draining` at once and new
//! upgrades are refused, while the open sockets keep ticking for the grace period (the load
//! balancer's time to notice). Then every socket is closed with 1012 at its own random
//! moment within the drain window, and the process exits 0. A second signal exits at once.

use std::{io, time::Duration};

use tokio::{
    signal::unix::{signal, SignalKind},
    sync::mpsc,
};

use crate::state::AppState;

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

/// Every SIGINT and SIGTERM, as they arrive. Must be called inside the runtime.
pub fn signals() -> io::Result<mpsc::Receiver<Signal>> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let (signal_tx, signal_rx) = mpsc::channel(4);
    actix_web::rt::spawn(async move {
        loop {
            let received = tokio::select! {
                Some(()) = interrupt.recv() => Signal::Interrupt,
                Some(()) = terminate.recv() => Signal::Terminate,
                else => return,
            };
            if signal_tx.send(received).await.is_err() {
                return;
            }
        }
    });
    Ok(signal_rx)
}

/// The drain's timing.
#[derive(Debug, Clone, Copy)]
pub struct DrainTiming {
    /// How long sockets keep ticking after the health check turns 503.
    pub grace: Duration,
    /// The window over which they are then closed.
    pub window: Duration,
}

/// How long, past the window, closing handshakes may take before the server stops anyway:
/// a peer that never answers must not hold the process up.
const CLOSE_HANDSHAKE_LIMIT: Duration = Duration::from_secs(2);

/// Runs the drain after the first signal; returns once every socket has closed (or the
/// close handshakes ran out of time).
pub async fn drain(state: &AppState, timing: DrainTiming) {
    state.draining.cancel();
    tracing::info!(
        connections = state.live_connections(),
        "draining: health check is 503; sockets keep ticking for {:?}, then close over {:?}",
        timing.grace,
        timing.window
    );
    tokio::time::sleep(timing.grace).await;
    tracing::info!(connections = state.live_connections(), "closing every socket with 1012");
    state.shutdown.fire();
    state.connections.close();
    let limit = timing.window + CLOSE_HANDSHAKE_LIMIT;
    if tokio::time::timeout(limit, state.connections.wait()).await.is_err() {
        tracing::warn!(
            connections = state.live_connections(),
            "some sockets did not finish closing; stopping anyway"
        );
    }
}
