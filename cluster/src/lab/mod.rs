//! The fault lab: real hosts on this machine, each a network namespace with an address of
//! its own, joined to one bridge, so tests and `make chaos` can cut, slow and thin the links
//! between wstime's parts with the kernel's own tools (see [`fault`]).
//!
//! A [`Lab`] is a namespace holding the bridge; each [`Host`] is a namespace joined to it by a
//! veth pair, with an address from 198.18.0.0/24 (RFC 2544's benchmarking range). Addresses
//! and routes exist only inside the lab's namespaces: the machine's own namespace gets
//! neither, so nothing the lab does can reach or disturb the rest of the machine.
//!
//! Namespaces are named `wsl<pid>x<n>` (the lab) and `wsl<pid>x<n>-<host>` (its hosts), with
//! the owning process's id: a lab whose process died without tearing down (a `kill -9`) is
//! found by its name and deleted by the next [`Lab::new`]. Dropping a `Lab` (a test that
//! panics included) kills every process in its hosts, then deletes the namespaces, which
//! takes their links, addresses, nftables tables and qdiscs with them.

pub mod fault;
pub mod host;

use std::{
    io::Write as _,
    net::Ipv4Addr,
    path::Path,
    process::{Command, Stdio},
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _};

pub use fault::{Direction, Fault};
pub use host::Host;

/// Every lab namespace's name starts with this, then the owning process's id.
const PREFIX: &str = "wsl";
/// The bridge in the lab's own namespace.
const BRIDGE: &str = "br0";
/// The first three octets of every host's address (RFC 2544's 198.18.0.0/15, its first /24).
const NETWORK: [u8; 3] = [198, 18, 0];
/// The programs the lab runs: iproute2's `ip` and `tc`, and `nft` (Debian's `nftables`).
const TOOLS: [(&str, &str); 3] = [("ip", "iproute2"), ("tc", "iproute2"), ("nft", "nftables")];
/// How long the processes in a host may take to be gone once killed.
const KILL_LIMIT: Duration = Duration::from_secs(5);

/// Labs this process has made, so that tests running in parallel get labs of their own.
static LABS_MADE: AtomicUsize = AtomicUsize::new(0);

/// A running lab: its bridge namespace and the hosts joined to it.
pub struct Lab {
    /// The namespace holding the bridge (`wsl<pid>x<n>`).
    namespace: String,
    /// The hosts made so far, in order (the n-th has address 198.18.0.<n+1>).
    hosts: Vec<Host>,
}

impl Lab {
    /// Makes an empty lab: its namespace and bridge. Refuses, with one line saying what to do,
    /// when not root or when `ip`, `tc` or `nft` is missing. Deletes first the namespaces of
    /// labs whose process has died.
    pub fn new() -> anyhow::Result<Self> {
        check_can_run()?;
        remove_orphans()?;
        let namespace =
            format!("{PREFIX}{}x{}", std::process::id(), LABS_MADE.fetch_add(1, Ordering::Relaxed));
        run("ip", &["netns", "add", &namespace], None)?;
        // From here on, a failure tears down what was made.
        let lab = Self { namespace, hosts: Vec::new() };
        let ns = lab.namespace.as_str();
        run("ip", &["-n", ns, "link", "set", "lo", "up"], None)?;
        run("ip", &["-n", ns, "link", "add", BRIDGE, "type", "bridge"], None)?;
        run("ip", &["-n", ns, "link", "set", BRIDGE, "up"], None)?;
        Ok(lab)
    }

