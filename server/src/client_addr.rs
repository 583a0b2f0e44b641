//! The client's real address: what per-client limits count by and what logs name.
//!
//! It is the socket's peer address, unless that peer is a trusted proxy (`TRUSTED_PROXIES`),
//! in which case the proxy says who the client is: first in a PROXY protocol v2 header at
//! the start of the connection (HAProxy's `send-proxy-v2`, which covers every request on
//! it, health checks included), otherwise in the `X-Forwarded-For` header of the request.
//! An untrusted peer is never believed: anyone can send those bytes.

use std::{
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    str::FromStr,
    time::Duration,
};

use actix_http::header::HeaderMap;
use ipnet::IpNet;
use tokio::{io::AsyncReadExt as _, net::TcpStream};

/// The PROXY protocol v2 signature (its first 12 bytes).
const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// How long a trusted proxy may take to send its PROXY header.
pub const HEADER_LIMIT: Duration = Duration::from_secs(5);

/// The proxies whose word on the client's address is taken.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl FromStr for TrustedProxies {
    type Err = String;

    /// A comma-separated list of networks (`10.0.0.0/8`) or addresses (`127.0.0.1`).
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let networks = raw
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        format!("{entry:?} is not an address or a network such as 10.0.0.0/8")
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self(networks))
    }
}

impl TrustedProxies {
    /// Whether `peer` is one of them.
    pub fn trusts(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.0.iter().any(|network| network.contains(&peer))
    }

