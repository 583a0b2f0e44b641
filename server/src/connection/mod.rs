//! One WebSocket connection after its `101`: the socket and the little state it needs.
//!
//! A connection is shared by two parties on its worker thread, and nothing else:
//! - the worker's tick wheel comes round to it once a second, in the slot of its ticks, and
//!   [`Connection::visit`] writes that second's frames (the tick, a ping when one is due,
//!   the drain's or the idle timeout's close) straight to the socket in one write, from a
//!   buffer the worker shares between all its connections ([`shared::Shared`]);
//! - its own task reads what the client sends (pings, pongs, close) through
//!   [`Connection::receive`], answers it, and finishes writes the kernel refused through
//!   [`Connection::flush`].
//!
//! The connection knows nothing of its worker: what it needs from it comes in a
//! [`shared::Shared`], which the worker owns.
//!
//! Bytes are kept per connection only when the kernel refuses them (a partial write or
//! `WouldBlock`), up to [`MAX_PARKED_BYTES`]; a peer that lets more pile up is not reading
//! and is dropped. Likewise a client's bytes are kept only while a frame is incomplete.
//! So a quiet connection holds no buffer at all, and a tick costs no wake of any task.
//!
//! **The wake rule.** The connection's task is woken by its socket, when it is readable or,
//! while bytes are parked or unflushed, writable; and by [`Connection::wake`], which is
//! called exactly when bytes are first parked or left unflushed (so the task starts waiting
//! for writability) and when the phase becomes [`Phase::Closed`] (so the task ends and the
//! socket is dropped). Ticks,
//! pings, keep-alives, idle checks and drain closes never wake it.
//!
//! Measured (docs/benchmarks.md): this replaced actix-http's HTTP/1 dispatcher as the
//! socket's driver, which kept an 8 KiB read and an 8 KiB write buffer and a task per socket
//! for the socket's whole life and was woken for every tick.

pub mod frames;
pub mod incoming;
pub mod schedule;
pub mod shared;

use std::{
    cell::{Cell, RefCell},
    pin::Pin,
    task::{Context, Poll, Waker},
    time::Duration,
};

use actix_http::ws::{Frame, ProtocolError};
use bytes::{Buf as _, Bytes, BytesMut};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    sync::OwnedSemaphorePermit,
    time::Instant,
};
use tokio_util::task::task_tracker::TaskTrackerToken;
use wstime_protocol::{ClientId, CloseCode};

use self::{incoming::Incoming, schedule::Schedule, shared::Shared};
use crate::{client_limits::ClientSlot, log_id::LoggedId};

/// The largest frame a client may send. Clients have nothing to say beyond pings, so a
/// small limit keeps a misbehaving peer from making the server buffer much.
pub const MAX_FRAME_BYTES: usize = 4 * 1024;

/// The most bytes kept for a peer whose socket accepts no more (after the kernel's own
/// buffers, hundreds of kilobytes, are full): a couple of minutes of ticks. Beyond it the
/// peer is not reading, and it is dropped rather than buffered for without bound.
pub const MAX_PARKED_BYTES: usize = 8 * 1024;

/// How long, after the server's close frame, the peer has to answer with its own.
pub const CLOSING_LIMIT: Duration = Duration::from_secs(2);

/// Pings a client may send between two of its ticks (a second): far more than any client's
/// keep-alive needs (browsers send none), few enough that a flood is stopped within its
/// first second, with 1008. Each read's pings are answered with one pong, for the last of
/// them (RFC 6455 section 5.5.3 allows it), so a flood costs little until then.
pub const MAX_PINGS_PER_SECOND: u16 = 20;

/// Where a connection is in its life. The phases only ever move forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Ticking.
    Open,
    /// The drain's closing phase has begun: still ticking, until this socket's own moment
    /// in the drain window (kept in its worker's close schedule), when it is closed with
    /// 1012. Not moved by rebalancing meanwhile.
    Draining,
    /// The server's close frame is sent; waiting for the peer's until `deadline`.
    Closing { deadline: Instant },
    /// Finished: the task ends and the socket is dropped.
    Closed,
}

/// One WebSocket connection.
pub struct Connection<T> {
    io: RefCell<T>,
    phase: Cell<Phase>,
    schedule: Cell<Schedule>,
    /// When the client last sent anything (a pong is enough): idleness is judged from it.
    last_heard: Cell<Instant>,
    /// Pings received since the last tick (see [`MAX_PINGS_PER_SECOND`]).
    pings: Cell<u16>,
    /// Bytes the kernel did not take yet, in order; empty (no buffer) almost always.
    parked: RefCell<BytesMut>,
    incoming: RefCell<Incoming>,
    /// The connection's task, for [`Connection::wake`].
    waker: RefCell<Option<Waker>>,
    client_id: ClientId,
    /// Its places under the limits, held until it is dropped.
    _admission: Admission,
}

