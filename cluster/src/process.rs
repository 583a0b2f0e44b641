//! A supervised child process: its output captured, signalled and reaped by PID, and killed
//! when dropped, so neither a test nor `make cluster` leaves anything running.

use std::{
    collections::VecDeque,
    io::{BufRead, BufReader, Read},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _};

/// Lines of output kept per process (older ones are dropped).
const KEPT_LINES: usize = 20_000;

/// How long, once the process has exited, its output may take to be read to the end. Bounded
/// because something the process started may still hold its pipes open.
const OUTPUT_AFTER_EXIT: Duration = Duration::from_secs(2);

/// A running child process.
pub struct Supervised {
    child: Child,
    label: String,
    lines: Arc<Mutex<VecDeque<String>>>,
    /// The threads reading stdout and stderr; finished once both pipes are at their end.
    readers: Vec<JoinHandle<()>>,
}

impl Supervised {
    /// Starts `command` with stdout and stderr captured. With `echo`, every line is also
    /// printed to stderr prefixed with `[label]`, for a person watching `make cluster`.
    pub fn spawn(label: &str, command: &mut Command, echo: bool) -> anyhow::Result<Self> {
        use std::os::unix::process::CommandExt as _;
        let mut child = command
            // Its own process group, so that whatever it starts (chromedriver starts
            // Chromium) is stopped with it, and a Ctrl-C meant for us does not reach it.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {label} ({:?})", command.get_program()))?;
        let lines = Arc::new(Mutex::new(VecDeque::new()));
        let pipes: [Box<dyn Read + Send>; 2] = [
            Box::new(child.stdout.take().context("stdout is piped")?),
            Box::new(child.stderr.take().context("stderr is piped")?),
        ];
        // Both pipes are drained for the life of the process, so it never blocks writing.
        let mut readers = Vec::new();
        for pipe in pipes {
            let lines = Arc::clone(&lines);
            let label = label.to_owned();
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if echo {
                        eprintln!("[{label}] {line}");
                    }
                    let mut lines = lines.lock().unwrap_or_else(|e| e.into_inner());
                    if lines.len() == KEPT_LINES {
                        lines.pop_front();
                    }
                    lines.push_back(line);
                }
            }));
        }
        Ok(Self { child, label: label.to_owned(), lines, readers })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The captured output so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect()
    }

    /// Waits up to `limit` for an output line containing `needle`, and returns it.
    pub fn wait_for_line(&mut self, needle: &str, limit: Duration) -> anyhow::Result<String> {
        let what = format!("printing {needle:?}");
        self.wait_for_line_where(&what, |line| line.contains(needle), limit)
    }

    /// Waits up to `limit` for an output line that `matches`, and returns it. `what` names
    /// the line in the error. Output reaches us through a reader thread, so a line the
    /// process has already written may not be captured yet: wait for it, never look once.
    pub fn wait_for_line_where(
        &mut self,
        what: &str,
        matches: impl Fn(&str) -> bool,
        limit: Duration,
    ) -> anyhow::Result<String> {
        let lines = Arc::clone(&self.lines);
        let find = move || {
            let lines = lines.lock().unwrap_or_else(|e| e.into_inner());
            Ok(lines.iter().find(|line| matches(line)).cloned())
        };
        self.wait_for(what, limit, find)
    }

    /// How many output lines so far contain `needle`.
    pub fn count_lines(&self, needle: &str) -> usize {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        lines.iter().filter(|line| line.contains(needle)).count()
    }

    /// Waits up to `limit` until `count` output lines contain `needle`: for a line a process
    /// prints again each time it does something (dnsmasq re-reading its records).
    pub fn wait_for_count(
        &mut self,
        needle: &str,
        count: usize,
        limit: Duration,
    ) -> anyhow::Result<()> {
        let lines = Arc::clone(&self.lines);
        let what = format!("{count} lines with {needle:?}");
        let needle = needle.to_owned();
        self.wait_for(&what, limit, move || {
            let lines = lines.lock().unwrap_or_else(|e| e.into_inner());
            Ok((lines.iter().filter(|line| line.contains(&needle)).count() >= count).then_some(()))
        })
    }

    /// Waits up to `limit` for `check` to find what it looks for (`what`, in the error),
    /// failing early, with the process's output, if the process exits first.
    pub fn wait_for<T>(
        &mut self,
        what: &str,
        limit: Duration,
        mut check: impl FnMut() -> anyhow::Result<Option<T>>,
    ) -> anyhow::Result<T> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(found) = check()? {
                return Ok(found);
            }
            if let Some(status) = self.child.try_wait()? {
                // Its last lines may still be in the pipes: a process that printed the line
                // and exited at once must not be reported as one that never printed it.
                self.wait_for_output_end(OUTPUT_AFTER_EXIT);
                if let Some(found) = check()? {
                    return Ok(found);
                }
                bail!(
                    "{} exited ({status}) before {what}:\n{}",
                    self.label,
                    self.lines().join("\n")
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "no {what} from {} within {limit:?}:\n{}",
                    self.label,
                    self.lines().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits up to `limit` for the output to have been read to its end.
    fn wait_for_output_end(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.readers.iter().all(JoinHandle::is_finished) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `signal` (`KILL`, `TERM`, `INT`, `STOP`, `CONT`, `HUP`) to the process, and
    /// only to it: never once it has been reaped (its pid may be another process's by then).
    pub fn signal(&mut self, signal: &str) -> anyhow::Result<()> {
        let Some(pid) = self.own_pid() else {
            bail!("{} has already exited", self.label);
        };
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .context("cannot run kill")?;
        if !status.success() {
            bail!("kill -{signal} {pid} ({}) failed", self.label);
        }
        Ok(())
    }

    /// The child's pid while it is still ours to signal: running, or exited but not yet
    /// reaped. Never 0 or 1, which `kill` would read as "my own group" or "init".
    fn own_pid(&mut self) -> Option<u32> {
        match self.child.try_wait() {
            Ok(None) => Some(self.child.id()).filter(|&pid| pid > 1),
            _ => None,
        }
    }

    /// The exit status, if the process has ended.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits up to `limit` for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                bail!("{} still running after {limit:?}", self.label);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        if let Some(pid) = self.own_pid() {
            // The whole group the child leads (it was started as a group leader): the
            // process and anything it started.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stderr(Stdio::null())
                .status();
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Asks `look` every 200 ms until it says ready (`Ok`), and fails after `limit` with what
/// it said last, for processes that start at once but take a while to find each other.
pub fn poll_until<T: std::fmt::Debug>(
    what: &str,
    limit: Duration,
    mut look: impl FnMut() -> Result<(), T>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        match look() {
            Ok(()) => return Ok(()),
            Err(seen) if Instant::now() >= deadline => {
                bail!("{what} did not happen within {limit:?}; last seen: {seen:?}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("no free loopback port")?;
    Ok(listener.local_addr()?.port())
}

/// A TCP port that was free a moment ago on every one of `hosts`: for instances that share
/// a port, each on a loopback address of its own. The system picks a port free on the first;
/// one another process holds on any other (on 0.0.0.0, say) is passed over.
pub fn free_port_on_each(hosts: &[std::net::IpAddr]) -> anyhow::Result<u16> {
    use std::net::TcpListener;
    let first = *hosts.first().context("no address to find a port on")?;
    for _ in 0..20 {
        let port = TcpListener::bind((first, 0)).context("no free port")?.local_addr()?.port();
        if hosts.iter().all(|&host| TcpListener::bind((host, port)).is_ok()) {
            return Ok(port);
        }
    }
    bail!("no port free on every one of {hosts:?} in 20 tries")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_free_on_each_address_can_be_bound_on_each() {
        let hosts: Vec<std::net::IpAddr> =
            (11..14).map(|last| std::net::Ipv4Addr::new(127, 0, 0, last).into()).collect();
        let port = free_port_on_each(&hosts).unwrap();
        let listeners: Vec<_> =
            hosts.iter().map(|&host| std::net::TcpListener::bind((host, port))).collect();
        assert!(listeners.iter().all(Result::is_ok), "{listeners:?}");
    }

    #[test]
    fn a_process_that_has_been_reaped_is_never_signalled() {
        let mut process = Supervised::spawn("brief", &mut Command::new("true"), false).unwrap();
        process.wait_exit(Duration::from_secs(10)).unwrap();
        // Its pid is free for any other process now: signalling it must be refused.
        let refused = process.signal("KILL").unwrap_err().to_string();
        assert!(refused.contains("already exited"), "{refused}");
    }

    #[test]
    fn a_line_printed_just_before_exiting_is_found() {
        // Enough output before the line that the reader is still busy when the process has
        // already exited: the pipe holds the last 64 KiB of it.
        let mut command = Command::new("sh");
        command.args(["-c", "seq 1 100000; echo last-words"]);
        let mut process = Supervised::spawn("talker", &mut command, false).unwrap();
        // The moment it has exited, not a polling interval later.
        while process.try_wait().is_none() {
            std::hint::spin_loop();
        }
        let line = process.wait_for_line("last-words", Duration::from_secs(10));
        assert_eq!(line.unwrap(), "last-words");
    }
}
