//! One WebSocket connection: one task, one `select!` over the tick timer, the client's
//! frames and the shutdown signal. The loop ends with a reason, and the socket is closed
//! exactly once, after the loop.

use std::time::Duration;

use actix_ws::{CloseReason, Message, MessageStream, ProtocolError, Session};
use futures_util::StreamExt as _;
use tokio::time::MissedTickBehavior;
use wstime_protocol::{tick, ClientId, CloseCode};

use crate::state::AppState;

/// Time between ticks.
pub const TICK_INTERVAL: Duration = Duration::from_secs(1);

/// Why a connection's loop ended.
#[derive(Debug)]
enum Ending {
    /// The peer's TCP stream ended or a send failed: nobody is left to tell.
    PeerGone,
    /// The peer sent a close frame; answer it with an empty one.
    PeerClosed,
    /// The server ends the connection with this code and reason.
    Close(CloseCode, &'static str),
}

/// Drives one connection until it ends. Ticks start at 0 at open and go up by one per
/// second, each one sent only after the previous one, so they can neither repeat nor
/// arrive out of order.
pub async fn run(
    mut session: Session,
    mut messages: MessageStream,
    client_id: ClientId,
    state: AppState,
) {
    let mut ticks = tokio::time::interval(TICK_INTERVAL);
    // After a stall, keep one-second spacing rather than sending a burst of late ticks.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut seconds: u64 = 0;

    let ending = loop {
        tokio::select! {
            biased;
            () = state.shutdown.cancelled() => {
                break Ending::Close(CloseCode::ServiceRestart, "server shutting down");
            }
            message = messages.next() => match message {
                None => break Ending::PeerGone,
                Some(Ok(Message::Ping(payload))) => {
                    if session.pong(&payload).await.is_err() {
                        break Ending::PeerGone;
                    }
                }
                Some(Ok(Message::Close(_))) => break Ending::PeerClosed,
                // Text, binary, pongs and continuations carry nothing the server acts on.
                Some(Ok(_)) => {}
                Some(Err(ProtocolError::Overflow)) => {
                    break Ending::Close(CloseCode::MessageTooBig, "frames are limited to 4096 bytes");
                }
                Some(Err(_)) => break Ending::PeerGone,
            },
            _ = ticks.tick() => {
                let mut text = String::with_capacity(state.tick_prefix.len() + 32);
                text.push_str(&state.tick_prefix);
                tick::push_count(&mut text, seconds);
                if session.text(text).await.is_err() {
                    break Ending::PeerGone;
                }
                seconds += 1;
            }
        }
    };

    tracing::debug!(%client_id, ?ending, "connection ended");
    let reason = match ending {
        Ending::PeerGone => return,
        Ending::PeerClosed => None,
        Ending::Close(code, description) => Some(CloseReason {
            code: code.code().into(),
            description: Some(description.to_owned()),
        }),
    };
    // The peer may already be gone; there is nobody to report a failed close to.
    let _ = session.close(reason).await;
}