/// A connection's places under the instance's limits, given back when it is dropped.
#[derive(Debug)]
pub struct Admission {
    /// Its place under the connection limit.
    pub slot: OwnedSemaphorePermit,
    /// Its share of its client address's limit, when one is set.
    pub client: Option<ClientSlot>,
    /// Counts it as live; shutdown waits for every one.
    pub live: TaskTrackerToken,
}

impl<T: AsyncRead + AsyncWrite + Unpin> Connection<T> {
    /// A connection on `io` for `client_id`, ticking on `schedule`. `early` holds whatever
    /// the client sent after its handshake, before the server answered.
    pub fn new(
        io: T,
        client_id: ClientId,
        schedule: Schedule,
        early: BytesMut,
        admission: Admission,
    ) -> Self {
        Self {
            io: RefCell::new(io),
            phase: Cell::new(Phase::Open),
            schedule: Cell::new(schedule),
            last_heard: Cell::new(Instant::now()),
            pings: Cell::new(0),
            parked: RefCell::new(BytesMut::new()),
            incoming: RefCell::new(Incoming::new(early)),
            waker: RefCell::new(None),
            client_id,
            _admission: admission,
        }
    }

    /// The session this connection holds.
    pub fn client_id(&self) -> &ClientId {
        &self.client_id
    }

    /// Where the connection is in its life.
    pub fn phase(&self) -> Phase {
        self.phase.get()
    }

    /// The count of the last tick sent (or, before the first, the count it says).
    pub fn seconds(&self) -> u64 {
        self.schedule.get().seconds()
    }

    /// When the next tick is due.
    pub fn next_tick(&self) -> Instant {
        self.schedule.get().next_tick()
    }

    /// The wheel's visit at `now`: sends whatever is due in one write, and closes a
    /// connection that has been closing for too long or whose peer has gone quiet.
    pub fn visit(&self, now: Instant, shared: &Shared) {
        match self.phase.get() {
            Phase::Closed => return,
            Phase::Closing { deadline } => {
                if deadline <= now {
                    self.end();
                }
                return;
            }
            Phase::Open | Phase::Draining => {}
        }
        let timing = shared.timing();
        let mut schedule = self.schedule.get();
        let due_at = schedule.next_tick();
        let due = schedule.advance(now, timing);
        self.schedule.set(schedule);
        if due.keep_alive {
            shared.touches().request(self.client_id.clone());
        }
        let mut out = shared.out();
        if let Some(seconds) = due.tick {
            self.pings.set(0);
            frames::tick(&mut out, shared.tick_prefix(), seconds);
            shared.traffic().record_tick(out.len(), now.saturating_duration_since(due_at));
        }
        let idle = due.ping && now.duration_since(self.last_heard.get()) >= timing.idle_timeout;
        if idle {
            frames::close(&mut out, Some((CloseCode::GoingAway, "idle timeout")));
        } else if due.ping {
            frames::ping(&mut out);
        }
        self.send(&out);
        if idle {
            // A peer silent this long will not answer a close either: the close frame is
            // a courtesy, and the socket goes at once.
            shared.metrics().server_closed(CloseCode::GoingAway);
            self.end();
        }
    }

    /// Closes the connection with `code`: the close frame, then [`Phase::Closing`].
    pub fn close(&self, now: Instant, code: CloseCode, reason: &str, shared: &Shared) {
        if matches!(self.phase.get(), Phase::Closing { .. } | Phase::Closed) {
            return;
        }
        let mut out = shared.out();
        frames::close(&mut out, Some((code, reason)));
        self.send(&out);
        shared.metrics().server_closed(code);
        self.closing(now);
    }

    /// Marks the socket as waiting for its moment in the drain (see [`Phase::Draining`]).
    pub fn drain(&self) {
        if self.phase.get() == Phase::Open {
            self.phase.set(Phase::Draining);
        }
    }

    fn closing(&self, now: Instant) {
        if self.phase.get() != Phase::Closed {
            self.phase.set(Phase::Closing { deadline: now + CLOSING_LIMIT });
        }
    }

    /// Ends the connection: its task finishes and the socket is dropped.
    pub fn end(&self) {
        if self.phase.replace(Phase::Closed) != Phase::Closed {
            self.wake();
        }
    }

    /// Writes `bytes` now, parking what the kernel does not take (see the module's notes).
    pub fn send(&self, bytes: &[u8]) {
        if bytes.is_empty() || self.phase.get() == Phase::Closed {
            return;
        }
        let mut parked = self.parked.borrow_mut();
        if !parked.is_empty() {
            // Order: these bytes go after the parked ones.
            if parked.len() + bytes.len() > MAX_PARKED_BYTES {
                drop(parked);
                tracing::debug!(id = %LoggedId(&self.client_id), "peer is not reading: dropped");
                self.end();
            } else {
                parked.extend_from_slice(bytes);
            }
            return;
        }
        // No task waits on this write: the connection's task is woken if it must finish it.
        let mut cx = Context::from_waker(Waker::noop());
        let written = match Pin::new(&mut *self.io.borrow_mut()).poll_write(&mut cx, bytes) {
            Poll::Ready(Ok(written)) if written > 0 => written,
            Poll::Pending => 0,
            Poll::Ready(_) => {
                drop(parked);
                self.end();
                return;
            }
        };
        if written < bytes.len() {
            parked.extend_from_slice(&bytes[written..]);
            drop(parked);
            self.wake();
            return;
        }
        // A TLS stream may hold the record it made for these bytes until flushed (a plain
        // socket never does): if it cannot flush now, the task will, when writable.
        match Pin::new(&mut *self.io.borrow_mut()).poll_flush(&mut cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Pending => self.wake(),
            Poll::Ready(Err(_)) => {
                drop(parked);
                self.end();
            }
        }
    }

