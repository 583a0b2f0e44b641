//! One WebSocket connection, driven as the body of its own `101 Switching Protocols`
//! response.
//!
//! actix-http already runs one task per socket (its HTTP/1 dispatcher), and that task polls
//! the response body whenever it wakes. So the connection lives in the body: one poll reads
//! the client's frames from the request payload, does whatever is due and hands back the
//! frames to send, which the dispatcher writes at once. There is no second task and no
//! channel between the connection and its socket, so a tick costs one wake (from the
//! worker's [`tick_wheel`](crate::tick_wheel)), one poll and one `write`, and a connection's
//! own memory is this struct. (actix-ws's `Session` would put a spawned task and a 32-slot
//! channel in between: about 4 KB more per socket and twice the wakes per tick; see the
//! README's benchmarks.)
//!
//! The connection ends with a reason; its close frame, if any, is the last thing it sends.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use actix_http::ws::{Codec, Frame, OpCode};
use actix_web::{
    body::{BodySize, MessageBody},
    dev::Payload,
    web::{BufMut as _, Bytes, BytesMut},
};
use actix_ws::{CloseReason, Message, ProtocolError};
use futures_util::Stream as _;
use pin_project_lite::pin_project;
use tokio::{
    sync::OwnedSemaphorePermit,
    time::{Instant, Sleep},
};
use tokio_util::{
    codec::{Decoder as _, Encoder as _},
    task::task_tracker::TaskTrackerToken,
};
use wstime_protocol::{tick, ClientId, CloseCode};

use crate::{
    session::Opened,
    state::AppState,
    tick_wheel::{self, Place},
    trigger::Watch,
};

/// Time between ticks.
pub const TICK_INTERVAL: Duration = Duration::from_secs(1);

/// The longest WebSocket frame header a server writes: two bytes and a 64-bit length.
const MAX_HEADER_BYTES: usize = 10;

/// The largest frame a client may send. Clients have nothing to say beyond pings, so a
/// small limit keeps a misbehaving peer from making the server buffer much.
pub const MAX_FRAME_BYTES: usize = 4 * 1024;

