//! One worker thread's share of the connections: its tick wheel, the task that turns it,
//! the buffers its connections share, and its part of the drain.
//!
//! actix-server runs one single-threaded runtime per worker; a connection is accepted,
//! upgraded and driven on one worker for its whole life. So everything here is `Rc` and
//! `RefCell`, shared by the worker's connections without locks.

pub mod moves;
pub mod task;

use std::{
    cell::{Cell, RefCell},
    pin::pin,
    rc::{Rc, Weak},
    sync::Arc,
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite},
    sync::Notify,
    time::Instant,
};
use wstime_protocol::CloseCode;

use self::{moves::Moves, task::Driving};
use crate::{
    connection::{
        frames,
        shared::{Settings, Shared},
        Connection, Phase,
    },
    instance::Instance,
    lifecycle::Stage,
    tick_wheel::{Stagger, Wheel},
};

/// What every worker of an instance is made from.
#[derive(Clone)]
pub struct WorkerParts {
    /// The instance: its lifecycle (the drain), its capacity (traffic counters) and its
    /// start (where the wheels' staggered grids count from).
    pub instance: Arc<Instance>,
    /// What every connection reads.
    pub connections: Settings,
    /// The window over which the drain closes the sockets.
    pub drain_window: Duration,
    /// Sockets to move to other instances (see [`crate::rebalance`]).
    pub moves: Arc<Moves>,
    /// Where each worker's wheel counts its slots from.
    pub stagger: Arc<Stagger>,
}

/// One worker's connections and what they share.
pub struct Worker<T: AsyncRead + AsyncWrite + Unpin + 'static> {
    instance: Arc<Instance>,
    /// What the worker's connections share: its buffers and the instance's settings. (Its
    /// connections' tasks hold it too, and the wheel, to leave it when they end.)
    shared: Rc<Shared>,
    wheel: Rc<RefCell<Wheel<Rc<Connection<T>>>>>,
    /// Whether the task turning the wheel is running (it stops when the wheel is empty).
    turning: Cell<bool>,
    /// When the turning task wakes next.
    wakes_at: Cell<Instant>,
    /// Tells the turning task that a connection joined a slot that comes round before
    /// `wakes_at` (waking a task that is merely sleeping would not cut its sleep short).
    joined_earlier: Notify,
    /// This worker's part of the drain.
    drain: RefCell<Drain<T>>,
    drain_window: Duration,
    moves: Arc<Moves>,
    /// When the turning task may next take some of the moves.
    moves_due: Cell<Instant>,
}

/// Where this worker is in the drain's closing phase.
enum Drain<T> {
    /// It has not begun.
    NotYet,
    /// It has: the closes still to make, latest first. Weak: a connection that ends by
    /// itself meanwhile is not kept open.
    Closing(Vec<(Instant, Weak<Connection<T>>)>),
}

