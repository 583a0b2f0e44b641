//! Running it on the internet: origins, per-client limits, the client's address behind a
//! trusted proxy, handshake bounds, and TLS served by the instance itself.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use wstime_cluster::tls::Certificates;

use crate::helpers::{
    assert_one_line_error, good_handshake_headers, handshake_request, raw_exchange, run_failing,
    within, RawResponse, TestServer,
};

/// An upgrade to `server` with extra `headers` (each ending in CRLF), as a raw exchange.
async fn upgrade_with(server: &TestServer, id: &str, headers: &str) -> RawResponse {
    let all = format!("{}{headers}", good_handshake_headers("websocket"));
    let request = handshake_request(server.port, &format!("/?id={id}"), &all);
    raw_exchange(server.port, request.as_bytes()).await.0
}

/// The same, starting the connection with a PROXY v2 header naming `client`; the stream is
/// returned too, since the socket counts against its client only while it is open.
async fn upgrade_via_proxy(
    server: &TestServer,
    id: &str,
    client: [u8; 4],
) -> (RawResponse, tokio::net::TcpStream) {
    let mut bytes = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    bytes.extend([0x21, 0x11, 0, 12]);
    bytes.extend(client);
    bytes.extend([127, 0, 0, 1]);
    bytes.extend(40000u16.to_be_bytes());
    bytes.extend(server.port.to_be_bytes());
    let request =
        handshake_request(server.port, &format!("/?id={id}"), &good_handshake_headers("websocket"));
    bytes.extend(request.as_bytes());
    raw_exchange(server.port, &bytes).await
}

#[actix_web::test]
async fn only_the_pages_own_origin_connects_by_default() {
    let server = TestServer::start("same-origin");
    let own = format!("Origin: http://127.0.0.1:{}\r\n", server.port);
    assert_eq!(upgrade_with(&server, "own", &own).await.status, 101, "the page served here");
    assert_eq!(upgrade_with(&server, "cli", "").await.status, 101, "no Origin: not a browser");
    let refused = upgrade_with(&server, "evil", "Origin: https://evil.example\r\n").await;
    assert_eq!(refused.status, 403, "{refused:?}");
    assert!(refused.body().contains("\"https://evil.example\" may not open WebSockets here"));

    let listed = TestServer::builder().env("ALLOWED_ORIGINS", "https://*.example.com").start();
    let partner = upgrade_with(&listed, "partner", "Origin: https://app.example.com\r\n").await;
    assert_eq!(partner.status, 101);
    let other = upgrade_with(&listed, "other", "Origin: https://example.org\r\n").await;
    assert_eq!(other.status, 403);
}

#[actix_web::test]
async fn one_address_holds_at_most_its_share_and_is_told_when_to_come_back() {
    let server = TestServer::builder().env("MAX_CONNECTIONS_PER_CLIENT", "2").start();
    let _first = server.connect("/?id=share-1").await;
    let _second = server.connect("/?id=share-2").await;
    let third = upgrade_with(&server, "share-3", "").await;
    assert_eq!((third.status, third.header("retry-after")), (429, Some("5")), "{third:?}");
    assert!(third.body().contains("too many connections from your address"));

    // A browser page cannot read a refused handshake's status: it is told with a 1013.
    let origin = format!("Origin: http://127.0.0.1:{}\r\n", server.port);
    let browser = upgrade_with(&server, "share-4", &origin).await;
    assert_eq!(browser.status, 101);
    assert_eq!((browser.rest[0], &browser.rest[2..4]), (0x88, &[0x03, 0xf5][..]), "a close: 1013");
    assert!(
        String::from_utf8_lossy(&browser.rest).contains("too many connections from your address")
    );
    assert_eq!(server.live_connections().await, 2);
}

