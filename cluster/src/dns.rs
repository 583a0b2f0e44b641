//! A real DNS server (Debian's dnsmasq) on a free loopback port that answers one name with
//! an A record for each instance it is told of, as a Kubernetes headless Service's name lists
//! its ready pods: what HAProxy running `deploy/haproxy-dns.cfg` resolves.
//!
//! The records live in a hosts file of its own (`--addn-hosts`), rewritten and re-read on
//! SIGHUP, so a record comes and goes while HAProxy runs, as a pod's does.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{bail, Context as _};

use crate::process::Supervised;

/// How long dnsmasq may take to start, or to re-read its records once signalled.
const READ_LIMIT: Duration = Duration::from_secs(10);

/// The hosts file's name in the server's directory.
const HOSTS: &str = "hosts";

/// A running dnsmasq.
pub struct DnsServer {
    /// Declared before `files`, so the process stops before its records are removed.
    pub process: Supervised,
    /// The port it answers on (UDP and TCP) on 127.0.0.1.
    pub port: u16,
    /// The one name it answers for.
    name: String,
    /// The addresses it answers with now.
    records: Vec<IpAddr>,
    /// The hosts file, and the directory it is in, removed with it.
    hosts: PathBuf,
    _files: tempfile::TempDir,
}

impl DnsServer {
    /// Starts dnsmasq on a free port of 127.0.0.1, answering `name` with `records`, and waits
    /// until it has read them. It answers that name (and any below it) from its records
    /// alone: NXDOMAIN when it has none, as a headless Service with no ready pod; any
    /// other name is refused (it has no upstream server).
    pub fn start(name: &str, records: &[IpAddr], echo: bool) -> anyhow::Result<Self> {
        let files = tempfile::tempdir().context("a directory for dnsmasq")?;
        let hosts = files.path().join(HOSTS);
        write_hosts(&hosts, name, records)?;
        let port = free_udp_and_tcp_port()?;
        let mut command = Command::new(program());
        command
            .arg("--keep-in-foreground")
            .arg("--log-facility=-")
            // Nothing of the machine's own: no configuration file, no /etc/hosts, no
            // upstream servers from /etc/resolv.conf, no pid file; no DHCP (none is asked).
            .arg("--conf-file=/dev/null")
            .arg("--no-hosts")
            .arg("--no-resolv")
            .arg("--pid-file=")
            .arg(format!("--port={port}"))
            .arg("--listen-address=127.0.0.1")
            .arg("--bind-interfaces")
            .arg(format!("--addn-hosts={}", hosts.display()))
            .arg(format!("--local=/{name}/"))
            // Started as root, dnsmasq becomes `nobody`, who cannot read a file in a private
            // temporary directory (the records, again on every SIGHUP): it stays who we are.
            .arg(format!("--user={}", user_name()?))
            .current_dir(files.path());
        let mut process = Supervised::spawn("dnsmasq", &mut command, echo)?;
        process.wait_for_count(&read_line(&hosts), 1, READ_LIMIT)?;
        let name = name.to_owned();
        Ok(Self { process, port, name, records: records.to_vec(), hosts, _files: files })
    }