impl<T: AsyncRead + AsyncWrite + Unpin + 'static> Worker<T> {
    /// The worker's share of the instance; one per worker thread.
    pub fn new(parts: &WorkerParts) -> Rc<Self> {
        let epoch = parts.stagger.next_epoch(parts.instance.started);
        let shared = Shared::new(parts.instance.capacity.traffic(), parts.connections.clone());
        Rc::new(Self {
            instance: Arc::clone(&parts.instance),
            shared: Rc::new(shared),
            wheel: Rc::new(RefCell::new(Wheel::new(epoch))),
            turning: Cell::new(false),
            wakes_at: Cell::new(epoch),
            joined_earlier: Notify::new(),
            drain: RefCell::new(Drain::NotYet),
            drain_window: parts.drain_window,
            moves: Arc::clone(&parts.moves),
            moves_due: Cell::new(epoch),
        })
    }

    /// What the worker's connections share.
    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Where the wheel's grid is counted from: the instance's start, staggered.
    pub fn epoch(&self) -> Instant {
        self.wheel.borrow().epoch()
    }

    /// Starts `connection`: writes `head` (the `101`) and its first tick in one write, puts
    /// it on the wheel and spawns its task.
    pub fn start(self: &Rc<Self>, connection: Connection<T>, head: &[u8]) {
        {
            let mut out = self.shared.out();
            out.extend_from_slice(head);
            frames::tick(&mut out, self.shared.tick_prefix(), connection.seconds());
            self.shared.traffic().record_tick(out.len() - head.len(), Duration::ZERO);
            connection.send(&out);
        }
        let now = Instant::now();
        let connection = Rc::new(connection);
        let next_tick = connection.next_tick();
        let place = self.wheel.borrow_mut().insert(next_tick, Rc::clone(&connection));
        if let Drain::Closing(closes) = &mut *self.drain.borrow_mut() {
            // Admitted in the instant the drain began: it closes at once.
            connection.drain();
            closes.push((now, Rc::downgrade(&connection)));
        }
        if !self.turning.replace(true) {
            self.wakes_at.set(next_tick);
            tokio::task::spawn_local(tokio::task::unconstrained(turn(Rc::clone(self))));
        } else if next_tick < self.wakes_at.get() {
            self.wakes_at.set(next_tick);
            self.joined_earlier.notify_one();
        }
        let (wheel, shared) = (Rc::clone(&self.wheel), Rc::clone(&self.shared));
        tokio::task::spawn_local(Driving::new(connection, wheel, shared, place));
    }

    /// The drain's closing phase begins: every connection gets its own moment, at random
    /// within the drain window, so the clients' reconnects reach the other instances
    /// spread out rather than as one herd.
    fn schedule_drain(&self, now: Instant) {
        let mut closes: Vec<_> = self
            .wheel
            .borrow()
            .iter()
            .map(|connection| {
                connection.drain();
                let close_at = now + self.drain_window.mul_f64(rand::random::<f64>());
                (close_at, Rc::downgrade(connection))
            })
            .collect();
        closes.sort_unstable_by_key(|(close_at, _)| std::cmp::Reverse(*close_at));
        *self.drain.borrow_mut() = Drain::Closing(closes);
    }

    /// Closes (with 1012) every connection whose moment in the drain has come.
    fn close_due(&self, now: Instant) {
        loop {
            let due = match &mut *self.drain.borrow_mut() {
                Drain::Closing(closes) => match closes.last() {
                    Some((close_at, _)) if *close_at <= now => closes.pop(),
                    _ => None,
                },
                Drain::NotYet => None,
            };
            let Some((_, connection)) = due else { return };
            if let Some(connection) = connection.upgrade() {
                let reason = "server restarting";
                connection.close(now, CloseCode::ServiceRestart, reason, &self.shared);
            }
        }
    }

    /// When the turning task must next wake: the next occupied slot or drain close.
    fn next_wake(&self) -> Option<Instant> {
        let tick = self.wheel.borrow().next_occupied();
        let close = match &*self.drain.borrow() {
            Drain::Closing(closes) => closes.last().map(|(close_at, _)| *close_at),
            Drain::NotYet => None,
        };
        match (tick, close) {
            (Some(tick), Some(close)) => Some(tick.min(close)),
            (tick, close) => tick.or(close),
        }
    }

    /// Whether the drain's closing phase has begun on this worker.
    fn closing(&self) -> bool {
        matches!(*self.drain.borrow(), Drain::Closing(_))
    }
}

/// Turns `worker`'s wheel: visits each slot's connections when the slot comes round, and
/// closes them at their moments once the drain's closing phase begins, until no connection
/// is left. Sleeps through slots that hold nobody. Runs unconstrained by tokio's
/// cooperative budget: its writes go to many sockets, and a budget spent half-way through a
/// slot would park every later tick in it.
async fn turn<T: AsyncRead + AsyncWrite + Unpin + 'static>(worker: Rc<Worker<T>>) {
    let lifecycle = &worker.instance.lifecycle;
    let mut closing = pin!(lifecycle.reached(Stage::Closing));
    loop {
        let now = Instant::now();
        if !worker.closing() && lifecycle.stage() >= Stage::Closing {
            worker.schedule_drain(now);
        }
        // Sockets to move to emptier instances this turn, if the cluster is unbalanced.
        let mut moving = 0;
        if now >= worker.moves_due.get() {
            worker.moves_due.set(now + moves::TAKE_EVERY);
            moving = worker.moves.take_for_a_turn();
        }
        worker.wheel.borrow_mut().come_round(now, |connection| {
            if moving > 0 && connection.phase() == Phase::Open {
                moving -= 1;
                let reason = moves::close_reason();
                connection.close(now, CloseCode::TryAgainLater, reason, &worker.shared);
            } else {
                connection.visit(now, &worker.shared);
            }
        });
        worker.close_due(now);
        let Some(wakes_at) = worker.next_wake().filter(|_| !worker.wheel.borrow().is_empty())
        else {
            if let Drain::Closing(closes) = &mut *worker.drain.borrow_mut() {
                closes.clear();
            }
            worker.turning.set(false);
            return;
        };
        worker.wakes_at.set(wakes_at);
        let waiting_for_drain = !worker.closing();
        tokio::select! {
            () = tokio::time::sleep_until(wakes_at) => {}
            () = worker.joined_earlier.notified() => {}
            () = &mut closing, if waiting_for_drain => {}
        }
    }
}

