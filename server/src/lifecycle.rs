//! Where the instance is in its life, as one value every part watches: the health check,
//! the upgrade, each worker's wheel, the session touches and the background tasks all learn
//! of the drain from here, and only from here. [`crate::shutdown::drain`] moves it along.

use tokio::sync::watch;
use tokio_util::task::{task_tracker::TaskTrackerToken, TaskTracker};

/// The stages of an instance's life, in order; an instance only ever moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Taking new connections.
    Serving,
    /// The health check says `503 draining` and upgrades are refused; sockets keep ticking
    /// for the grace period.
    Draining,
    /// Each socket is closed with 1012 at its own moment within the drain window.
    Closing,
    /// Every socket is gone; the sessions' last touches are being written.
    Flushing,
    /// Done: background work ends and the process exits.
    Stopped,
}

/// The instance's stage, and its live connections.
#[derive(Debug)]
pub struct Lifecycle {
    stage: watch::Sender<Stage>,
    /// One token per open WebSocket: its length is the live-connection count, and waiting
    /// on it after `close()` is how the drain knows every socket has ended.
    connections: TaskTracker,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self { stage: watch::Sender::new(Stage::Serving), connections: TaskTracker::new() }
    }
}

impl Lifecycle {
    /// The current stage.
    pub fn stage(&self) -> Stage {
        *self.stage.borrow()
    }

    /// Whether the drain has begun (health 503, no new connections).
    pub fn is_draining(&self) -> bool {
        self.stage() >= Stage::Draining
    }

    /// Moves on to `stage` (never back).
    pub fn advance(&self, stage: Stage) {
        self.stage.send_if_modified(|current| {
            let later = stage > *current;
            if later {
                *current = stage;
            }
            later
        });
    }

    /// Resolves once the instance has reached `stage`.
    pub fn reached(&self, stage: Stage) -> impl std::future::Future<Output = ()> + 'static {
        let mut stages = self.stage.subscribe();
        async move {
            // The sender lives in the lifecycle, which outlives everything that waits.
            let _ = stages.wait_for(|current| *current >= stage).await;
        }
    }

    /// Counts a new connection as live until the token is dropped.
    pub fn connection(&self) -> TaskTrackerToken {
        self.connections.token()
    }

    /// WebSocket connections open right now.
    pub fn live_connections(&self) -> usize {
        self.connections.len()
    }

    /// Resolves once every connection has ended (call after [`Stage::Closing`]).
    pub async fn all_closed(&self) {
        self.connections.close();
        self.connections.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stages_only_move_forward_and_waiters_see_every_later_one() {
        let lifecycle = Lifecycle::default();
        let closing = tokio::spawn(lifecycle.reached(Stage::Closing));
        lifecycle.advance(Stage::Draining);
        assert!(lifecycle.is_draining());
        lifecycle.advance(Stage::Flushing);
        closing.await.expect("woken by a later stage than the one awaited");
        lifecycle.advance(Stage::Closing);
        assert_eq!(lifecycle.stage(), Stage::Flushing, "never back");
        lifecycle.reached(Stage::Draining).await;
    }

    #[tokio::test]
    async fn all_closed_waits_for_every_connection() {
        let lifecycle = Lifecycle::default();
        let connection = lifecycle.connection();
        assert_eq!(lifecycle.live_connections(), 1);
        let closed = lifecycle.all_closed();
        tokio::pin!(closed);
        assert!(futures_util::poll!(&mut closed).is_pending());
        drop(connection);
        closed.await;
    }
}