    /// Where it answers: a `nameserver` for HAProxy (`WSTIME_DNS_SERVER`).
    pub fn address(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The name it answers for (`WSTIME_DNS_NAME`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The addresses it answers with now.
    pub fn records(&self) -> &[IpAddr] {
        &self.records
    }

    /// Answers with `records` from now on: rewrites the hosts file, has dnsmasq re-read it
    /// (SIGHUP) and waits until it has. A resolver that asks after this returns gets them.
    pub fn set_records(&mut self, records: &[IpAddr]) -> anyhow::Result<()> {
        let read = read_line(&self.hosts);
        let reads = self.process.count_lines(&read);
        write_hosts(&self.hosts, &self.name, records)?;
        self.process.signal("HUP")?;
        self.process.wait_for_count(&read, reads + 1, READ_LIMIT)?;
        self.records = records.to_vec();
        Ok(())
    }
}

/// What dnsmasq logs each time it has read `hosts` (`read /tmp/…/hosts - 2 names`).
fn read_line(hosts: &Path) -> String {
    format!("read {} - ", hosts.display())
}

/// Writes the hosts file: `name` at each of `records`, to a new file renamed over the old
/// one, so dnsmasq never reads half of it.
fn write_hosts(path: &Path, name: &str, records: &[IpAddr]) -> anyhow::Result<()> {
    let text: String = records.iter().map(|address| format!("{address} {name}\n")).collect();
    let fresh = path.with_extension("new");
    std::fs::write(&fresh, text).context("the DNS records")?;
    std::fs::rename(&fresh, path).context("the DNS records")?;
    Ok(())
}

/// dnsmasq from the PATH, or where Debian puts it (/usr/sbin is on root's PATH only).
fn program() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|dir| dir.join("dnsmasq").is_file()))
        .unwrap_or(false);
    if on_path {
        PathBuf::from("dnsmasq")
    } else {
        PathBuf::from("/usr/sbin/dnsmasq")
    }
}

/// The name of the user this process runs as.
fn user_name() -> anyhow::Result<String> {
    let output = Command::new("id").arg("-un").output().context("cannot run `id -un`")?;
    let name = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if !output.status.success() || name.is_empty() {
        bail!("`id -un` named no user: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(name)
}

/// A port of 127.0.0.1 that was free a moment ago for both UDP and TCP (DNS answers on both).
fn free_udp_and_tcp_port() -> anyhow::Result<u16> {
    for _ in 0..20 {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").context("no free UDP port")?;
        let port = udp.local_addr()?.port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no port of 127.0.0.1 free for both UDP and TCP in 20 tries")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asks `server` for `name`'s A records, by hand (a query is a dozen bytes): the
    /// response code and the addresses.
    fn ask(server: SocketAddr, name: &str) -> (u8, Vec<Ipv4Addr>) {
        let mut query = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.split('.') {
            query.push(u8::try_from(label.len()).unwrap());
            query.extend_from_slice(label.as_bytes());
        }
        query.extend_from_slice(&[0, 0, 1, 0, 1]);
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        socket.send_to(&query, server).unwrap();
        let mut answer = [0u8; 1500];
        let n = socket.recv(&mut answer).unwrap();
        let answer = &answer[..n];
        // The answers follow the question, each with a compressed name (2 bytes), type,
        // class, TTL and length (10 bytes); an A record's data is its 4 bytes.
        let count = u16::from_be_bytes([answer[6], answer[7]]);
        let mut at = query.len();
        let mut addresses = Vec::new();
        for _ in 0..count {
            let length = usize::from(u16::from_be_bytes([answer[at + 10], answer[at + 11]]));
            let data = &answer[at + 12..at + 12 + length];
            addresses.push(Ipv4Addr::new(data[0], data[1], data[2], data[3]));
            at += 12 + length;
        }
        (answer[3] & 0x0f, addresses)
    }

    #[test]
    fn a_record_comes_and_goes_while_it_runs() {
        let name = "wstime-headless.cluster.test";
        let first: IpAddr = Ipv4Addr::new(127, 0, 0, 11).into();
        let second: IpAddr = Ipv4Addr::new(127, 0, 0, 12).into();
        let mut dns = DnsServer::start(name, &[first], false).expect("start dnsmasq");
        assert_eq!(ask(dns.address(), name), (0, vec![Ipv4Addr::new(127, 0, 0, 11)]));

        dns.set_records(&[first, second]).unwrap();
        let (code, mut addresses) = ask(dns.address(), name);
        addresses.sort();
        assert_eq!((code, addresses.len()), (0, 2), "{addresses:?}");

        dns.set_records(&[]).unwrap();
        assert_eq!(ask(dns.address(), name), (3, vec![]), "NXDOMAIN once the last record goes");
        assert_eq!(ask(dns.address(), "example.com").0, 5, "any other name is refused");
    }
}