    /// Adds a host called `name` (letters, digits and `-`): a namespace with `lo` up and an
    /// `eth0` joined to the bridge, holding the next free address of 198.18.0.0/24.
    pub fn add_host(&mut self, name: &str) -> anyhow::Result<Host> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            bail!("a lab host's name is letters, digits and '-', not {name:?}");
        }
        if self.hosts.iter().any(|host| host.name() == name) {
            bail!("the lab already has a host called {name:?}");
        }
        let index = self.hosts.len();
        let last = u8::try_from(index + 1)
            .ok()
            .filter(|&last| last < 255)
            .context("the lab has room for 254 hosts")?;
        let address = Ipv4Addr::new(NETWORK[0], NETWORK[1], NETWORK[2], last);
        let host = Host::new(name, &format!("{}-{name}", self.namespace), address, index);
        run("ip", &["netns", "add", host.namespace()], None)?;
        // Pushed before it is wired, so that a failure below still deletes its namespace.
        self.hosts.push(host.clone());
        host.wire(&self.namespace, BRIDGE)?;
        Ok(host)
    }

    /// The hosts made so far.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// The lab's own namespace (the bridge's), where a host's link can be shaped from the
    /// far side (see [`Host::slow`]).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Processes first: a namespace with a process in it would outlive its name.
        for host in &self.hosts {
            if let Err(error) = host::kill_processes_in(host.namespace(), KILL_LIMIT) {
                eprintln!("lab: {error:#}");
            }
        }
        for namespace in self.hosts.iter().map(Host::namespace).chain([self.namespace.as_str()]) {
            if let Err(error) = run("ip", &["netns", "delete", namespace], None) {
                eprintln!("lab: {error:#}");
            }
        }
    }
}

/// Refuses to start where the lab cannot run, naming what to do.
fn check_can_run() -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the fault lab makes network namespaces, which needs root: run it as root (sudo)");
    }
    for (tool, package) in TOOLS {
        let found = Command::new(tool)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !found {
            bail!("the fault lab needs `{tool}`: install Debian's {package} (`make packages`)");
        }
    }
    Ok(())
}

/// Deletes the namespaces of labs whose owning process is gone, found by their names alone,
/// and kills what still runs in them (an instance a killed test left behind).
fn remove_orphans() -> anyhow::Result<()> {
    let listed = output("ip", &["netns", "list"])?;
    for namespace in listed.lines().filter_map(|line| line.split_whitespace().next()) {
        if let Some(pid) = owner(namespace) {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                // Another lab starting at the same moment may be removing it too: only a
                // namespace that is still there afterwards is a failure.
                let _ = host::kill_processes_in(namespace, KILL_LIMIT);
                let _ = run("ip", &["netns", "delete", namespace], None);
                if Path::new("/run/netns").join(namespace).exists() {
                    bail!("cannot remove the abandoned lab namespace {namespace}");
                }
            }
        }
    }
    Ok(())
}

/// The id of the process that made the lab namespace `namespace`; `None` for any other name.
fn owner(namespace: &str) -> Option<u32> {
    let rest = namespace.strip_prefix(PREFIX)?;
    let (pid, after) = rest.split_once('x')?;
    let lab_number = after.split('-').next()?;
    if lab_number.is_empty() || !lab_number.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// Runs `program` with `args` (and `stdin` on its input), failing with its error output.
pub(crate) fn run(program: &str, args: &[&str], stdin: Option<&str>) -> anyhow::Result<()> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {program}"))?;
    if let Some(text) = stdin {
        let mut input = child.stdin.take().context("stdin is piped")?;
        input.write_all(text.as_bytes()).with_context(|| format!("writing to {program}"))?;
    }
    let done = child.wait_with_output().with_context(|| format!("waiting for {program}"))?;
    if !done.status.success() {
        bail!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&done.stderr).trim()
        );
    }
    Ok(())
}

/// Runs `program` with `args` and returns what it printed.
pub(crate) fn output(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let done = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {program}"))?;
    if !done.status.success() {
        bail!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&done.stderr).trim()
        );
    }
    String::from_utf8(done.stdout).with_context(|| format!("{program}'s output"))
}

/// Waits until `done` says yes, up to `limit`; says whether it did.
pub(crate) fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_lab_namespaces_have_an_owner() {
        assert_eq!(owner("wsl123x0"), Some(123));
        assert_eq!(owner("wsl123x4-redis"), Some(123));
        assert_eq!(owner("wslfoo"), None);
        assert_eq!(owner("wsl123"), None, "no lab number: not one of ours");
        assert_eq!(owner("other-ns"), None);
    }
}