#[cfg(test)]
mod tests {
    //! A connection's life on tokio's paused clock. The sockets are in-memory pipes
    //! (`tokio::io::duplex`), so nothing but the tests moves the clock: real sockets would
    //! let the runtime advance it while a read waits on the kernel.

    use std::{future::Future, time::Duration};

    use actix_http::ws::{Codec, Frame, Message};
    use bytes::BytesMut;
    use tokio::{
        io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream},
        task::LocalSet,
    };
    use tokio_util::codec::{Decoder as _, Encoder as _};
    use wstime_protocol::{ClientId, Tick};

    use super::*;
    use crate::{
        connection::{
            schedule::{Schedule, Timing},
            Admission, MAX_PARKED_BYTES, MAX_PINGS_PER_SECOND,
        },
        instance::tests::instance,
        session::{touches, Opened},
        tick_wheel::on_grid,
    };

    /// Room in each direction of a pipe, like a socket's kernel buffers.
    const PIPE_BYTES: usize = 64 * 1024;

    /// A worker's parts with these timers, for an instance called `test`.
    fn parts(ping_secs: u64, idle_secs: u64, drain_window: Duration) -> WorkerParts {
        let timing = Timing {
            ping_interval: Duration::from_secs(ping_secs),
            idle_timeout: Duration::from_secs(idle_secs),
            keep_alive: Duration::from_secs(60),
        };
        let instance = Arc::new(instance("test", 100));
        let connections = Settings {
            tick_prefix: wstime_protocol::tick::prefix(&instance.name).into(),
            timing,
            touches: touches::queue(100).0,
            metrics: Arc::default(),
        };
        let stagger = Arc::new(Stagger::new(1));
        WorkerParts { instance, connections, drain_window, moves: Arc::default(), stagger }
    }

    /// Runs `test` on a current-thread runtime whose clock moves only when every task
    /// waits for a timer (or when a test advances it).
    fn paused(test: impl Future<Output = ()>) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("a test runtime");
        runtime.block_on(LocalSet::new().run_until(test));
    }

    /// The client end of a connection, reading as a client does.
    struct Peer {
        stream: DuplexStream,
        codec: Codec,
        received: BytesMut,
        opened: Instant,
    }

    /// What a peer saw.
    #[derive(Debug, PartialEq)]
    enum Seen {
        Tick(u64),
        Ping,
        Pong(Vec<u8>),
        Close(u16),
        Ended,
    }

    impl Peer {
        /// The next frame (or the end of the stream), and when it came, since the open.
        async fn next(&mut self) -> (Seen, Duration) {
            loop {
                if let Some(frame) = self.codec.decode(&mut self.received).expect("a frame") {
                    let seen = match frame {
                        Frame::Text(text) => {
                            let text = std::str::from_utf8(&text).expect("UTF-8");
                            Seen::Tick(Tick::parse(text).expect("a tick").seconds)
                        }
                        Frame::Ping(_) => Seen::Ping,
                        Frame::Pong(payload) => Seen::Pong(payload.to_vec()),
                        Frame::Close(reason) => Seen::Close(reason.map_or(0, |r| r.code.into())),
                        other => panic!("unexpected {other:?}"),
                    };
                    return (seen, self.opened.elapsed());
                }
                if self.stream.read_buf(&mut self.received).await.unwrap_or(0) == 0 {
                    return (Seen::Ended, self.opened.elapsed());
                }
            }
        }

        async fn send(&mut self, message: Message) {
            let mut out = BytesMut::new();
            self.codec.encode(message, &mut out).expect("a client frame");
            self.stream.write_all(&out).await.expect("write to the server");
        }
    }

    /// Opens a connection for a new session on `worker`, over a pipe holding `pipe_bytes`.
    fn open_with(worker: &Rc<Worker<DuplexStream>>, id: &str, pipe_bytes: usize) -> Peer {
        let (server, client) = tokio::io::duplex(pipe_bytes);
        let instance = &worker.instance;
        let now = Instant::now();
        let timing = worker.shared.timing();
        let schedule = Schedule::new(Opened::at(Duration::ZERO), now, worker.epoch(), timing);
        let connection = Connection::new(
            server,
            ClientId::parse(id).expect("a valid id"),
            schedule,
            BytesMut::new(),
            Admission {
                slot: instance.capacity.admit().expect("a slot"),
                client: None,
                live: instance.lifecycle.connection(),
            },
        );
        worker.start(connection, b"");
        Peer {
            stream: client,
            codec: Codec::new().client_mode(),
            received: BytesMut::new(),
            opened: now,
        }
    }

    fn open(worker: &Rc<Worker<DuplexStream>>, id: &str) -> Peer {
        open_with(worker, id, PIPE_BYTES)
    }

    /// When the tick saying `count` is due on a connection opened at `opened`.
    fn tick_moment(worker: &Worker<DuplexStream>, opened: Instant, count: u64) -> Duration {
        on_grid(opened + Duration::from_secs(count), worker.epoch()) - opened
    }

    #[test]
    fn ticks_go_out_at_open_then_once_a_second_on_the_grid() {
        paused(async {
            let worker = Worker::new(&parts(10, 30, Duration::ZERO));
            tokio::time::sleep(Duration::from_millis(1234)).await;
            let mut peer = open(&worker, "cadence");
            assert_eq!(peer.next().await, (Seen::Tick(0), Duration::ZERO));
            for count in 1..=3 {
                let due = tick_moment(&worker, peer.opened, count);
                assert_eq!(peer.next().await, (Seen::Tick(count), due));
            }
        });
    }

    #[test]
    fn a_stalled_worker_sends_one_late_tick_then_keeps_the_moments() {
        paused(async {
            let worker = Worker::new(&parts(10, 30, Duration::ZERO));
            let mut peer = open(&worker, "stalled");
            assert_eq!(peer.next().await.0, Seen::Tick(0));
            assert_eq!(peer.next().await.0, Seen::Tick(1));
            // Everything on this thread stops for 3.25 s: ticks 2, 3 and 4 were due.
            tokio::time::advance(Duration::from_millis(3_250)).await;
            let stalled_until = peer.opened.elapsed();
            assert_eq!(peer.next().await, (Seen::Tick(2), stalled_until), "one tick, at once");
            let due = tick_moment(&worker, peer.opened, 5);
            assert_eq!(peer.next().await, (Seen::Tick(3), due), "then back on its moments");
        });
    }

    #[test]
    fn pings_go_out_with_ticks_and_a_silent_peer_is_closed_then_dropped() {
        paused(async {
            let worker = Worker::new(&parts(2, 5, Duration::ZERO));
            let mut silent = open(&worker, "silent");
            let mut lively = open(&worker, "lively");
            let lively_side = async {
                let mut seen = Vec::new();
                while lively.opened.elapsed() < Duration::from_secs(9) {
                    let (frame, _) = lively.next().await;
                    if frame == Seen::Ping {
                        lively.send(Message::Pong(Default::default())).await;
                    }
                    seen.push(frame);
                }
                seen
            };
            let silent_side = async {
                let mut seen = Vec::new();
                loop {
                    let (frame, at) = silent.next().await;
                    let ended = frame == Seen::Ended;
                    seen.push((frame, at.as_secs()));
                    if ended {
                        return seen;
                    }
                }
            };
            let (lively_seen, silent_seen) = tokio::join!(lively_side, silent_side);
            use Seen::*;
            assert_eq!(
                silent_seen,
                [
                    (Tick(0), 0),
                    (Tick(1), 1),
                    (Tick(2), 2),
                    (Ping, 2),
                    (Tick(3), 3),
                    (Tick(4), 4),
                    (Ping, 4),
                    (Tick(5), 5),
                    (Tick(6), 6),
                    (Close(1001), 6),
                    (Ended, 6),
                ],
                "pinged at 2 and 4 s; quiet for 5 s at the ping of 6 s, and dropped"
            );
            assert!(!lively_seen.iter().any(|frame| matches!(frame, Close(_) | Ended)));
            assert_eq!(lively_seen.iter().filter(|frame| **frame == Ping).count(), 4);
            assert_eq!(worker.instance.live_connections(), 1);
        });
    }

    #[test]
    fn the_drain_closes_each_socket_at_its_own_moment_in_the_window() {
        paused(async {
            let window = Duration::from_secs(2);
            let worker = Worker::new(&parts(10, 30, window));
            let mut peers: Vec<Peer> =
                (0..8).map(|i| open(&worker, &format!("drained-{i}"))).collect();
            tokio::time::sleep(Duration::from_millis(1_500)).await;
            let fired = Instant::now();
            worker.instance.lifecycle.advance(Stage::Closing);
            let closes = futures_util::future::join_all(peers.iter_mut().map(|peer| async move {
                let mut last_tick = 0;
                loop {
                    match peer.next().await {
                        (Seen::Tick(count), _) => last_tick = count,
                        (Seen::Close(code), at) => {
                            peer.send(Message::Close(None)).await;
                            assert_eq!(
                                peer.next().await,
                                (Seen::Ended, at),
                                "dropped when answered"
                            );
                            return (code, peer.opened + at - fired, last_tick);
                        }
                        other => panic!("{other:?}"),
                    }
                }
            }))
            .await;
            for (code, after, last_tick) in &closes {
                assert_eq!(*code, 1012);
                assert!(*after <= window, "closed within the window: {after:?}");
                // Opened 1.5 s before the drain: ticks 0 and 1, then one a second.
                let ticked = 1 + (after.as_millis() + 500) as u64 / 1000;
                assert_eq!(*last_tick, ticked, "ticked until its close, {after:?} in");
            }
            let mut moments: Vec<_> = closes.iter().map(|(_, after, _)| *after).collect();
            moments.sort_unstable();
            moments.dedup();
            assert!(moments.len() > 1, "spread, not all at once: {moments:?}");
            assert_eq!(worker.instance.live_connections(), 0);
        });
    }

    #[test]
    fn a_reads_pings_get_one_pong_and_a_seconds_flood_of_them_a_1008() {
        paused(async {
            let worker = Worker::new(&parts(10, 30, Duration::ZERO));
            let mut peer = open(&worker, "pinger");
            assert_eq!(peer.next().await.0, Seen::Tick(0));
            let pings = |count: u8| {
                let mut codec = Codec::new().client_mode();
                let mut bytes = BytesMut::new();
                for i in 0..count {
                    let payload = bytes::Bytes::from(vec![i]);
                    codec.encode(Message::Ping(payload), &mut bytes).expect("a ping");
                }
                bytes
            };
            // Fifteen pings in one write: one pong, for the last.
            peer.stream.write_all(&pings(15)).await.expect("write the pings");
            assert_eq!(peer.next().await.0, Seen::Pong(vec![14]));
            // Fifteen more the next second: within its own second's allowance.
            assert_eq!(peer.next().await.0, Seen::Tick(1));
            peer.stream.write_all(&pings(15)).await.expect("write the pings");
            assert_eq!(peer.next().await.0, Seen::Pong(vec![14]));
            // The second after, more than MAX_PINGS_PER_SECOND: closed with 1008.
            assert_eq!(peer.next().await.0, Seen::Tick(2));
            let flood = u8::try_from(MAX_PINGS_PER_SECOND).unwrap() + 1;
            peer.stream.write_all(&pings(flood)).await.expect("write the flood");
            assert_eq!(peer.next().await.0, Seen::Close(1008));
        });
    }

    #[test]
    fn a_peer_that_never_reads_is_dropped_once_its_parked_bytes_pass_the_cap() {
        paused(async {
            let worker = Worker::new(&parts(10, 30, Duration::ZERO));
            // Room for 1 KiB in the pipe, like a full socket buffer.
            let mut peer = open_with(&worker, "deaf", 1024);
            // It never reads, but it sends a pong every 5 s, so it is never idle. (Masked,
            // empty: as a client sends it; the last one finds the pipe gone.)
            let mut seconds = 0;
            while worker.instance.live_connections() == 1 && seconds < 3_600 {
                tokio::time::sleep(Duration::from_secs(5)).await;
                seconds += 5;
                let _ = peer.stream.write_all(&[0x8a, 0x80, 0, 0, 0, 0]).await;
            }
            assert_eq!(worker.instance.live_connections(), 0, "dropped within an hour of ticks");
            // A tick of this server is 45 to 47 bytes: the pipe and the cap held that many.
            let ticks_held = (1024 + MAX_PARKED_BYTES) / 47;
            assert!(
                (ticks_held..ticks_held + 30).contains(&seconds),
                "dropped after {seconds} s, once about {ticks_held} ticks were held"
            );
        });
    }
}