/// Why a connection ended.
#[derive(Debug)]
enum Ending {
    /// The peer's TCP stream ended or broke: nobody is left to tell.
    PeerGone,
    /// The peer sent a close frame; answer it with an empty one.
    PeerClosed,
    /// The server ends the connection with this code and reason.
    Close(CloseCode, &'static str),
}

pin_project! {
    /// A WebSocket connection, as the streaming body of its upgrade response.
    ///
    /// The first tick goes out at once and says the session's count ([`Opened::first`]);
    /// each later tick is sent when the session's age reaches its count, measured on this
    /// instance's monotonic clock from the age the store reported. So ticks go up by one per
    /// second, never repeat, and a reconnect anywhere continues where the last one stopped.
    // `inner` first, and in declaration order: see `Inner`.
    #[repr(C)]
    pub struct Connection {
        inner: Inner,
        // The timer for everything but ticks (which come from the worker's tick wheel):
        // the next ping, keep-alive or drain close, whichever is first.
        #[pin]
        timer: Sleep,
        // Wakes the connection when the drain's closing phase starts.
        #[pin]
        shutdown: Watch,
    }
}

/// Everything else a connection holds; it need not be pinned.
///
/// Laid out in the order a tick reads it, so that a tick touches the first two or three
/// cache lines of the connection and no more: with thousands of sockets a connection is
/// rarely still in cache when its tick comes, and each line missed is a wait on memory
/// (this was most of the connection's own CPU time in `perf annotate`).
#[repr(C)]
struct Inner {
    finished: bool,
    /// Whether the last poll handed frames over (see `poll_next`).
    handed_over: bool,
    /// Whether `shutdown` holds this task's waker (after which a check is an atomic load).
    watching_shutdown: bool,
    /// The count of the last tick sent.
    seconds: u64,
    next_tick: Instant,
    /// Set when the drain's closing phase starts: this socket's moment to close.
    close_at: Option<Instant>,
    /// What `timer` is set for and holds this task's waker for (`None`: not yet).
    timer_deadline: Option<Instant>,
    /// When to ping next; idleness is judged at the same moments.
    next_ping: Instant,
    next_keep_alive: Instant,
    state: Arc<AppState>,
    /// Frames waiting to be handed to the dispatcher.
    outgoing: BytesMut,
    /// Bytes of a client frame not yet complete.
    received: BytesMut,
    /// The client's bytes, as the dispatcher reads them.
    incoming: Payload,
    /// Where the tick wheel wakes this connection for its ticks; taken at the first poll,
    /// the first moment a waker is at hand.
    place: Option<Place>,
    last_heard: Instant,
    codec: Codec,
    client_id: ClientId,
    /// This connection's place under the connection limit.
    _slot: OwnedSemaphorePermit,
    /// Counts this connection as live until it is dropped; shutdown waits for all of them.
    _live: TaskTrackerToken,
}

impl Connection {
    /// A connection for `client_id`, whose session the store reported as `opened`, reading
    /// the client's frames from `incoming`.
    pub fn new(
        state: Arc<AppState>,
        client_id: ClientId,
        opened: Opened,
        incoming: Payload,
        slot: OwnedSemaphorePermit,
    ) -> Self {
        let now = Instant::now();
        let timing = state.timing;
        // `first` is at least the age rounded up, so the next count is always in the future.
        let epoch = Instant::from_std(state.started);
        // On the tick wheel's grid, where the wheel wakes the connection: pings and
        // keep-alives counted from it fall on the grid too, so whatever wakes the
        // connection first finds the tick due at the same moment, never a slot early.
        let next_tick =
            tick_wheel::on_grid(now + (Duration::from_secs(opened.first + 1) - opened.age), epoch);
        // Pings fall on tick moments whenever the interval is whole seconds, so a ping and a
        // tick leave in the same write.
        let next_ping = next_tick + timing.ping_interval.saturating_sub(TICK_INTERVAL);
        let mut inner = Inner {
            client_id,
            incoming,
            received: BytesMut::new(),
            codec: Codec::new().max_size(MAX_FRAME_BYTES),
            outgoing: BytesMut::new(),
            seconds: opened.first,
            next_tick,
            place: None,
            timer_deadline: None,
            watching_shutdown: false,
            next_ping,
            next_keep_alive: next_tick + timing.keep_alive,
            last_heard: now,
            close_at: None,
            finished: false,
            handed_over: false,
            _slot: slot,
            _live: state.connections.token(),
            state,
        };
        inner.put_tick();
        Self {
            timer: tokio::time::sleep_until(inner.slow_deadline()),
            shutdown: inner.state.shutdown.watch(),
            inner,
        }
    }
}

impl MessageBody for Connection {
    type Error = Infallible;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.project();
        let inner = this.inner;
        if inner.finished {
            return Poll::Ready(None);
        }
        // Having taken frames, the dispatcher polls again at once (it fills its buffer
        // until the body has nothing more): nothing can have happened in between, so say
        // so without looking. Should that poll come in a later wake instead (the
        // dispatcher stops taking frames while its write buffer is full), whatever fell
        // due meanwhile is done at the wheel's next wake, within a second.
        if std::mem::take(&mut inner.handed_over) {
            return Poll::Pending;
        }
        let mut ending = inner.receive(cx);
        if ending.is_none() {
            inner.watch_shutdown(this.shutdown, cx);
            ending = inner.run_due(this.timer, cx);
        }
        if let Some(ending) = ending {
            tracing::debug!(client_id = %inner.client_id, ?ending, "connection ended");
            inner.finished = true;
            match ending {
                Ending::PeerGone => return Poll::Ready(None),
                Ending::PeerClosed => inner.put(Message::Close(None)),
                Ending::Close(code, description) => inner.put(Message::Close(Some(CloseReason {
                    code: code.code().into(),
                    description: Some(description.into()),
                }))),
            }
        }
        if inner.outgoing.is_empty() {
            return if inner.finished { Poll::Ready(None) } else { Poll::Pending };
        }
        inner.handed_over = true;
        // Taken whole, so the next frame starts a fresh buffer rather than growing this one
        // while the dispatcher still holds it.
        Poll::Ready(Some(Ok(std::mem::take(&mut inner.outgoing).freeze())))
    }
}

