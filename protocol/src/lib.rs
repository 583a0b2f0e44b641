//! The wire contract between wstime's server, its page and its load generator.
//!
//! Both ends of a connection compile this crate, so the tick text, the client-id rules,
//! the close codes and the retry schedule cannot drift apart:
//! - [`client_id`]: what a `?id=` may contain, and why it was refused.
//! - [`tick`]: the exact text of a tick, and how a client reads one back.
//! - [`close`]: the close codes the server sends and what each asks of the client.
//! - [`retry`]: the client's reconnect schedule (exponential backoff with full jitter).
//! - [`cluster`]: the `/cluster` answer (the live instances), read by the page and the
//!   cluster tool.

pub mod client_id;
pub mod close;
pub mod cluster;
pub mod retry;
pub mod tick;

pub use client_id::{ClientId, InvalidClientId};
pub use close::CloseCode;
pub use cluster::{ClusterView, Health, InstanceEntry};
pub use retry::{Disconnect, Next, RetryPolicy};
pub use tick::Tick;
