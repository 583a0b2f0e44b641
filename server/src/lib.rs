//! wstime-server: the post's WebSocket tick server, built to run as many instances behind a
//! load balancer.
//!
//! The crate's parts:
//! - [`capacity`]: load, the health check's hysteresis and the connection limit.
//! - [`config`]: every setting, as a flag and an environment variable.
//! - [`startup`]: binds the port and wires the actix-web app; `main` only parses and calls it.
//! - [`routes`]: the page (static files) and the health check, on the same port as
//!   WebSockets.
//! - [`upgrade`]: where a WebSocket upgrade is checked, refused or accepted.
//! - [`connection`]: one WebSocket after its `101`: the socket, its timetable, and the
//!   task that reads what the client sends.
//! - [`worker`]: one worker thread's connections: the tick wheel that writes their ticks,
//!   the buffers they share, its part of the drain.
//! - [`session`]: where sessions live (memory, or Redis shared by every instance), so a
//!   reconnect anywhere continues the count.
//! - [`state`]: what every request handler shares (the server's name, live connections,
//!   the drain and shutdown signals).
//! - [`shutdown`]: the graceful drain that SIGTERM/SIGINT start.
//! - [`tick_wheel`]: where each connection waits for its next tick, instead of a timer per
//!   socket.
//! - [`trigger`]: the switch that tells every connection the drain's closing phase began.

pub mod capacity;
pub mod config;
pub mod connection;
pub mod routes;
pub mod session;
pub mod shutdown;
pub mod startup;
pub mod state;
pub mod tick_wheel;
pub mod trigger;
pub mod upgrade;
pub mod worker;

pub use config::Config;
pub use startup::{Application, StartupError};