#[actix_web::test]
async fn connecting_too_fast_gets_429_with_the_wait() {
    let server = TestServer::builder().env("CONNECT_RATE_PER_CLIENT", "0.5/2").start();
    for id in ["fast-1", "fast-2"] {
        assert_eq!(upgrade_with(&server, id, "").await.status, 101, "the burst");
    }
    let refused = upgrade_with(&server, "fast-3", "").await;
    assert_eq!((refused.status, refused.header("retry-after")), (429, Some("2")), "{refused:?}");
}

#[actix_web::test]
async fn a_trusted_proxy_names_the_client_and_an_untrusted_peer_cannot() {
    let server = TestServer::builder()
        .env("TRUSTED_PROXIES", "127.0.0.1")
        .env("MAX_CONNECTIONS_PER_CLIENT", "1")
        .start();
    let (first, _held) = upgrade_via_proxy(&server, "p-1", [203, 0, 113, 7]).await;
    assert_eq!(first.status, 101);
    let (second, _) = upgrade_via_proxy(&server, "p-2", [203, 0, 113, 7]).await;
    assert_eq!(second.status, 429, "the same client");
    let (other, _held_too) = upgrade_via_proxy(&server, "p-3", [203, 0, 113, 8]).await;
    assert_eq!(other.status, 101, "another client");
    // X-Forwarded-For from the trusted proxy counts too.
    let forwarded_for = "X-Forwarded-For: 198.51.100.4\r\n";
    let all = format!("{}{forwarded_for}", good_handshake_headers("websocket"));
    let request = handshake_request(server.port, "/?id=f-1", &all);
    let (forwarded, _held_also) = raw_exchange(server.port, request.as_bytes()).await;
    assert_eq!(forwarded.status, 101);
    assert_eq!(upgrade_with(&server, "f-2", forwarded_for).await.status, 429);

    // Without trust, the header is not believed: it is just a bad request.
    let untrusting = TestServer::start("untrusting");
    assert_ne!(upgrade_via_proxy(&untrusting, "spoof", [203, 0, 113, 7]).await.0.status, 101);
}

#[actix_web::test]
async fn bloated_headers_get_431() {
    let server = TestServer::start("bloated");
    let bloat = format!("X-Bloat: {}\r\n", "b".repeat(140 * 1024));
    let request = handshake_request(server.port, "/?id=bloat", &bloat);
    let (response, _) = raw_exchange(server.port, request.as_bytes()).await;
    assert_eq!(response.status, 431);
}

#[actix_web::test]
async fn handshakes_in_flight_are_capped_and_stalled_ones_make_room_when_they_time_out() {
    // The cap is shared out between the workers, one per core: a cap of one per worker,
    // and as many stalled handshakes, leave no room.
    let workers = std::thread::available_parallelism().map_or(2, usize::from);
    // Each client's share is off: here one address holds the whole pool on purpose.
    let server = TestServer::builder()
        .env("MAX_PENDING_HANDSHAKES", workers.to_string())
        .env("MAX_PENDING_HANDSHAKES_PER_CLIENT", "0")
        .start();
    let mut stalled = Vec::new();
    for _ in 0..workers {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", server.port)).await.unwrap();
        stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        stalled.push(stream);
    }
    let started = Instant::now();
    let request =
        handshake_request(server.port, "/?id=patient", &good_handshake_headers("websocket"));
    let (response, _) = raw_exchange(server.port, request.as_bytes()).await;
    assert_eq!(response.status, 101);
    // It waited for a stalled one to be timed out (5 s after it connected).
    assert!(started.elapsed() >= Duration::from_secs(4), "{:?}", started.elapsed());
    for mut stream in stalled {
        let mut rest = Vec::new();
        let _ = within("the stalled handshake's end", stream.read_to_end(&mut rest)).await;
    }
}

