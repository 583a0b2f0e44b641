//! A minimal blocking HTTP/1.0 client for loopback: enough to read an instance's health
//! check or HAProxy's status CSV from the cluster's own threads, without a runtime.

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::Duration,
};

use anyhow::Context as _;

/// A response: status code and body.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// Sends `method path` to `127.0.0.1:port` with `accept` and returns the response, failing
/// if it takes longer than `limit`.
pub fn request(
    method: &str,
    port: u16,
    path: &str,
    accept: &str,
    limit: Duration,
) -> anyhow::Result<Response> {
    let mut stream = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), limit)
        .with_context(|| format!("cannot connect to 127.0.0.1:{port}"))?;
    stream.set_read_timeout(Some(limit))?;
    stream.set_write_timeout(Some(limit))?;
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nAccept: {accept}\r\nContent-Length: 0\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").context("a response without a header end")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no status in {head:?}"))?;
    // Some servers (HAProxy's status page among them) answer 1.0 requests in chunks.
    let chunked = head
        .lines()
        .any(|line| line.to_ascii_lowercase().replace(' ', "") == "transfer-encoding:chunked");
    let body = if chunked { dechunk(body)? } else { body.to_owned() };
    Ok(Response { status, body })
}

/// Joins a chunked body's chunks.
fn dechunk(mut rest: &str) -> anyhow::Result<String> {
    let mut body = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").context("a chunk without a size line")?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .with_context(|| format!("a bad chunk size {size:?}"))?;
        if size == 0 {
            return Ok(body);
        }
        body.push_str(after.get(..size).context("a chunk shorter than its size")?);
        rest = after.get(size + 2..).context("a chunk without its line end")?;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn chunks_are_joined() {
        assert_eq!(super::dechunk("4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n").unwrap(), "Wikipedia");
    }
}