    /// Whether any proxy is trusted at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The client's address for a connection from `peer`: read from a PROXY v2 header at the
/// start of `stream` when `peer` is trusted and sent one (the header is consumed, nothing
/// after it), else `peer`.
pub async fn accept(
    stream: &mut TcpStream,
    peer: SocketAddr,
    trusted: &TrustedProxies,
) -> io::Result<SocketAddr> {
    if !trusted.trusts(peer.ip()) {
        return Ok(peer);
    }
    let read = async {
        let mut start = [0u8; 16];
        // A proxy that sends the header sends it first and whole; peek so a trusted
        // peer that speaks plain HTTP loses nothing.
        loop {
            let seen = stream.peek(&mut start).await?;
            let compared = seen.min(SIGNATURE.len());
            if seen == 0 || start[..compared] != SIGNATURE[..compared] {
                return Ok(peer);
            }
            if seen == start.len() {
                break;
            }
            // Part of a header: the rest is on its way (peeking again at once would spin).
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let length = usize::from(u16::from_be_bytes([start[14], start[15]]));
        let mut header = vec![0u8; 16 + length];
        stream.read_exact(&mut header).await?;
        parse_v2(&header).map(|client| client.unwrap_or(peer))
    };
    tokio::time::timeout(HEADER_LIMIT, read)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no PROXY header in time"))?
}

/// The source address in a whole PROXY v2 header; `None` for a `LOCAL` command (the
/// proxy's own connection, such as a health check) or an address family it does not say.
pub fn parse_v2(header: &[u8]) -> io::Result<Option<SocketAddr>> {
    let invalid =
        |why: &str| io::Error::new(io::ErrorKind::InvalidData, format!("PROXY v2: {why}"));
    if header.len() < 16 || header[..12] != SIGNATURE {
        return Err(invalid("no signature"));
    }
    let (version, command) = (header[12] >> 4, header[12] & 0x0f);
    if version != 2 {
        return Err(invalid("not version 2"));
    }
    let body = &header[16..];
    if body.len() != usize::from(u16::from_be_bytes([header[14], header[15]])) {
        return Err(invalid("length does not match"));
    }
    match (command, header[13]) {
        (0, _) => Ok(None),
        // TCP over IPv4: source address, destination address, source port, destination port.
        (1, 0x11) if body.len() >= 12 => {
            let ip = Ipv4Addr::new(body[0], body[1], body[2], body[3]);
            Ok(Some(SocketAddr::new(ip.into(), u16::from_be_bytes([body[8], body[9]]))))
        }
        (1, 0x21) if body.len() >= 36 => {
            let octets: [u8; 16] = body[..16].try_into().expect("16 bytes");
            let port = u16::from_be_bytes([body[32], body[33]]);
            Ok(Some(SocketAddr::new(Ipv6Addr::from(octets).into(), port)))
        }
        (1, _) => Ok(None),
        _ => Err(invalid("unknown command")),
    }
}

/// The client's address for a request from `peer` carrying `headers`: what a trusted
/// `peer` says in `X-Forwarded-For`; else `peer`'s own.
///
/// Each proxy appends the address it saw, so the entries (across every header line, a
/// later line to the right) are read from the right, through our own proxies, up to the
/// first that is not one: that is the client. Everything to its left came from the client
/// and is not believed. A proxy may write the address with a port (`203.0.113.7:4444`,
/// `[2001:db8::1]:4444`) or bracketed (`[2001:db8::1]`); the port is dropped.
///
/// An entry that names no address (`unknown`, an obfuscated `_hidden` as RFC 7239 has
/// them, an empty or mangled one, a line that is not text) ends the scan too: skipping it
/// would believe whatever the client wrote further left, a fresh identity per socket. The
/// client is then counted as the trusted proxy that wrote the entry (the nearest hop the
/// scan passed: the peer, or the entry to its right). That lumps every such client together
/// under that proxy's limit, which is the conservative choice: the client is unknown, and
/// no forged entry can buy a share of its own. For the same reason, when every entry is a
/// trusted proxy the leftmost one is the client: a trusted hop wrote it.
pub fn forwarded_for(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    if !trusted.trusts(peer) {
        return peer;
    }
    let lines: Vec<_> = headers.get_all("x-forwarded-for").collect();
    let mut client = peer;
    for line in lines.into_iter().rev() {
        let Ok(line) = line.to_str() else { return client };
        for entry in line.rsplit(',') {
            let Some(hop) = hop_address(entry) else { return client };
            client = hop;
            if !trusted.trusts(hop) {
                return client;
            }
        }
    }
    client
}

/// The address one `X-Forwarded-For` entry names, without the port or brackets a proxy
/// may write around it; `None` for anything else.
fn hop_address(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim_matches([' ', '\t']);
    if let Ok(address) = entry.parse::<IpAddr>() {
        return Some(address);
    }
    if let Ok(socket) = entry.parse::<SocketAddr>() {
        return Some(socket.ip());
    }
    let bracketed = entry.strip_prefix('[')?.strip_suffix(']')?;
    bracketed.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

#[cfg(test)]
mod tests {
    use actix_http::header::{HeaderName, HeaderValue};
    use proptest::prelude::*;

    use super::*;

    fn v4_header(command: u8, source: [u8; 4], port: u16) -> Vec<u8> {
        let mut header = SIGNATURE.to_vec();
        header.extend([0x20 | command, 0x11, 0, 12]);
        header.extend(source);
        header.extend([127, 0, 0, 1]);
        header.extend(port.to_be_bytes());
        header.extend(8080u16.to_be_bytes());
        header
    }

    #[test]
    fn a_proxy_v2_header_names_the_client() {
        let header = v4_header(1, [203, 0, 113, 7], 51000);
        assert_eq!(parse_v2(&header).unwrap(), Some("203.0.113.7:51000".parse().unwrap()));
        assert_eq!(parse_v2(&v4_header(0, [0; 4], 0)).unwrap(), None, "LOCAL: the proxy itself");
        let mut short = header.clone();
        short.pop();
        assert!(parse_v2(&short).is_err(), "a length that does not match");
        let mut v1 = header;
        v1[12] = 0x11;
        assert!(parse_v2(&v1).is_err());
    }

    #[test]
    fn networks_and_addresses_are_trusted_and_nothing_else() {
        let trusted: TrustedProxies = "10.0.0.0/8, 127.0.0.1".parse().unwrap();
        assert!(trusted.trusts("10.1.2.3".parse().unwrap()));
        assert!(trusted.trusts("127.0.0.1".parse().unwrap()));
        assert!(trusted.trusts("::ffff:127.0.0.1".parse().unwrap()), "IPv4 mapped in IPv6");
        assert!(!trusted.trusts("127.0.0.2".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<TrustedProxies>().is_err());
        assert!("".parse::<TrustedProxies>().unwrap().is_empty());
    }

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
        let trusted: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.append(
            HeaderName::from_static("x-forwarded-for"),
            HeaderValue::from_static("198.51.100.1, 203.0.113.9, 10.0.0.5"),
        );
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(
            forwarded_for(proxy, &headers, &trusted),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        let stranger: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(forwarded_for(stranger, &headers, &trusted), stranger, "anyone can write it");
    }

    /// The proxies the examples trust: one local, one network, one IPv6 range.
    fn our_proxies() -> TrustedProxies {
        "127.0.0.1, 10.0.0.0/8, 2001:db8:ffff::/48".parse().unwrap()
    }

    /// A request's headers with one `X-Forwarded-For` line per entry of `lines`.
    fn forwarded(lines: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(
                HeaderName::from_static("x-forwarded-for"),
                HeaderValue::from_str(line).unwrap(),
            );
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    /// The client a request from the local proxy with these lines is counted as.
    fn client(lines: &[&str]) -> IpAddr {
        forwarded_for(ip("127.0.0.1"), &forwarded(lines), &our_proxies())
    }

    #[test]
    fn an_entry_with_a_port_or_brackets_is_the_address_the_proxy_saw() {
        for (written, seen) in [
            ("203.0.113.7:4444", "203.0.113.7"),
            ("[2001:db8::1]:4444", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("2001:db8::1", "2001:db8::1"),
            ("  203.0.113.7\t", "203.0.113.7"),
        ] {
            assert_eq!(client(&[&format!("198.51.100.1, {written}")]), ip(seen), "{written}");
            assert_eq!(client(&[&format!("198.51.100.1, {written}, 10.0.0.5")]), ip(seen));
        }
    }

    #[test]
    fn an_entry_that_names_no_address_ends_the_scan_at_the_proxy_that_wrote_it() {
        for written in [
            "unknown",
            "_hidden",
            "garbage",
            "",
            " ",
            "[2001:db8::1",
            "203.0.113.7:99999",
            "1.2.3.4:",
        ] {
            let line = format!("198.51.100.1, {written}");
            assert_eq!(client(&[&line]), ip("127.0.0.1"), "{written:?}: the peer wrote it");
            let line = format!("198.51.100.1, {written}, 10.0.0.5");
            assert_eq!(client(&[&line]), ip("10.0.0.5"), "{written:?}: 10.0.0.5 wrote it");
        }
    }

    #[test]
    fn later_header_lines_are_to_the_right() {
        assert_eq!(client(&["198.51.100.1", "203.0.113.9, 10.0.0.5"]), ip("203.0.113.9"));
        assert_eq!(client(&["198.51.100.1, 203.0.113.9", "unknown"]), ip("127.0.0.1"));
        assert_eq!(client(&["198.51.100.1", "203.0.113.9:80"]), ip("203.0.113.9"));
        let mut headers = forwarded(&["198.51.100.1"]);
        headers.append(
            HeaderName::from_static("x-forwarded-for"),
            HeaderValue::from_bytes(b"\xff").unwrap(),
        );
        let peer = ip("127.0.0.1");
        assert_eq!(forwarded_for(peer, &headers, &our_proxies()), peer, "a line that is not text");
    }

    #[test]
    fn when_every_entry_is_a_trusted_proxy_the_leftmost_is_the_client() {
        assert_eq!(client(&["10.0.0.7, 10.0.0.5"]), ip("10.0.0.7"));
        assert_eq!(client(&[]), ip("127.0.0.1"), "no header: the peer itself");
    }

    /// How a proxy may write `address`: bare, with a port, bracketed (IPv6), with spaces.
    fn written(address: IpAddr) -> impl Strategy<Value = String> {
        (0..3u8, any::<u16>(), " {0,2}", " {0,2}").prop_map(move |(form, port, lead, trail)| {
            let text = match (form, address) {
                (0, _) => address.to_string(),
                (1, _) => SocketAddr::new(address, port).to_string(),
                (_, IpAddr::V6(v6)) => format!("[{v6}]"),
                (_, IpAddr::V4(v4)) => v4.to_string(),
            };
            format!("{lead}{text}{trail}")
        })
    }

    fn any_address() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<[u8; 4]>().prop_map(IpAddr::from),
            any::<[u8; 16]>().prop_map(IpAddr::from)
        ]
    }

    /// An address `our_proxies()` trusts.
    fn proxy_address() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            Just(IpAddr::from([127, 0, 0, 1])),
            any::<[u8; 3]>().prop_map(|[a, b, c]| IpAddr::from([10, a, b, c])),
            any::<u128>().prop_map(|low| {
                let range = u128::from(Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 0));
                IpAddr::from(Ipv6Addr::from(range | (low >> 48)))
            }),
        ]
    }

    /// What is not an address in any form: RFC 7239's `unknown` and obfuscated names, and
    /// the rest.
    fn no_address() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("unknown".to_owned()),
            "_[A-Za-z0-9._-]{1,8}",
            " {0,2}",
            "[g-z]{1,8}",
            Just("[2001:db8::1".to_owned()),
            Just("203.0.113.7:99999".to_owned()),
        ]
    }

    /// Entries of every kind, as a client may write them to the left of its proxies'.
    fn any_entry() -> impl Strategy<Value = String> {
        prop_oneof![any_address().prop_flat_map(written), no_address(), "[ -+\\--~]{0,16}"]
    }

    /// The rightmost entry that is not a trusted proxy: an address, or none.
    fn boundary() -> impl Strategy<Value = (Option<IpAddr>, String)> {
        let address = any_address().prop_filter("not a proxy", |a| !our_proxies().trusts(*a));
        prop_oneof![
            address.prop_flat_map(|a| written(a).prop_map(move |text| (Some(a), text))),
            no_address().prop_map(|text| (None, text)),
        ]
    }

    /// `entries` as header lines, a new line after entry `i` where `breaks[i]` says so.
    fn lines(entries: &[String], breaks: &[bool]) -> Vec<String> {
        let mut lines = vec![Vec::new()];
        for (i, entry) in entries.iter().enumerate() {
            lines.last_mut().expect("one line at least").push(entry.as_str());
            if breaks[i % breaks.len()] && i + 1 < entries.len() {
                lines.push(Vec::new());
            }
        }
        lines.iter().map(|line| line.join(",")).collect()
    }

    proptest! {
        /// Whatever a client writes to the left of the rightmost entry that is not one of
        /// our proxies, the answer is the same: that entry's address, or, when it names
        /// none, the proxy that wrote it (the next hop to its right, or the peer).
        #[test]
        fn a_forged_prefix_never_changes_the_client(
            prefix in prop::collection::vec(any_entry(), 0..6),
            (address, boundary) in boundary(),
            proxies in prop::collection::vec(
                proxy_address().prop_flat_map(|p| written(p).prop_map(move |text| (p, text))),
                0..4,
            ),
            breaks in prop::collection::vec(any::<bool>(), 1..12),
        ) {
            let peer = ip("127.0.0.1");
            let expected = address.unwrap_or_else(|| proxies.first().map_or(peer, |(p, _)| *p));
            let mut entries = prefix;
            entries.push(boundary);
            entries.extend(proxies.into_iter().map(|(_, text)| text));
            let lines = lines(&entries, &breaks);
            let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
            let found = forwarded_for(peer, &forwarded(&lines), &our_proxies());
            prop_assert_eq!(found, expected, "{:?}", lines);
        }
    }
}
