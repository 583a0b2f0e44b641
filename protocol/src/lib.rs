//! The contracts between wstime's server, its page, its load generator and its cluster tool.
//!
//! Both ends of a connection compile this crate, so the tick text, the client-id rules,
//! the close codes and the retry schedule cannot drift apart:
//! - [`client_id`]: what a `?id=` may contain, and why it was refused.
//! - [`tick`]: the exact text of a tick, and how a client reads one back.
//! - [`close`]: the close codes the server sends and what each asks of the client.
//! - [`retry`]: the client's reconnect schedule (exponential backoff with full jitter) and
//!   timeouts.
//! - [`cluster`]: the `/cluster` answer (the live instances), read by the page and the
//!   cluster tool.
//! - [`health`]: the `/healthcheck` answer, and its JSON report, read by the cluster tool.
//! - [`ready`]: the file an instance writes once it listens, read by whoever started it.

pub mod client_id;
pub mod close;
pub mod cluster;
pub mod health;
pub mod ready;
pub mod retry;
pub mod tick;

pub use client_id::{ClientId, InvalidClientId};
pub use close::CloseCode;
pub use cluster::{ClusterView, InstanceEntry};
pub use health::{Health, HealthReport};
pub use retry::{Disconnect, Next, RetryPolicy};
pub use tick::Tick;