#[actix_web::test]
async fn an_instance_with_a_certificate_serves_the_page_and_wss_on_one_port() {
    let certificate = Certificates::loopback().expect("a certificate");
    let server = TestServer::builder()
        .env("SERVER_NAME", "secure")
        .env("TLS_CERT", certificate.cert.display().to_string())
        .env("TLS_KEY", certificate.key.display().to_string())
        .start();
    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(&certificate.ca).unwrap();
    for cert in rustls_pemfile_certs(&ca) {
        roots.add(cert).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_tungstenite::Connector::Rustls(Arc::new(config));
    let url = format!("wss://localhost:{}/?id=secure", server.port);
    let (mut socket, _) = within(
        "a WSS handshake",
        tokio_tungstenite::connect_async_tls_with_config(url, None, false, Some(connector)),
    )
    .await
    .expect("WSS handshake");
    let mut counts = Vec::new();
    while counts.len() < 2 {
        match within("a tick over TLS", futures_util::StreamExt::next(&mut socket)).await {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Text(text))) => {
                counts.push(wstime_protocol::Tick::parse(&text).expect("a tick").seconds);
            }
            Some(Ok(_)) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(counts, [0, 1]);

    // OpenSSL's TLS (curl) reads the page's files whole, and TLS 1.2 is refused: the
    // instance makes TLS 1.3's records itself after the handshake (`tls_stream`).
    let curl = |extra: &[&str], path: &str| {
        std::process::Command::new("curl")
            .args(["--silent", "--show-error", "--fail", "--cacert"])
            .arg(&certificate.ca)
            .args(extra)
            .arg(format!("https://localhost:{}/{path}", server.port))
            .output()
            .expect("curl runs")
    };
    let large = curl(&[], crate::helpers::LARGE_FILE);
    assert!(large.status.success(), "{}", String::from_utf8_lossy(&large.stderr));
    assert!(
        large.stdout == crate::helpers::large_file(),
        "the file, byte for byte, over many records"
    );
    let old = curl(&["--tlsv1.2", "--tls-max", "1.2"], "");
    // 35: curl's "SSL connect error", here the server's protocol_version alert.
    assert_eq!(old.status.code(), Some(35), "{}", String::from_utf8_lossy(&old.stderr));
}

/// The certificates in a PEM file.
fn rustls_pemfile_certs(pem: &[u8]) -> Vec<rustls_pki_types::CertificateDer<'static>> {
    use rustls_pki_types::pem::PemObject as _;
    rustls_pki_types::CertificateDer::pem_slice_iter(pem)
        .map(|cert| cert.expect("a certificate"))
        .collect()
}

/// An upgrade through `port` from the loopback address `source`; the stream is returned
/// too, since the socket counts against its client only while it is open.
async fn upgrade_from(source: [u8; 4], port: u16, id: &str) -> (u16, tokio::net::TcpStream) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind((std::net::Ipv4Addr::from(source), 0).into()).unwrap();
    let mut stream =
        within("a connect", socket.connect(([127, 0, 0, 1], port).into())).await.expect("connect");
    let request =
        handshake_request(port, &format!("/?id={id}"), &good_handshake_headers("websocket"));
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = [0u8; 12];
    within("the status line", stream.read_exact(&mut head)).await.expect("a status line");
    let status = String::from_utf8_lossy(&head[9..12]).parse().expect("a status");
    (status, stream)
}

#[actix_web::test]
async fn behind_haproxy_each_client_is_counted_by_its_own_address() {
    let dist = tempfile::tempdir().unwrap();
    crate::helpers::fake_dist(dist.path());
    let spec = wstime_cluster::ClusterSpec {
        instance: wstime_cluster::InstanceSpec {
            binary: env!("CARGO_BIN_EXE_wstime-server").into(),
            static_dir: dist.path().to_owned(),
            env: vec![("MAX_CONNECTIONS_PER_CLIENT".into(), "2".into())],
            echo: false,
        },
        instances: 1,
        standby: 0,
        redis: None,
        haproxy: Some(wstime_cluster::HaProxySpec::deploy(wstime_cluster::Discovery::Static)),
        prometheus: None,
    };
    let mut cluster =
        actix_web::rt::task::spawn_blocking(move || wstime_cluster::Cluster::start(spec))
            .await
            .unwrap()
            .expect("HAProxy in front of an instance");
    let lb = cluster.balancer_port().unwrap();
    // Every connection reaches the instance from HAProxy's address; the PROXY header says
    // whose it is, so 127.0.0.2's third is refused and 127.0.0.3's first is not.
    let (first, _a) = upgrade_from([127, 0, 0, 2], lb, "lb-1").await;
    let (second, _b) = upgrade_from([127, 0, 0, 2], lb, "lb-2").await;
    let (third, _) = upgrade_from([127, 0, 0, 2], lb, "lb-3").await;
    let (other, _c) = upgrade_from([127, 0, 0, 3], lb, "lb-4").await;
    assert_eq!((first, second, third, other), (101, 101, 429, 101));
    cluster.stop();
}

