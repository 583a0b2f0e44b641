//! Faults on a host's links, made with the kernel's own tools and undone when dropped:
//! nftables in the host's namespace for cuts (silent `drop`, loud `reject with tcp reset`) and
//! packet loss (`numgen random`), and a tc token bucket (`tbf`) for a slow link.
//!
//! There is no delay fault: this machine's kernel has no netem, and a proxy of our own that
//! delays packets would be a model of a network rather than one.

use std::{
    net::Ipv4Addr,
    sync::atomic::{AtomicUsize, Ordering},
};

use anyhow::bail;

use super::{host::INTERFACE, run, Host};

/// Tables this process has made: each fault has a table of its own, so faults on one host
/// come and go independently.
static TABLES_MADE: AtomicUsize = AtomicUsize::new(0);

/// Which of a host's packets a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// What the host receives: it can send, but hears nothing back.
    Inbound,
    /// What the host sends: it hears, but its answers are lost.
    Outbound,
    /// Both.
    Both,
}

impl Direction {
    fn inbound(self) -> bool {
        matches!(self, Self::Inbound | Self::Both)
    }

    fn outbound(self) -> bool {
        matches!(self, Self::Outbound | Self::Both)
    }
}

/// A fault in force on a host; dropping it (or [`Fault::heal`]) removes it.
#[derive(Debug)]
pub struct Fault {
    /// What it is, for messages (`node1 cut from redis (both ways, silent)`).
    description: String,
    /// The commands that undo it, as `ip` arguments (`ip -n <ns> nft …` / `tc …`).
    undo: Vec<Vec<String>>,
}

impl Fault {
    /// What this fault is.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Removes the fault now; the link is as it was before it.
    pub fn heal(mut self) -> anyhow::Result<()> {
        self.undo_all()
    }

    fn undo_all(&mut self) -> anyhow::Result<()> {
        for step in std::mem::take(&mut self.undo) {
            let args: Vec<&str> = step.iter().map(String::as_str).collect();
            run("ip", &args, None)?;
        }
        Ok(())
    }
}

impl Drop for Fault {
    fn drop(&mut self) {
        // A namespace already deleted (the lab torn down first) took the fault with it.
        let _ = self.undo_all();
    }
}

impl Host {
    /// Silently drops every packet between this host and `peer` in `direction`, as a
    /// network split does: no RST, no ICMP; connections hang until a timeout notices.
    pub fn cut(&self, peer: &Host, direction: Direction) -> anyhow::Result<Fault> {
        let what = format!("{} cut from {} ({direction:?}, silent)", self.name(), peer.name());
        self.filter(&what, peer.address(), direction, "drop")
    }

    /// Refuses every TCP packet between this host and `peer` in `direction` with a reset,
    /// as a firewall that rejects does: connections end at once.
    pub fn reject(&self, peer: &Host, direction: Direction) -> anyhow::Result<Fault> {
        let what = format!("{} rejected by {} ({direction:?}, loud)", self.name(), peer.name());
        self.filter(&what, peer.address(), direction, "meta l4proto tcp reject with tcp reset")
    }

    /// Drops `percent` % of the packets on this host's link, each way, at random.
    pub fn lose(&self, percent: u8) -> anyhow::Result<Fault> {
        if percent > 100 {
            bail!("a loss of {percent} % is not a percentage");
        }
        let what = format!("{} losing {percent} % of its packets", self.name());
        // nft's `numgen random mod 100` is 0 to 99: all of it is a plain drop.
        let verdict = match percent {
            100 => "drop".to_owned(),
            _ => format!("numgen random mod 100 < {percent} drop"),
        };
        let (table, script) = self.table(&[
            format!("chain input {{ type filter hook input priority 0; iifname \"{INTERFACE}\" {verdict}; }}"),
            format!("chain output {{ type filter hook output priority 0; oifname \"{INTERFACE}\" {verdict}; }}"),
        ]);
        self.install(what, &table, &script)
    }

    /// Slows this host's link to `bits_per_second` each way with a token bucket (tc `tbf`) on
    /// both ends of its link: its own side shapes what it sends, the bridge's side (in the
    /// lab's namespace `lab`) what it receives. Packets beyond the bucket's queue are dropped,
    /// as on a real slow link; none are delayed beyond what the rate makes them wait.
    pub fn slow(&self, lab: &super::Lab, bits_per_second: u64) -> anyhow::Result<Fault> {
        let rate = format!("{bits_per_second}bit");
        // The smallest bucket that still passes a full-size frame; the queue holds a few
        // seconds of traffic at the rate, as a modem's buffer does.
        let queue = (bits_per_second / 8 * 4).max(16_000).to_string();
        let ends = [(self.namespace(), INTERFACE), (lab.namespace(), self.bridge_port())];
        let mut fault = Fault {
            description: format!("{} on a {bits_per_second} bit/s link", self.name()),
            undo: Vec::new(),
        };
        for (namespace, device) in ends {
            let add = [
                "tc", "qdisc", "add", "dev", device, "root", "tbf", "rate", &rate, "burst", "1600",
                "limit", &queue,
            ];
            let mut args = vec!["netns", "exec", namespace];
            args.extend_from_slice(&add);
            run("ip", &args, None)?;
            fault.undo.push(
                ["netns", "exec", namespace, "tc", "qdisc", "del", "dev", device, "root"]
                    .map(str::to_owned)
                    .to_vec(),
            );
        }
        Ok(fault)
    }

    /// A filter fault: `verdict` for packets from `peer` (inbound) and to it (outbound).
    fn filter(
        &self,
        what: &str,
        peer: Ipv4Addr,
        direction: Direction,
        verdict: &str,
    ) -> anyhow::Result<Fault> {
        let mut chains = Vec::new();
        if direction.inbound() {
            chains.push(format!(
                "chain input {{ type filter hook input priority 0; ip saddr {peer} {verdict}; }}"
            ));
        }
        if direction.outbound() {
            chains.push(format!(
                "chain output {{ type filter hook output priority 0; ip daddr {peer} {verdict}; }}"
            ));
        }
        let (table, script) = self.table(&chains);
        self.install(what.to_owned(), &table, &script)
    }

    /// A new table's name and the nft script that makes it with `chains`.
    fn table(&self, chains: &[String]) -> (String, String) {
        let table = format!("wstime_lab_{}", TABLES_MADE.fetch_add(1, Ordering::Relaxed));
        let script = format!("table inet {table} {{\n{}\n}}\n", chains.join("\n"));
        (table, script)
    }

    /// Loads `script` into this host's nftables; the fault deletes `table` when it ends.
    fn install(&self, description: String, table: &str, script: &str) -> anyhow::Result<Fault> {
        run("ip", &["netns", "exec", self.namespace(), "nft", "-f", "-"], Some(script))?;
        let undo = ["netns", "exec", self.namespace(), "nft", "delete", "table", "inet", table]
            .map(str::to_owned)
            .to_vec();
        Ok(Fault { description, undo: vec![undo] })
    }
}