impl Inner {
    /// Reads and answers the client's frames until the payload has no more for now.
    fn receive(&mut self, cx: &mut Context<'_>) -> Option<Ending> {
        loop {
            // Most polls are for a tick, with nothing received: skip the decoder then.
            let decoded = if self.received.is_empty() {
                Ok(None)
            } else {
                self.codec.decode(&mut self.received)
            };
            match decoded {
                Ok(Some(frame)) => {
                    // Anything from the peer, pongs included, proves it is alive.
                    self.last_heard = Instant::now();
                    match frame {
                        Frame::Ping(payload) => self.put(Message::Pong(payload)),
                        Frame::Close(_) => return Some(Ending::PeerClosed),
                        // Text, binary, pongs and continuations carry nothing to act on.
                        _ => {}
                    }
                    continue;
                }
                Ok(None) => {}
                Err(ProtocolError::Overflow) => {
                    return Some(Ending::Close(
                        CloseCode::MessageTooBig,
                        "frames are limited to 4096 bytes",
                    ))
                }
                Err(_) => return Some(Ending::PeerGone),
            }
            if self.received.is_empty() && self.received.capacity() > 0 {
                // Let go of the read chunk's allocation while the client is quiet.
                self.received = BytesMut::new();
            }
            match Pin::new(&mut self.incoming).poll_next(cx) {
                Poll::Ready(Some(Ok(bytes))) => self.received.extend_from_slice(&bytes),
                Poll::Ready(Some(Err(_)) | None) => return Some(Ending::PeerGone),
                Poll::Pending => return None,
            }
        }
    }

    /// Notices the start of the drain's closing phase and picks this socket's moment in the
    /// window: each socket closes at its own random moment, so the clients' reconnects reach
    /// the other instances spread out, not as one herd.
    fn watch_shutdown(&mut self, shutdown: Pin<&mut Watch>, cx: &mut Context<'_>) {
        // Polled once to leave the waker, then only once the trigger has fired.
        let look = !self.watching_shutdown || self.state.shutdown.has_fired();
        if self.close_at.is_some() || !look {
            return;
        }
        self.watching_shutdown = true;
        if shutdown.poll_fired(&self.state.shutdown, cx).is_ready() {
            let delay = self.state.timing.drain_window.mul_f64(rand::random::<f64>());
            self.close_at = Some(Instant::now() + delay);
        }
    }

    /// Does whatever is due, and makes sure the connection is woken for what comes next.
    fn run_due(&mut self, mut timer: Pin<&mut Sleep>, cx: &mut Context<'_>) -> Option<Ending> {
        let now = Instant::now();
        if self.close_at.is_some_and(|close_at| close_at <= now) {
            return Some(Ending::Close(CloseCode::ServiceRestart, "server restarting"));
        }
        if self.next_tick <= now {
            self.seconds += 1;
            self.put_tick();
            self.next_tick += TICK_INTERVAL;
            if self.next_tick <= now {
                // After a stall of a second or more, keep one-second spacing rather than
                // sending a burst of late ticks; the ticks' phase, and so the slot, moves.
                self.next_tick = tick_wheel::on_grid(now + TICK_INTERVAL, self.epoch());
                if let Some(place) = &mut self.place {
                    place.follow(self.next_tick);
                }
            }
        }
        if self.place.is_none() {
            self.place = Some(Place::join(self.next_tick, self.epoch(), cx.waker()));
        }
        if self.next_keep_alive <= now {
            self.next_keep_alive = now + self.state.timing.keep_alive;
            self.keep_alive();
        }
        if self.next_ping <= now {
            let timing = self.state.timing;
            if now.duration_since(self.last_heard) >= timing.idle_timeout {
                return Some(Ending::Close(CloseCode::GoingAway, "idle timeout"));
            }
            self.put(Message::Ping(Bytes::new()));
            while self.next_ping <= now {
                self.next_ping += timing.ping_interval;
            }
        }
        let deadline = self.slow_deadline();
        if self.timer_deadline != Some(deadline) {
            timer.as_mut().reset(deadline);
            // Everything due is done, so this only leaves the task's waker; should the
            // deadline already have passed, poll again rather than lose the wake.
            if timer.as_mut().poll(cx).is_ready() {
                cx.waker().wake_by_ref();
            }
            self.timer_deadline = Some(deadline);
        }
        None
    }

