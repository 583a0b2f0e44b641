//! One WebSocket connection: one task, one `select!` over the tick timer, the client's
//! frames, the keep-alive, the idle deadline and the shutdown signal. The loop ends with a
//! reason, and the socket is closed exactly once, after the loop.

use std::{future::Future, time::Duration};

use actix_ws::{CloseReason, Message, MessageStream, ProtocolError, Session};
use futures_util::StreamExt as _;
use tokio::{
    sync::OwnedSemaphorePermit,
    time::{Instant, MissedTickBehavior},
};
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

/// Drives one connection until it ends, holding `_slot` (its place under the connection
/// limit) until then.
///
/// The first tick goes out at once and says the session's count ([`Opened::first`]); each
/// later tick is sent when the session's age reaches its count, measured on this
/// instance's monotonic clock from the age the store reported. So ticks go up by one per
/// second, never repeat, and a reconnect anywhere continues where the last one stopped.
///
/// [`Opened::first`]: crate::session::Opened::first
pub async fn run(
    mut session: Session,
    mut messages: MessageStream,
    client_id: ClientId,
    state: AppState,
    _slot: OwnedSemaphorePermit,
) {
    let opened = match state.sessions.open(&client_id).await {
        Ok(opened) => opened,
        Err(error) => {
            tracing::error!(%client_id, %error, "cannot open the session");
            let reason = close_reason(CloseCode::InternalError, "session store unavailable");
            let _ = session.close(Some(reason)).await;
            return;
        }
    };
    let opened_at = Instant::now();
    let timing = &state.timing;
    let mut seconds = opened.first;

    // `first` is at least the age rounded up, so the next count is always in the future.
    let next_due = opened_at + (Duration::from_secs(seconds + 1) - opened.age);
    let mut ticks = tokio::time::interval_at(next_due, TICK_INTERVAL);
    // After a stall, keep one-second spacing rather than sending a burst of late ticks.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // One timer for everything slow (ping, idle check, session keep-alive): every timer a
    // socket holds costs memory and a wheel entry, and these need no precision. It runs at
    // least as often as the keep-alive, so a held session never expires.
    let period = timing.ping_interval.min(timing.keep_alive);
    let mut housekeeping = tokio::time::interval_at(opened_at + period, period);
    let mut last_heard = opened_at;
    let mut last_touched = opened_at;
    // Built once: a fresh `cancelled()` per loop pass would register and unregister a
    // waiter on the shared token, under its lock, on every tick.
    let shutdown = state.shutdown.cancelled();
    tokio::pin!(shutdown);
    // Armed when shutdown begins: the moment within the drain window this socket closes.
    let drain_close = tokio::time::sleep(Duration::MAX / 4);
    tokio::pin!(drain_close);
    let mut closing = false;

    let mut ending = send_tick(&mut session, &state, seconds).await;
    while ending.is_none() {
        ending = tokio::select! {
            biased;
            () = &mut shutdown, if !closing => {
                // Each socket closes at its own random moment, so the clients' reconnects
                // reach the other instances spread over the window, not as one herd.
                closing = true;
                let delay = timing.drain_window.mul_f64(rand::random::<f64>());
                drain_close.as_mut().reset(Instant::now() + delay);
                None
            }
            () = &mut drain_close, if closing => {
                Some(Ending::Close(CloseCode::ServiceRestart, "server restarting"))
            }
            message = messages.next() => {
                // Anything from the peer, pongs included, proves it is alive.
                last_heard = Instant::now();
                match message {
                    None => Some(Ending::PeerGone),
                    Some(Ok(Message::Ping(payload))) => {
                        within(timing.idle_timeout, session.pong(&payload)).await
                    }
                    Some(Ok(Message::Close(_))) => Some(Ending::PeerClosed),
                    // Text, binary, pongs and continuations carry nothing to act on.
                    Some(Ok(_)) => None,
                    Some(Err(ProtocolError::Overflow)) => Some(Ending::Close(
                        CloseCode::MessageTooBig,
                        "frames are limited to 4096 bytes",
                    )),
                    Some(Err(_)) => Some(Ending::PeerGone),
                }
            }
            _ = ticks.tick() => {
                seconds += 1;
                send_tick(&mut session, &state, seconds).await
            }
            now = housekeeping.tick() => {
                if now.duration_since(last_touched) >= timing.keep_alive {
                    last_touched = now;
                    if let Err(error) = state.sessions.touch(&client_id).await {
                        tracing::debug!(%client_id, %error, "session keep-alive failed");
                    }
                }
                if now.duration_since(last_heard) >= timing.idle_timeout {
                    Some(Ending::Close(CloseCode::GoingAway, "idle timeout"))
                } else {
                    within(timing.idle_timeout, session.ping(b"")).await
                }
            }
        };
    }
    let ending = ending.expect("the loop ends only with a reason");

    tracing::debug!(%client_id, ?ending, "connection ended");
    // The resume window starts now, when the socket lets go of the session.
    if let Err(error) = state.sessions.touch(&client_id).await {
        tracing::debug!(%client_id, %error, "session touch at close failed");
    }
    let reason = match ending {
        Ending::PeerGone => return,
        Ending::PeerClosed => None,
        Ending::Close(code, description) => Some(close_reason(code, description)),
    };
    // The peer may already be gone; there is nobody to report a failed close to.
    let _ = tokio::time::timeout(timing.idle_timeout, session.close(reason)).await;
}

/// Sends the tick for `seconds`: the pre-built prefix plus the count, one allocation.
async fn send_tick(session: &mut Session, state: &AppState, seconds: u64) -> Option<Ending> {
    let mut text = String::with_capacity(state.tick_prefix.len() + 28);
    text.push_str(&state.tick_prefix);
    tick::push_count(&mut text, seconds);
    // A server text frame this short has a two-byte header.
    state.capacity.record_sent(text.len() + 2);
    within(state.timing.idle_timeout, session.text(text)).await
}

/// Awaits a send, bounded by `limit`: a peer that stopped reading must not hold the task.
async fn within<E>(limit: Duration, send: impl Future<Output = Result<(), E>>) -> Option<Ending> {
    match tokio::time::timeout(limit, send).await {
        Ok(Ok(())) => None,
        Ok(Err(_)) | Err(_) => Some(Ending::PeerGone),
    }
}

fn close_reason(code: CloseCode, description: &str) -> CloseReason {
    CloseReason { code: code.code().into(), description: Some(description.to_owned()) }
}
