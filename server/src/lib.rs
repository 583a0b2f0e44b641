//! wstime-server: the post's WebSocket tick server, built to run as many instances behind a
//! load balancer.
//!
//! The crate's parts:
//! - [`agent`]: HAProxy's agent check: the instance's headroom as a weight.
//! - [`capacity`]: load, the health check's hysteresis and the connection limit.
//! - [`client_addr`]: the client's real address, from trusted proxies (PROXY protocol v2,
//!   `X-Forwarded-For`) or the socket.
//! - [`config`]: every setting, as a flag and an environment variable.
//! - [`startup`]: binds the port and wires the actix-web app; `main` only parses and calls it.
//! - [`metrics`]: `GET /metrics`, counted without locks on the tick path.
//! - [`rebalance`]: after a scale-out, the fuller instances move sockets to the emptier.
//! - [`registry`]: the live instances of the cluster (in Redis, with a TTL), for
//!   `GET /cluster`.
//! - [`ready`]: the file that tells a supervisor the instance listens, and where.
//! - [`routes`]: the page (static files) and the health check, on the same port as
//!   WebSockets.
//! - [`transport`]: how a TCP connection becomes an HTTP one (client address, TLS).
//! - [`upgrade`]: where a WebSocket upgrade is checked, refused or accepted.
//! - [`connection`]: one WebSocket after its `101`: the socket, its timetable, and the
//!   task that reads what the client sends.
//! - [`worker`]: one worker thread's connections: the tick wheel that writes their ticks,
//!   the buffers they share, its part of the drain.
//! - [`session`]: where sessions live (memory, or Redis shared by every instance), so a
//!   reconnect anywhere continues the count.
//! - [`state`]: what every request handler and connection shares.
//! - [`lifecycle`]: where the instance is in its life (serving, draining, closing, …), the
//!   one value every part watches, and its live connections.
//! - [`shutdown`]: the signals, and the graceful drain they start, told step by step.
//! - [`tick_wheel`]: where each connection waits for its next tick, instead of a timer per
//!   socket.

pub mod agent;
pub mod capacity;
pub mod client_addr;
pub mod config;
pub mod connection;
pub mod lifecycle;
pub mod metrics;
pub mod ready;
pub mod rebalance;
pub mod registry;
pub mod routes;
pub mod session;
pub mod shutdown;
pub mod startup;
pub mod state;
pub mod tick_wheel;
pub mod transport;
pub mod upgrade;
pub mod worker;

pub use config::Config;
pub use startup::{Application, StartupError};
