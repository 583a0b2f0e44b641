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

/// The client's address for a request from `peer` carrying `headers`: the last
/// `X-Forwarded-For` entry that is not itself a trusted proxy, when `peer` is trusted;
/// else `peer`'s.
pub fn forwarded_for(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    if !trusted.trusts(peer) {
        return peer;
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|hop| hop.trim().parse().ok())
        .collect();
    // Each proxy appends the address it saw: from the right, skip our own proxies.
    hops.into_iter().rev().find(|hop| !trusted.trusts(*hop)).unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use actix_http::header::{HeaderName, HeaderValue};

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
}
