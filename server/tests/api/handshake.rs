//! The upgrade's edges: malformed handshakes get a 4xx that says what is wrong, bytes sent
//! with the handshake are not lost, slow or deaf clients cost nothing lasting.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::helpers::{
    eventually, good_handshake_headers, handshake_request, raw_exchange, within, TestServer,
};

/// A valid key (RFC 6455's example), for requests that get something else wrong.
const KEY: &str = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

#[actix_web::test]
async fn malformed_handshakes_get_a_4xx_naming_the_mistake() {
    let server = TestServer::start("strict");
    let upgrade = "Connection: Upgrade\r\nUpgrade: websocket\r\n";
    let version = "Sec-WebSocket-Version: 13\r\n";
    let cases = [
        (format!("{upgrade}{version}"), 400, "Sec-WebSocket-Key is missing"),
        (
            format!("{upgrade}{version}Sec-WebSocket-Key: not-sixteen-bytes\r\n"),
            400,
            "base64 encoding of 16 bytes",
        ),
        (format!("{upgrade}{KEY}Sec-WebSocket-Version: 8\r\n"), 426, "speaks version 13"),
        (format!("{upgrade}{KEY}"), 400, "Sec-WebSocket-Version is missing"),
        (format!("Upgrade: websocket\r\n{KEY}{version}"), 400, "must include \"Upgrade\""),
    ];
    for (headers, status, reason) in cases {
        let request = handshake_request(server.port, "/?id=strict", &headers);
        let (response, _) = raw_exchange(server.port, request.as_bytes()).await;
        assert_eq!(response.status, status, "{headers:?}: {response:?}");
        assert!(response.body().contains(reason), "{headers:?}: {:?}", response.body());
        assert_eq!(response.header("content-type"), Some("text/plain; charset=utf-8"));
        if status == 426 || reason.contains("Version is missing") {
            assert_eq!(response.header("sec-websocket-version"), Some("13"), "RFC 6455 4.4");
        }
    }
    assert_eq!(server.live_connections().await, 0);
}

#[actix_web::test]
async fn upgrades_elsewhere_or_not_by_get_are_refused() {
    let server = TestServer::start("strict-paths");
    let headers = good_handshake_headers("websocket");
    let request = handshake_request(server.port, "/index.html", &headers);
    let (response, _) = raw_exchange(server.port, request.as_bytes()).await;
    assert_eq!(response.status, 404, "{response:?}");
    assert!(response.body().contains("connect to / or /ws"));

    let post = handshake_request(server.port, "/", &headers).replacen("GET", "POST", 1);
    let (response, _) = raw_exchange(server.port, post.as_bytes()).await;
    assert_eq!((response.status, response.header("allow")), (405, Some("GET")), "{response:?}");
}

#[actix_web::test]
async fn a_frame_sent_with_the_handshake_is_answered() {
    let server = TestServer::start("eager");
    // A masked ping ("hi", mask 0) right behind the request, in the same write.
    let mut request =
        handshake_request(server.port, "/?id=eager", &good_handshake_headers("websocket"))
            .into_bytes();
    request.extend_from_slice(&[0x89, 0x82, 0, 0, 0, 0, b'h', b'i']);
    let (response, mut stream) = raw_exchange(server.port, &request).await;
    assert_eq!(response.status, 101);
    let mut after = response.rest;
    let pong = [0x8a, 0x02, b'h', b'i'];
    while !after.windows(pong.len()).any(|w| w == pong) {
        let mut buf = [0u8; 512];
        let n = within("the pong", stream.read(&mut buf)).await.expect("read");
        assert!(n > 0, "closed before the pong: {after:?}");
        after.extend_from_slice(&buf[..n]);
    }
    let tick = b"eager: you have been connected for 0 seconds";
    assert!(after.windows(tick.len()).any(|w| w == tick), "the first tick came with the 101");
}

#[actix_web::test]
async fn a_client_that_stalls_its_handshake_is_timed_out() {
    let server = TestServer::start("slowloris");
    let mut stream = within("connect", tokio::net::TcpStream::connect(("127.0.0.1", server.port)))
        .await
        .expect("connect");
    // Half a request, then nothing: actix-http's request timeout (5 s) ends it.
    stream.write_all(b"GET /?id=slow HTTP/1.1\r\nHost: x\r\n").await.expect("write");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut answer))
        .await
        .expect("the server ends a stalled handshake")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert_eq!(server.live_connections().await, 0);
}

#[actix_web::test]
async fn a_client_that_pings_without_reading_is_dropped_not_buffered_for() {
    let server = TestServer::start("deaf");
    let request = handshake_request(server.port, "/?id=deaf", &good_handshake_headers("websocket"));
    let (response, mut stream) = raw_exchange(server.port, request.as_bytes()).await;
    assert_eq!(response.status, 101);
    assert_eq!(server.live_connections().await, 1);
    // Masked pings of 125 bytes, each asking for a pong, and never a read: the pongs fill
    // the kernel's buffers, then the server's small per-connection allowance.
    let mut ping = vec![0x89, 0x80 | 125, 0, 0, 0, 0];
    ping.extend_from_slice(&[b'p'; 125]);
    let burst = ping.repeat(512);
    let mut sent = 0usize;
    let flooding = async {
        // Bounded: 256 MiB is far beyond any socket buffer.
        while sent < 256 << 20 {
            if stream.write_all(&burst).await.is_err() {
                break;
            }
            sent += burst.len();
        }
    };
    tokio::time::timeout(Duration::from_secs(60), flooding).await.ok();
    eventually("the deaf client to be dropped", || async { server.live_connections().await == 0 })
        .await;
}

#[actix_web::test]
async fn a_frame_claiming_a_gigabyte_is_refused_with_1009_before_it_is_buffered() {
    let server = TestServer::start("claims");
    let request =
        handshake_request(server.port, "/?id=claims", &good_handshake_headers("websocket"));
    let (response, mut stream) = raw_exchange(server.port, request.as_bytes()).await;
    assert_eq!(response.status, 101);
    // A masked text frame of 2^30 bytes, and 64 KiB of it.
    let mut frame = vec![0x81, 0xff, 0, 0, 0, 0, 0x40, 0, 0, 0, 1, 2, 3, 4];
    frame.extend_from_slice(&[b'x'; 64 * 1024]);
    let _ = stream.write_all(&frame).await;
    let mut seen = response.rest;
    let close_1009 = [0x88u8, 0x22, 0x03, 0xf1];
    while !seen.windows(4).any(|w| w == close_1009) {
        let mut buf = [0u8; 1024];
        let n = within("the close", stream.read(&mut buf)).await.expect("read");
        assert!(n > 0, "closed without a 1009: {seen:?}");
        seen.extend_from_slice(&buf[..n]);
    }
}
