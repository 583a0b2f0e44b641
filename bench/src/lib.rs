//! wstime's benchmarks: a load generator of its own (`wstime-loadgen`) and the driver behind
//! `make bench` (`wstime-bench`), which runs the experiments below in order against release
//! builds (or only some of them, `--only`) and writes the report. Where the machine has Node, the post's Node server is
//! measured beside wstime and an independent Node client beside the load generator.
//!
//! The experiments, each taking a small struct of its own and the [`setup`]:
//! - [`steady`]: one server holding connections over a steady window: memory per connection,
//!   CPU per tick, tick lateness; at every size, with the independent client, over TLS.
//! - [`metrics_cost`]: the tick's cost with and without the per-tick metrics, in turn.
//! - [`syscalls`]: a tick's write calls, counted under `strace -f`.
//! - [`failover`]: the cluster loses an instance, by SIGKILL and then by SIGTERM.
//! - [`scale_out`]: three instances, clients on two, then the third starts: rebalancing.
//! - [`page`]: the page in Chromium, from navigation to the first tick shown, cold and
//!   warm, on a fast link and a slow one: wstime's page and the post's.
//! - [`herd`]: 15,000 clients drop at once and come back to the same server, at once or
//!   as the page does, while 1,000 others stay connected: how fast they are all back, and
//!   how late the others' ticks come meanwhile.
//!
//! What they start and read:
//! - [`setup`]: what the experiments start, as the command line gave it.
//! - [`servers`]: the servers measured, wstime and the post's Node server.
//! - [`clients`]: the clients holding the connections, the load generator and the Node one.
//! - [`node`]: finding Node.js, installing the Node parts' locked dependencies.
//! - [`browser`]: headless Chromium under chromedriver, and the DevTools commands it takes.
//! - [`cluster`]: the failover and scale-out runs' cluster, behind HAProxy with Redis.
//! - [`generators`]: running client processes and reading what they report.
//! - [`proc`]: a process's resident memory and CPU time, from `/proc`.
//! - [`machine`]: where and when a run happened.
//!
//! What they produce:
//! - [`results`]: what a load generator reports, shared by both binaries.
//! - [`lateness`]: how late each tick is, by interval and by schedule.
//! - [`stats`]: percentiles over samples.
//! - [`report`]: the rows measured, kept as `results.json` and written as a Markdown summary
//!   and SVG charts.

pub mod browser;
pub mod clients;
pub mod cluster;
pub mod failover;
pub mod generators;
pub mod herd;
pub mod lateness;
pub mod machine;
pub mod metrics_cost;
pub mod node;
pub mod page;
pub mod proc;
pub mod report;
pub mod results;
pub mod scale_out;
pub mod servers;
pub mod setup;
pub mod stats;
pub mod steady;
pub mod syscalls;
