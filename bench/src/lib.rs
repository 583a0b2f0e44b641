//! wstime's benchmarks: a load generator of its own and the driver that runs it against a
//! release server (steady load) and the local cluster (failover).
//!
//! - [`stats`]: percentiles over samples.
//! - [`lateness`]: how late each tick is, by interval and by schedule.
//! - [`proc`]: a process's resident memory and CPU time, from `/proc`.
//! - [`results`]: what a load generator reports, shared by both binaries.
//! - [`report`]: the Markdown summary and the SVG charts.

pub mod lateness;
pub mod proc;
pub mod report;
pub mod results;
pub mod stats;
