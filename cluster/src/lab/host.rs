//! One host of the lab: a network namespace with one link to the lab's bridge and one
//! address, where processes run (`ip netns exec`) and where the test process can open
//! sockets of its own (a thread that enters the namespace).

use std::{
    net::{IpAddr, Ipv4Addr},
    path::Path,
    process::Command,
    time::Duration,
};

use anyhow::{bail, Context as _};

use super::{output, run, wait_until};

/// The host's side of its link.
pub const INTERFACE: &str = "eth0";

/// A host of a [`super::Lab`]: cheap to clone, and valid as long as the lab is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    name: String,
    namespace: String,
    address: Ipv4Addr,
    /// The lab side of its link, on the bridge (`h<n>`).
    bridge_port: String,
}

impl Host {
    pub(super) fn new(name: &str, namespace: &str, address: Ipv4Addr, index: usize) -> Self {
        Self {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            address,
            bridge_port: format!("h{index}"),
        }
    }

    /// Joins the (new, empty) namespace to `bridge` in `lab`: a veth pair made in the lab's
    /// namespace with its far end moved straight into the host's, so no link ever appears in
    /// the machine's own namespace.
    pub(super) fn wire(&self, lab: &str, bridge: &str) -> anyhow::Result<()> {
        let (ns, port) = (self.namespace.as_str(), self.bridge_port.as_str());
        let address = format!("{}/24", self.address);
        let steps: [&[&str]; 6] = [
            &[
                "-n", lab, "link", "add", port, "type", "veth", "peer", "name", INTERFACE, "netns",
                ns,
            ],
            &["-n", lab, "link", "set", port, "master", bridge, "up"],
            &["-n", ns, "link", "set", "lo", "up"],
            &["-n", ns, "addr", "add", &address, "dev", INTERFACE],
            &["-n", ns, "link", "set", INTERFACE, "up"],
            // Some programs (HAProxy's resolvers, Redis's replicas) want a default route to
            // exist; it leads only to the bridge, which leads nowhere else.
            &["-n", ns, "route", "add", "default", "dev", INTERFACE],
        ];
        for step in steps {
            run("ip", step, None)?;
        }
        Ok(())
    }

    /// Its name in the lab (`redis`, `node1`, …).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its network namespace's name, for `ip netns exec` or `ip -n`.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Its address, which every other host of the lab reaches it at.
    pub fn address(&self) -> Ipv4Addr {
        self.address
    }

    /// Its address, as an [`IpAddr`].
    pub fn ip(&self) -> IpAddr {
        self.address.into()
    }

    /// The lab side of its link, on the bridge: shaping it slows what the host receives.
    pub fn bridge_port(&self) -> &str {
        &self.bridge_port
    }

    /// A command that runs `program` in this host (`ip netns exec <ns> <program>`): give it
    /// arguments and environment as to any command, and supervise it with
    /// [`crate::process::Supervised`]. `ip` sets the namespace and then becomes the program,
    /// so the child's pid is the program's.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(ip_binary());
        command.args(["netns", "exec", &self.namespace]).arg(program);
        command
    }

    /// Runs `work` on a thread inside this host's namespace and returns what it returned:
    /// sockets it opens belong to this host for their whole life, wherever they are used
    /// afterwards (a listener handed back, a connection moved to another thread).
    pub fn enter<T: Send>(&self, work: impl FnOnce() -> T + Send) -> anyhow::Result<T> {
        let path = Path::new("/run/netns").join(&self.namespace);
        let file = std::fs::File::open(&path)
            .with_context(|| format!("the lab host {} ({})", self.name, path.display()))?;
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    use std::os::fd::AsRawFd as _;
                    // SAFETY: setns on a thread of our own with an open namespace file; it
                    // changes only this thread's network namespace, which ends with it.
                    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                        bail!("cannot enter {}: {}", self.name, std::io::Error::last_os_error());
                    }
                    Ok(work())
                })
                .join()
                .map_err(|_| anyhow::anyhow!("the thread inside {} panicked", self.name))?
        })
    }

    /// Runs `program` with `args` inside this host, to its end, and returns what it printed.
    pub fn run(&self, program: &str, args: &[&str]) -> anyhow::Result<String> {
        let mut full = vec!["netns", "exec", self.namespace.as_str(), program];
        full.extend_from_slice(args);
        output("ip", &full)
    }

    /// The ids of the processes running in this host.
    pub fn processes(&self) -> anyhow::Result<Vec<u32>> {
        processes_in(&self.namespace)
    }
}

/// The ids of the processes running in the network namespace `namespace`.
fn processes_in(namespace: &str) -> anyhow::Result<Vec<u32>> {
    let listed = output("ip", &["netns", "pids", namespace])?;
    Ok(listed.split_whitespace().filter_map(|pid| pid.parse().ok()).collect())
}

/// Kills every process in the network namespace `namespace`, by pid, and waits up to
/// `limit` until none is left.
pub(super) fn kill_processes_in(namespace: &str, limit: Duration) -> anyhow::Result<()> {
    let own = std::process::id();
    for pid in processes_in(namespace)?.into_iter().filter(|&pid| pid != own) {
        // A process that exits meanwhile is what we wanted: the result is not needed.
        let _ = run("kill", &["-KILL", &pid.to_string()], None);
    }
    let gone = wait_until(limit, || {
        processes_in(namespace).is_ok_and(|pids| pids.iter().all(|&pid| pid == own))
    });
    if !gone {
        bail!("processes still running in {namespace} after {limit:?}");
    }
    Ok(())
}

/// Where `ip` is: commands that clear their environment (an instance's) lose `PATH`.
fn ip_binary() -> &'static str {
    ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .into_iter()
        .find(|path| Path::new(path).exists())
        .unwrap_or("ip")
}