    /// Where the tick wheel's grid is counted from: the instance's start.
    fn epoch(&self) -> Instant {
        Instant::from_std(self.state.started)
    }

    /// When the timer must wake the connection: the next ping, keep-alive or drain close.
    fn slow_deadline(&self) -> Instant {
        let next = self.next_ping.min(self.next_keep_alive);
        self.close_at.map_or(next, |close_at| close_at.min(next))
    }

    /// Queues the tick for `self.seconds`.
    fn put_tick(&mut self) {
        let sent = frame_tick(&mut self.outgoing, &self.state.tick_prefix, self.seconds);
        self.state.capacity.record_sent(sent);
    }

    /// Asks for the session's expiry to be restarted: on the keep-alive while the socket is
    /// open, and once when it ends (see `Drop`), so the resume window counts from the moment
    /// the socket let go.
    fn keep_alive(&self) {
        self.state.touches.request(self.client_id.clone());
    }

    /// Queues a control frame.
    fn put(&mut self, message: Message) {
        if let Err(error) = self.codec.encode(message, &mut self.outgoing) {
            tracing::warn!(client_id = %self.client_id, %error, "cannot encode a frame");
        }
    }
}

impl Drop for Inner {
    /// However the connection ends (a close, a peer gone, the dispatcher dropping it), the
    /// session's last touch.
    fn drop(&mut self) {
        self.keep_alive();
    }
}

/// Frames the tick for `seconds` (the pre-built `prefix` plus the count) straight into
/// `out`, with one exact reservation and no formatting machinery; returns the frame's
/// length in bytes.
fn frame_tick(out: &mut BytesMut, prefix: &str, seconds: u64) -> usize {
    let count = tick::Count::new(seconds);
    let len = prefix.len() + count.as_bytes().len();
    let before = out.len();
    if out.capacity() == 0 {
        // The usual case, an empty buffer: one exact allocation, not a growth step.
        *out = BytesMut::with_capacity(MAX_HEADER_BYTES + len);
    } else {
        out.reserve(MAX_HEADER_BYTES + len);
    }
    // RFC 6455 section 5.2: FIN and the text opcode, then the length in 7, 16 or 64 bits
    // (a server's frames are not masked).
    out.put_u8(0x80 | u8::from(OpCode::Text));
    match u16::try_from(len) {
        Ok(short) if short < 126 => out.put_u8(short as u8),
        Ok(medium) => {
            out.put_u8(126);
            out.put_u16(medium);
        }
        Err(_) => {
            out.put_u8(127);
            out.put_u64(len as u64);
        }
    }
    out.put_slice(prefix.as_bytes());
    out.put_slice(count.as_bytes());
    out.len() - before
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The texts a client reads from `bytes`, decoding frames as a client does.
    fn client_reads(mut bytes: BytesMut) -> Vec<String> {
        let mut codec = Codec::new().client_mode().max_size(1 << 20);
        std::iter::from_fn(|| codec.decode(&mut bytes).unwrap())
            .map(|frame| match frame {
                Frame::Text(text) => String::from_utf8(text.to_vec()).unwrap(),
                other => panic!("expected a text frame, got {other:?}"),
            })
            .collect()
    }

    #[test]
    fn ticks_are_whole_text_frames_for_any_name_length() {
        // The usual name needs the 7-bit length form, 200 bytes the 16-bit one and 70,000
        // bytes the 64-bit one.
        for name in ["slimy-cardinal".to_owned(), "n".repeat(200), "n".repeat(70_000)] {
            let prefix = tick::prefix(&name);
            let mut out = BytesMut::new();
            let first = frame_tick(&mut out, &prefix, 9);
            let second = frame_tick(&mut out, &prefix, 10);
            assert_eq!(first + second, out.len());
            let texts = client_reads(out);
            assert_eq!(texts.len(), 2);
            for (text, seconds) in texts.iter().zip([9, 10]) {
                let parsed = tick::Tick::parse(text).expect("a tick's text");
                assert_eq!((parsed.server, parsed.seconds), (name.as_str(), seconds));
            }
        }
    }
}
