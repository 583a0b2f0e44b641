//! wstime-chaos: fault scenarios run in the lab ([`wstime_cluster::lab`]): wstime's parts on
//! hosts of their own, a fault made between them with nftables or tc, and the promise wstime
//! makes under that fault checked against what was measured.
//!
//! - [`scenarios`]: each scenario, a function of a [`Size`] returning its [`Outcome`].
//! - [`deployment`]: the lab's deployment: clients, HAProxy, three instances and Redis, each
//!   on a host of its own.
//! - [`clients`]: the load generator run in the clients' host, and a probe socket.
//! - [`probe`]: an instance's health report and metrics, read from another host.
//! - [`outcome`]: what a scenario measured, with its charts' data.
//! - [`report`]: `report.md`, `results.json` and the charts, from any list of outcomes.

pub mod clients;
pub mod deployment;
pub mod outcome;
pub mod probe;
pub mod report;
pub mod scenarios;

pub use outcome::{Chart, Outcome, Size};
