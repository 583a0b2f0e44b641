//! What a tick costs in system calls: the server's write calls under `strace -f`, counted
//! by what they wrote to, and the ticks in the bytes written; and when the server sent its
//! ticks (strace's timestamps): how many left in the same millisecond as each.

use std::{process::Command, time::Duration};

use anyhow::{bail, Context as _};

use crate::{
    generators, report::SyscallRow, results::SteadyResult, servers::Server, setup::Setup,
    stats::Summary,
};

/// What to run.
pub struct Syscalls {
    /// Connections held while the server is traced.
    pub connections: usize,
}

impl Syscalls {
    /// Counts the server's write calls per tick under `strace -f` in a steady window, by what
    /// they wrote to: only writes to TCP sockets are a tick's cost (the event loop's own
    /// wake-ups write to an eventfd).
    pub fn run(&self, setup: &Setup) -> anyhow::Result<SyscallRow> {
        let connections = self.connections;
        let instance = Server::Wstime(setup.wstime()).start()?;
        let url = format!("ws://127.0.0.1:{}/", instance.port);
        let loadgen = setup.loadgen();
        let flags = ["--warmup-secs", "0", "--hold-secs", "8"];
        let (mut processes, _) = generators::start(&loadgen, &url, connections, "strace", &flags)?;
        // Attach once every socket is open, so only steady-state ticks are counted.
        std::thread::sleep(Duration::from_secs(1));
        let trace = std::env::temp_dir().join(format!("wstime-strace-{}.txt", std::process::id()));
        let window = 5;
        let status = Command::new("timeout")
            // `-s 256`: each write's bytes in full, so the ticks in it can be counted.
            .args(["-s", "INT", &window.to_string(), "strace", "-f", "-ttt", "-yy", "-qq"])
            .args(["-s", "256"])
            .args(["-e", "trace=write,writev,sendto,sendmsg", "-e", "signal=none", "-o"])
            .arg(&trace)
            .args(["-p", &instance.process.pid().to_string()])
            .status()
            .context("run strace (make bench installs it)")?;
        if status.code() != Some(124) && !status.success() {
            bail!("strace failed: {status}");
        }
        for process in &mut processes {
            let _: SteadyResult = generators::result(process, Duration::from_secs(30))?;
        }
        let text = std::fs::read_to_string(&trace)?;
        let _ = std::fs::remove_file(&trace);
        let mut counts = std::collections::BTreeMap::<String, u64>::new();
        let mut ticks = 0;
        // Ticks sent per millisecond (strace's clock), to see how they bunch.
        let mut per_millisecond = std::collections::HashMap::<u64, u64>::new();
        let mut sent_at = Vec::new();
        for call in text.lines().filter_map(write_call) {
            if call.name.ends_with(" TCP") && call.ticks > 0 {
                ticks += call.ticks;
                let millisecond = (call.at * 1000.0) as u64;
                *per_millisecond.entry(millisecond).or_default() += call.ticks;
                sent_at.extend(std::iter::repeat_n(millisecond, call.ticks as usize));
            }
            *counts.entry(call.name).or_default() += 1;
        }
        let crowding = Summary::of(sent_at.iter().map(|at| per_millisecond[at] as f64).collect());
        let socket_writes =
            counts.iter().filter(|(k, _)| k.ends_with(" TCP")).map(|(_, c)| c).sum();
        eprintln!("wstime-bench: {socket_writes} socket writes for {ticks} ticks");
        Ok(SyscallRow {
            connections,
            ticks,
            socket_writes,
            write_calls: counts.into_iter().collect(),
            crowding,
        })
    }
}

/// One write-family call in a `strace -f -ttt -yy -s 256` trace.
#[derive(Debug, PartialEq)]
struct WriteCall {
    /// When it was made (seconds since the epoch).
    at: f64,
    /// The call and what it wrote to: `sendto TCP`, `write eventfd`.
    name: String,
    /// Tick frames among the bytes written. Counted in the bytes rather than estimated from
    /// time, because ticks are not spread evenly over a second: sockets opened together
    /// tick together.
    ticks: u64,
}

/// The call in a line such as
/// `7 1765100000.123456 sendto(25<TCP:[127.0.0.1:80->127.0.0.2:5000]>, "...", ...`;
/// `None` for the second half of an interrupted call.
fn write_call(line: &str) -> Option<WriteCall> {
    // strace pads the thread id to a common width.
    let (_pid, call) = line.trim_start().split_once(' ')?;
    let (at, call) = call.trim_start().split_once(' ')?;
    let (name, args) = call.trim_start().split_once('(')?;
    let (_, target) = args.split_once('<')?;
    let target = target.split(['>', ':']).next()?;
    let target = if target.starts_with("anon_inode") {
        args.split_once("[")?.1.split(']').next()?
    } else {
        target.trim_end_matches("v6")
    };
    Some(WriteCall {
        at: at.parse().ok()?,
        name: format!("{} {target}", name.trim()),
        ticks: args.matches(wstime_protocol::tick::MIDDLE).count() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::{write_call, WriteCall};

    #[test]
    fn strace_lines_say_which_call_wrote_how_many_ticks_to_what() {
        let tick = "\\201%idle: you have been connected for 3 seconds";
        let lines = [
            format!("26667 1.000100 sendto(25<TCP:[127.0.0.1:8080->127.0.0.2:5000]>, \"{tick}\", 39, 0, NULL, 0) = 39"),
            format!("27338  1.000200 sendto(9<TCPv6:[::1:8080->::1:5000]>, \"{tick}\\211\\0\", 41, 0, NULL, 0) = 41"),
            "26667 1.000300 write(18<anon_inode:[eventfd]>, \"\\1\\0\\0\\0\\0\\0\\0\\0\", 8 <unfinished ...>".into(),
            "26667 1.000400 <... write resumed>) = 8".into(),
            "27338 1.000500 write(2<pipe:[81234]>, \"log line\\n\", 9) = 9".into(),
        ];
        let calls: Vec<_> = lines.iter().map(|line| write_call(line)).collect();
        let call = |at, name: &str, ticks| Some(WriteCall { at, name: name.into(), ticks });
        assert_eq!(
            calls,
            [
                call(1.0001, "sendto TCP", 1),
                call(1.0002, "sendto TCP", 1),
                call(1.0003, "write eventfd", 0),
                None,
                call(1.0005, "write pipe", 0),
            ]
        );
    }
}
