//! wstime-server: the post's WebSocket tick server, built to run as many instances behind a
//! load balancer.
//!
//! The crate's parts, from the edge down; a module imports only from the layers below it
//! (`cargo modules dependencies --lib -p wstime-server --acyclic` checks that there is no
//! circle):
//!
//! The edge (owns [`state::AppState`], the bundle of handles):
//! - [`config`]: every setting, as a flag and an environment variable.
//! - [`startup`]: binds the port, wires the parts, runs until a signal and waits for
//!   everything it started; `main` only parses and calls it.
//! - [`listener`]: the app port's socket, its listen backlog deep enough for a reconnect
//!   herd.
//! - [`state`]: the handles the routes and the upgrade share.
//! - [`transport`]: how a TCP connection becomes an HTTP one (client address, its share of
//!   the connections in HTTP, TLS).
//! - [`tls_stream`]: TLS over a socket that keeps no buffer while the socket is idle.
//! - [`routes`]: the page (static files), the health check, `/metrics` and `/cluster`, on
//!   the same port as WebSockets.
//! - [`upgrade`]: where a WebSocket upgrade is checked, refused or accepted.
//! - [`agent`]: HAProxy's agent check: the instance's headroom as a weight.
//!
//! Services (each takes the few handles it needs):
//! - [`registry`]: keeps this instance in the cluster's registry in Redis, and the view of
//!   the cluster fresh.
//! - [`rebalance`]: after a scale-out, the fuller instances move sockets to the emptier.
//! - [`shutdown`]: the signals, and the graceful drain they start, told step by step.
//!
//! Per connection:
//! - [`worker`]: one worker thread's connections: the tick wheel that writes their ticks,
//!   each connection's task, its part of the drain and of rebalancing.
//! - [`connection`]: one WebSocket after its `101`: the socket, its timetable, its frames,
//!   and what it shares with the others on its worker.
//!
//! State:
//! - [`instance`]: this instance: name, address, start, lifecycle, capacity; its health and
//!   its registry entry.
//! - [`cluster`]: the cluster as the registry last showed it.
//! - [`lifecycle`]: where the instance is in its life (serving, draining, closing, …), the
//!   one value every part watches, and its live connections.
//! - [`capacity`]: load, the health check's hysteresis and the connection limit.
//! - [`client_limits`]: what one client address may hold and how fast it may connect.
//! - [`log_id`]: a client id as logs show it (a short hash: an id is a bearer token).
//! - [`log_throttle`]: a line that a flood could repeat, written once a minute at most.
//! - [`client_addr`]: the client's real address, from trusted proxies (PROXY protocol v2,
//!   `X-Forwarded-For`) or the socket.
//! - [`metrics`]: what `/metrics` counts and reads.
//! - [`traffic`]: each worker's ticks and bytes, counted without locks.
//! - [`session`]: where sessions live (memory, or Redis shared by every instance), so a
//!   reconnect anywhere continues the count.
//! - [`tick_wheel`]: where each connection waits for its next tick, instead of a timer per
//!   socket.
//!
//! Clients:
//! - [`redis`]: the Redis connection the session store and the registry share: `REDIS_URL`'s
//!   forms, TLS, Sentinel, a Redis Cluster, and the start-up access check.
//! - The wire contract lives in the `wstime-protocol` crate, shared with the page, the
//!   cluster tool and the load generator.

pub mod agent;
pub mod capacity;
pub mod client_addr;
pub mod client_limits;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod instance;
pub mod lifecycle;
pub mod listener;
pub mod log_id;
pub mod log_throttle;
pub mod metrics;
pub mod rebalance;
pub mod redis;
pub mod registry;
pub mod routes;
pub mod session;
pub mod shutdown;
pub mod startup;
pub mod state;
pub mod tick_wheel;
pub mod tls_stream;
pub mod traffic;
pub mod transport;
pub mod upgrade;
pub mod worker;

pub use config::Config;
pub use startup::{Application, StartupError};