/// An upgrade to `server` with extra `headers`, with its stream: a socket counts against
/// its client only while it is open.
async fn upgrade_holding(
    server: &TestServer,
    id: &str,
    headers: &str,
) -> (RawResponse, tokio::net::TcpStream) {
    let all = format!("{}{headers}", good_handshake_headers("websocket"));
    let request = handshake_request(server.port, &format!("/?id={id}"), &all);
    raw_exchange(server.port, request.as_bytes()).await
}

#[actix_web::test]
async fn a_client_cannot_pass_for_another_by_writing_its_own_x_forwarded_for() {
    let server = TestServer::builder()
        .env("TRUSTED_PROXIES", "127.0.0.1")
        .env("MAX_CONNECTIONS_PER_CLIENT", "1")
        .start();
    // The proxy appends what it saw (FORGED stands for whatever the client sent before it):
    // each way of writing it is one client, whose second socket is refused.
    let mut held = Vec::new();
    for (i, proxy_wrote) in [
        "X-Forwarded-For: FORGED, 203.0.113.7:4444",
        "X-Forwarded-For: FORGED, [2001:db8::1]:4444",
        "X-Forwarded-For: FORGED\r\nX-Forwarded-For: 203.0.113.8:4444",
        "X-Forwarded-For: FORGED, unknown",
    ]
    .into_iter()
    .enumerate()
    {
        let first = format!("{}\r\n", proxy_wrote.replace("FORGED", "198.51.100.1"));
        let (response, stream) = upgrade_holding(&server, &format!("xff-{i}-a"), &first).await;
        assert_eq!(response.status, 101, "{proxy_wrote}: {response:?}");
        held.push(stream);
        let second = format!("{}\r\n", proxy_wrote.replace("FORGED", "198.51.100.2"));
        let (response, _) = upgrade_holding(&server, &format!("xff-{i}-b"), &second).await;
        assert_eq!(response.status, 429, "{proxy_wrote}: another forged entry: {response:?}");
    }
}

#[test]
fn an_absurd_connect_rate_is_a_one_line_error() {
    for absurd in ["1e-20", "1e300"] {
        let (status, stderr) = run_failing(&[("PORT", "0"), ("CONNECT_RATE_PER_CLIENT", absurd)]);
        assert_ne!(status, Some(0), "{absurd}");
        assert_one_line_error(&stderr, "from 0.001 to 1000000");
    }
}

#[actix_web::test]
async fn an_origin_whose_host_is_no_host_name_is_not_a_listed_subdomain() {
    let server = TestServer::builder().env("ALLOWED_ORIGINS", "*.example.com").start();
    let partner = upgrade_with(&server, "sub", "Origin: https://app.example.com\r\n").await;
    assert_eq!(partner.status, 101);
    for (i, forged) in [
        "https://evil.com#.example.com",
        "https://evil.com?.example.com",
        "https://evil.com\\.example.com",
        "https://evil.com%23.example.com",
    ]
    .into_iter()
    .enumerate()
    {
        let origin = format!("Origin: {forged}\r\n");
        let refused = upgrade_with(&server, &format!("forged-{i}"), &origin).await;
        assert_eq!(refused.status, 403, "{forged}: {refused:?}");
    }
}

