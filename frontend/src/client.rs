//! The connection loop: the post's retry loop, with backoff, timeouts and close codes.
//!
//! It reports what happens through a callback and knows nothing of the page, so the page
//! decides how to show it. Stopping it is dropping it (the page wraps it in `Abortable`);
//! dropping closes the socket.

use std::time::Duration;

use futures::{future::Either, StreamExt as _};
use gloo_net::websocket::{futures::WebSocket, Message, WebSocketError};
use gloo_timers::future::TimeoutFuture;
use wstime_protocol::{
    retry::{Next, CONNECT_TIMEOUT, DEAD_PEER_TIMEOUT},
    Disconnect, RetryPolicy, Tick,
};

use crate::status::{reconnection_line, refusal_reason, tenths, Status};

/// Something the page should show.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A line for the log.
    Log(String),
    /// The new status line.
    Status(Status),
}

/// How one attempt ended.
struct Ended {
    /// Whether the attempt delivered at least one tick (a healthy connection).
    delivered_tick: bool,
    /// The close code, if the server sent one.
    close_code: Option<u16>,
    /// The close reason, if any.
    reason: String,
}

/// Connects to `url` and keeps reconnecting per `policy` until it gives up or is dropped.
pub async fn run(url: String, policy: RetryPolicy, report: impl Fn(Event)) {
    let log = |line: String| report(Event::Log(line));
    let mut attempt: u32 = 0;
    let mut last_count: Option<u64> = None;
    loop {
        log(format!("establishing connection... retry #{attempt}"));
        report(Event::Status(Status::Connecting { attempt: attempt + 1, of: policy.max_attempts }));
        let ended = connect_once(&url, &report, &mut last_count).await;
        log("Connection lost with server.".to_owned());

        // A connection that delivered ticks was healthy: its loss starts the schedule afresh.
        let ended_attempt = if ended.delivered_tick { 0 } else { attempt };
        let why = Disconnect::from_close(ended.close_code, &ended.reason);
        match policy.next(ended_attempt, why, js_sys::Math::random()) {
            Next::RetryIn(delay) => {
                if let Disconnect::MovedOn { .. } = why {
                    log(format!(
                        "The server moved this connection to balance its load: reconnecting in \
                         {} s.",
                        tenths(delay)
                    ));
                }
                attempt = ended_attempt + 1;
                report(Event::Status(Status::Retrying {
                    delay,
                    attempt: attempt + 1,
                    of: policy.max_attempts,
                }));
                sleep(delay).await;
            }
            Next::GiveUp => {
                log("Reached maximum retries, giving up.".to_owned());
                report(Event::Status(Status::GaveUp { attempts: policy.max_attempts }));
                return;
            }
            Next::Stop => {
                let reason = refusal_reason(&ended.reason);
                log(format!("The server refused this client: {reason}"));
                report(Event::Status(Status::Refused { reason }));
                return;
            }
        }
    }
}

/// One attempt: open, relay ticks until the socket ends or goes quiet.
async fn connect_once(url: &str, report: &impl Fn(Event), last_count: &mut Option<u64>) -> Ended {
    let log = |line: String| report(Event::Log(line));
    let mut ended = Ended { delivered_tick: false, close_code: None, reason: String::new() };
    let mut socket = match WebSocket::open(url) {
        Ok(socket) => socket,
        Err(error) => {
            log(format!("Cannot open {url}: {error}"));
            return ended;
        }
    };
    loop {
        let limit = if ended.delivered_tick { DEAD_PEER_TIMEOUT } else { CONNECT_TIMEOUT };
        let message = match futures::future::select(socket.next(), sleep(limit)).await {
            Either::Left((message, _)) => message,
            Either::Right(((), _)) => {
                log(if ended.delivered_tick {
                    format!("No tick for {} s: treating the server as dead.", limit.as_secs())
                } else {
                    format!("No answer within {} s.", limit.as_secs())
                });
                return ended;
            }
        };
        match message {
            Some(Ok(Message::Text(text))) => {
                let tick = Tick::parse(&text);
                if !ended.delivered_tick {
                    log("connected to server".to_owned());
                    if let Some(tick) = &tick {
                        if let Some(line) = reconnection_line(*last_count, tick) {
                            log(line);
                        }
                        report(Event::Status(Status::Connected { server: tick.server.to_owned() }));
                    }
                }
                if let Some(tick) = &tick {
                    *last_count = Some(tick.seconds);
                }
                ended.delivered_tick = true;
                log(text);
            }
            Some(Ok(Message::Bytes(_))) | Some(Err(WebSocketError::ConnectionError)) => {}
            Some(Err(WebSocketError::ConnectionClose(close))) => {
                ended.close_code = Some(close.code);
                ended.reason = close.reason;
                return ended;
            }
            Some(Err(_)) | None => return ended,
        }
    }
}

/// A sleep on the browser's timer.
pub(crate) fn sleep(duration: Duration) -> TimeoutFuture {
    TimeoutFuture::new(u32::try_from(duration.as_millis()).unwrap_or(u32::MAX))
}