    /// Writes parked bytes while the socket takes them, then flushes (a TLS stream's last
    /// record); `Pending` leaves the task's waker for writability.
    pub fn flush(&self, cx: &mut Context<'_>) {
        let mut parked = self.parked.borrow_mut();
        while !parked.is_empty() {
            match Pin::new(&mut *self.io.borrow_mut()).poll_write(cx, &parked) {
                Poll::Ready(Ok(written)) if written > 0 => parked.advance(written),
                Poll::Pending => return,
                Poll::Ready(_) => {
                    drop(parked);
                    self.end();
                    return;
                }
            }
        }
        if parked.capacity() > 0 {
            *parked = BytesMut::new();
        }
        drop(parked);
        if let Poll::Ready(Err(_)) = Pin::new(&mut *self.io.borrow_mut()).poll_flush(cx) {
            self.end();
        }
    }

    /// Reads and answers the client's frames until the socket has no more for now;
    /// `Pending` leaves the task's waker for readability.
    pub fn receive(&self, cx: &mut Context<'_>, shared: &Shared) {
        let mut incoming = self.incoming.borrow_mut();
        let mut buffer = shared.input();
        incoming.resume(&mut buffer);
        while self.phase.get() != Phase::Closed {
            let mut last_ping = None;
            let decoded = incoming.decode(&mut buffer, |frame| {
                self.on_frame(frame, &mut last_ping, shared);
                self.phase.get() != Phase::Closed
            });
            if let Some(payload) = last_ping {
                let mut out = shared.out();
                frames::pong(&mut out, payload);
                self.send(&out);
            }
            if let Err(error) = decoded {
                self.on_protocol_error(&error, shared);
            }
            if self.phase.get() == Phase::Closed {
                break;
            }
            buffer.reserve(MAX_FRAME_BYTES);
            let read = tokio_util::io::poll_read_buf(
                Pin::new(&mut *self.io.borrow_mut()),
                cx,
                &mut *buffer,
            );
            match read {
                Poll::Ready(Ok(read)) if read > 0 => {}
                // The stream ended or broke: nobody is left to tell.
                Poll::Ready(_) => self.end(),
                Poll::Pending => break,
            }
        }
        if self.phase.get() != Phase::Closed {
            incoming.keep(&buffer);
        }
    }

    /// Acts on one frame of a read; a ping's payload is kept in `last_ping`, to be answered
    /// once the read's frames are all decoded.
    fn on_frame(&self, frame: Frame, last_ping: &mut Option<Bytes>, shared: &Shared) {
        let now = Instant::now();
        // Anything from the peer, pongs included, proves it is alive.
        self.last_heard.set(now);
        match frame {
            Frame::Ping(payload) => {
                let pings = self.pings.get().saturating_add(1);
                self.pings.set(pings);
                if pings > MAX_PINGS_PER_SECOND {
                    *last_ping = None;
                    self.close(now, CloseCode::PolicyViolation, "too many pings", shared);
                } else if matches!(self.phase.get(), Phase::Open | Phase::Draining) {
                    *last_ping = Some(payload);
                }
            }
            Frame::Close(_) => {
                // The peer's close answers ours, or asks for an answer (RFC 6455 section
                // 5.5.1); either way the close handshake is over and the server drops the
                // TCP connection first, as section 7.1.1 has it.
                if !matches!(self.phase.get(), Phase::Closing { .. }) {
                    let mut out = shared.out();
                    frames::close(&mut out, None);
                    self.send(&out);
                }
                self.end();
            }
            // Text, binary, pongs and continuations carry nothing to act on.
            _ => {}
        }
    }

    fn on_protocol_error(&self, error: &ProtocolError, shared: &Shared) {
        let now = Instant::now();
        match error {
            ProtocolError::Overflow => self.close(
                now,
                CloseCode::MessageTooBig,
                "frames are limited to 4096 bytes",
                shared,
            ),
            _ => self.close(now, CloseCode::ProtocolError, "protocol error", shared),
        }
    }

    /// Wakes the connection's task (see the module's wake rule).
    fn wake(&self) {
        if let Some(waker) = self.waker.borrow().as_ref() {
            waker.wake_by_ref();
        }
    }

    /// Keeps the task's waker for [`Connection::wake`].
    pub fn remember(&self, waker: &Waker) {
        let mut kept = self.waker.borrow_mut();
        if !kept.as_ref().is_some_and(|kept| kept.will_wake(waker)) {
            *kept = Some(waker.clone());
        }
    }
}