/// A connection to `port` from the loopback address `source`.
async fn connect_from(source: [u8; 4], port: u16) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind((std::net::Ipv4Addr::from(source), 0).into()).unwrap();
    within("a connect", socket.connect(([127, 0, 0, 1], port).into())).await.expect("connect")
}

/// `GET /healthcheck` from `source`, within `limit`: the status, or `None` if the instance
/// did not answer in time.
async fn health_from(source: [u8; 4], port: u16, limit: Duration) -> Option<u16> {
    let exchange = async {
        let mut stream = connect_from(source, port).await;
        let request = format!("GET /healthcheck HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await.ok()?;
        String::from_utf8_lossy(&head[9..12]).parse().ok()
    };
    tokio::time::timeout(limit, exchange).await.ok().flatten()
}

/// The attack the hardening issue found: one address makes one complete request on each of
/// many connections and then sends a byte of a second, or sends only part of a first, and
/// goes quiet. Neither may take every place in the instance's pending pool: the health
/// check and upgrades from other addresses are answered at once, and still are after the
/// request-head deadline has passed, while the attacker holds on.
#[actix_web::test]
async fn one_address_holding_half_sent_requests_cannot_take_the_instance_off_the_balancer() {
    let server = TestServer::builder().env("MAX_PENDING_HANDSHAKES", "128").start();
    let attacker = [127, 0, 0, 1];
    let second = Duration::from_secs(1);
    let attempt = |connect| tokio::time::timeout(second, connect);
    let mut held = Vec::new();
    for _ in 0..160 {
        // A connect that is not accepted within a second: the pool is the attacker's.
        let Ok(mut stream) = attempt(connect_from(attacker, server.port)).await else { break };
        let _ = stream.write_all(b"GET /healthcheck HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let mut answer = [0u8; 256];
        let answered = tokio::time::timeout(second, stream.read(&mut answer)).await.is_ok();
        let _ = stream.write_all(b"G").await;
        held.push(stream);
        if !answered {
            break;
        }
    }
    for _ in 0..160 {
        let Ok(mut stream) = attempt(connect_from(attacker, server.port)).await else { break };
        let _ = stream.write_all(b"GET /healthcheck HTTP/1.1\r\nHo").await;
        held.push(stream);
    }
    for moment in ["at once", "past the request-head deadline"] {
        let health = health_from([127, 0, 0, 2], server.port, Duration::from_secs(5)).await;
        assert_eq!(health, Some(200), "{moment}");
        let (status, _) = upgrade_from([127, 0, 0, 3], server.port, "bystander").await;
        assert_eq!(status, 101, "{moment}");
        tokio::time::sleep(Duration::from_secs(6)).await;
    }
    drop(held);
    let mut stream = connect_from([127, 0, 0, 4], server.port).await;
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut text = String::new();
    within("the metrics", stream.read_to_string(&mut text)).await.unwrap();
    let refused = text.lines().find_map(|line| line.strip_prefix("wstime_pending_refused_total "));
    let refused: f64 = refused.expect("the counter").parse().unwrap();
    assert!(refused >= 100.0, "the attacker's connections past its share: {refused}");
}

/// An upgrade stays in its client's share of the pending pool until its `101`: upgrades of
/// one session opened every 5 ms, each then waiting up to two seconds for the session's next
/// count, hold no more than their address's share, and the health check from another
/// address is answered while they wait.
#[actix_web::test]
async fn upgrades_waiting_on_one_busy_session_hold_only_their_clients_share() {
    let server = TestServer::builder().env("MAX_PENDING_HANDSHAKES", "128").start();
    let port = server.port;
    let attacker = actix_web::rt::spawn(async move {
        let mut waiting = Vec::new();
        for _ in 0..600 {
            let mut stream = connect_from([127, 0, 0, 1], port).await;
            let request =
                handshake_request(port, "/?id=busy", &good_handshake_headers("websocket"));
            let _ = stream.write_all(request.as_bytes()).await;
            waiting.push(stream);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        waiting
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    // By now 400 upgrades have come, at 200 a second, each held for up to two seconds.
    let health = health_from([127, 0, 0, 2], server.port, Duration::from_secs(1)).await;
    assert_eq!(health, Some(200));
    drop(attacker.await);
}

/// Every request head has a deadline, a connection's second included: a client that sends
/// one request and then a byte of another is not waited for (each connection serves one
/// request, so the second is never read).
#[actix_web::test]
async fn a_half_sent_second_request_is_not_waited_for() {
    let server = TestServer::start("deadline");
    let mut stream = connect_from([127, 0, 0, 1], server.port).await;
    stream.write_all(b"GET /healthcheck HTTP/1.1\r\nHost: x\r\n\r\nG").await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(7), stream.read_to_end(&mut answer));
    assert!(read.await.is_ok(), "the connection was held open for the second request");
    assert!(answer.starts_with(b"HTTP/1.1 200 OK\r\n"), "{}", String::from_utf8_lossy(&answer));
}

/// `GET path` from `addr` with `accept`: the status and the body.
async fn get(addr: std::net::SocketAddr, path: &str, accept: &str) -> (u16, String) {
    let mut stream = within("a connect", tokio::net::TcpStream::connect(addr)).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: {accept}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut text = String::new();
    within("the answer", stream.read_to_string(&mut text)).await.unwrap();
    let status = text.get(9..12).and_then(|code| code.parse().ok()).expect("a status");
    (status, text.split_once("\r\n\r\n").map_or("", |(_, body)| body).to_owned())
}

/// With ADMIN_BIND, what tells more than a load balancer needs leaves the app port: the
/// metrics, the cluster (instances' addresses) and the health check's JSON are on the admin
/// address, with the agent check beside them, and the app port keeps the page, the
/// WebSockets and the plain-text health check.
#[actix_web::test]
async fn with_an_admin_address_the_app_port_shows_only_what_the_internet_needs() {
    let admin_port = wstime_cluster::free_port().unwrap();
    let agent_port = wstime_cluster::free_port().unwrap();
    let admin: std::net::SocketAddr = ([127, 0, 0, 2], admin_port).into();
    let server = TestServer::builder()
        .env("ADMIN_BIND", admin.to_string())
        .env("AGENT_PORT", agent_port.to_string())
        .start();
    let app: std::net::SocketAddr = ([127, 0, 0, 1], server.port).into();
    let json = "application/json";
    assert_eq!(get(app, "/metrics", "*/*").await.0, 404);
    assert_eq!(get(app, "/cluster", json).await.0, 404);
    assert_eq!(get(app, "/healthcheck", json).await, (200, "ok".to_owned()), "text only");
    let (status, _socket) = upgrade_from([127, 0, 0, 1], server.port, "public").await;
    assert_eq!(status, 101);

    let (status, metrics) = get(admin, "/metrics", "*/*").await;
    assert!(status == 200 && metrics.contains("wstime_connections 1"), "{metrics}");
    let (status, cluster) = get(admin, "/cluster", json).await;
    assert!(status == 200 && cluster.contains("\"answered_by\""), "{cluster}");
    let (status, health) = get(admin, "/healthcheck", json).await;
    let report = wstime_protocol::HealthReport::parse(&health).expect("the JSON report");
    assert_eq!((status, report.connections), (200, 1));

    let mut line = String::new();
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.2", agent_port)).await.unwrap();
    within("the agent's line", stream.read_to_string(&mut line)).await.unwrap();
    assert!(line.starts_with("up ready"), "{line}");
    let on_app_address = tokio::net::TcpStream::connect(("127.0.0.1", agent_port)).await;
    assert!(on_app_address.is_err(), "the agent check is on the admin address only");
}
