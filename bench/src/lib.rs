//! wstime's benchmarks: a load generator of its own and the driver that runs it against a
//! release server (steady load) and the local cluster (failover), with the post's Node
//! server measured beside wstime and an independent Node client beside the load generator.
//!
//! - [`stats`]: percentiles over samples.
//! - [`lateness`]: how late each tick is, by interval and by schedule.
//! - [`proc`]: a process's resident memory and CPU time, from `/proc`.
//! - [`generators`]: running client processes and reading what they report.
//! - [`results`]: what a load generator reports, shared by both binaries.
//! - [`node`]: finding Node.js and installing the Node parts' locked dependencies.
//! - [`machine`]: where and when a run happened.
//! - [`servers`]: the servers measured, wstime and the post's Node server.
//! - [`clients`]: the clients holding the connections, the load generator and the Node one.
//! - [`setup`]: what the experiments start, as the command line gave it.
//! - [`cluster`]: the failover and scale-out runs' cluster, behind HAProxy with Redis.
//! - [`steady`]: steady load, one server holding connections, measured over a window.
//! - [`metrics_cost`]: the tick's cost with and without the per-tick metrics.
//! - [`syscalls`]: a tick's write calls, counted under `strace -f`.
//! - [`failover`]: one instance of the cluster lost, by SIGKILL and by SIGTERM.
//! - [`scale_out`]: three instances, clients on two, then the third starts: rebalancing.
//! - [`report`]: the rows measured, kept as `results.json` and written as a Markdown summary
//!   and SVG charts.

pub mod clients;
pub mod cluster;
pub mod failover;
pub mod generators;
pub mod lateness;
pub mod machine;
pub mod metrics_cost;
pub mod node;
pub mod proc;
pub mod report;
pub mod results;
pub mod scale_out;
pub mod servers;
pub mod setup;
pub mod stats;
pub mod steady;
pub mod syscalls;
