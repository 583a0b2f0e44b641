//! `/metrics` and `/cluster`: every metric changes on the event that should change it, and
//! the registry shows instances appear, drain and vanish.

use std::time::{Duration, Instant};

use tokio_tungstenite::tungstenite::Message;
use wstime_cluster::Redis;

use crate::helpers::{
    eventually, good_handshake_headers, handshake_request, raw_exchange, raw_upgrade, within,
    TestServer,
};

/// The exposition of `server`'s `/metrics`, checked to be OpenMetrics text.
async fn scrape(server: &TestServer) -> String {
    let mut response =
        within("a scrape", awc::Client::default().get(server.http_url("/metrics")).send())
            .await
            .expect("GET /metrics");
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers().get("content-type").unwrap().to_str().unwrap();
    assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
    let body = within("the scrape body", response.body()).await.expect("the body");
    let text = String::from_utf8(body.to_vec()).expect("UTF-8");
    assert!(text.ends_with("# EOF\n"), "{text}");
    text
}

/// The value of the sample `series` (a name and its labels, exactly as exposed), if any.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.parse().expect("a number"))
}

/// The value of `series` in a fresh scrape, 0 if absent (a counter never incremented).
async fn value(server: &TestServer, series: &str) -> f64 {
    sample(&scrape(server).await, series).unwrap_or(0.0)
}

/// Waits until `series` reaches `at_least` (the tick counters and gauges follow events
/// within a scrape or two).
async fn reaches(server: &TestServer, series: &str, at_least: f64) {
    eventually(&format!("{series} to reach {at_least}"), || async {
        value(server, series).await >= at_least
    })
    .await;
}

#[actix_web::test]
async fn every_metric_is_exposed_with_its_type_and_the_build() {
    let server = TestServer::start("exposed");
    let mut client = server.connect("/?id=exposed").await;
    client.next_tick().await;
    client.send(Message::Text("x".repeat(5000).into())).await;
    client.expect_close().await;
    reaches(&server, "wstime_server_closes_total{code=\"1009\"}", 1.0).await;
    let text = scrape(&server).await;
    for (family, kind) in [
        ("wstime_build", "info"),
        ("wstime_connections", "gauge"),
        ("wstime_connections_max", "gauge"),
        ("wstime_upgrades_accepted", "counter"),
        ("wstime_sessions_opened", "counter"),
        ("wstime_session_away_seconds", "histogram"),
        ("wstime_server_closes", "counter"),
        ("wstime_ticks_sent", "counter"),
        ("wstime_sent_bytes", "counter"),
        ("wstime_tick_lateness_seconds", "histogram"),
        ("wstime_store_operation_duration_seconds", "histogram"),
        ("wstime_health", "gauge"),
        ("wstime_load", "gauge"),
        ("wstime_draining", "gauge"),
        ("wstime_cluster_instances", "gauge"),
        ("wstime_pending_refused", "counter"),
    ] {
        assert!(text.contains(&format!("# TYPE {family} {kind}\n")), "{family} {kind}:\n{text}");
    }
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        text.contains(&format!("wstime_build_info{{version=\"{version}\",commit=\"")),
        "{text}"
    );
}

#[actix_web::test]
async fn connection_events_move_their_metrics() {
    let server =
        TestServer::builder().env("SERVER_NAME", "counted").env("MAX_CONNECTIONS", "2").start();
    assert_eq!(value(&server, "wstime_health{state=\"ok\"}").await, 1.0);

    // A new session, its ticks, then the same id again: resumed, and how long it was away.
    let mut first = server.connect("/?id=counted").await;
    for _ in 0..2 {
        first.next_tick().await;
    }
    assert_eq!(value(&server, "wstime_connections").await, 1.0);
    assert_eq!(value(&server, "wstime_upgrades_accepted_total").await, 1.0);
    assert_eq!(value(&server, "wstime_sessions_opened_total{kind=\"new\"}").await, 1.0);
    reaches(&server, "wstime_ticks_sent_total", 2.0).await;
    reaches(&server, "wstime_tick_lateness_seconds_count", 2.0).await;
    assert!(value(&server, "wstime_sent_bytes_total").await >= 2.0 * 40.0);
    assert!(
        value(&server, "wstime_store_operation_duration_seconds_count{operation=\"open\"}").await
            >= 1.0
    );
    drop(first);
    eventually("the socket to go", || async { server.live_connections().await == 0 }).await;
    let mut again = server.connect("/?id=counted").await;
    again.next_tick().await;
    assert_eq!(value(&server, "wstime_sessions_opened_total{kind=\"resumed\"}").await, 1.0);
    let away = scrape(&server).await;
    assert_eq!(sample(&away, "wstime_session_away_seconds_count"), Some(1.0));
    assert!(sample(&away, "wstime_session_away_seconds_sum").unwrap() < 5.0, "{away}");

    // Refusals, by reason.
    raw_upgrade(server.port, "/?id=a%20b", "websocket").await;
    raw_upgrade(server.port, "/elsewhere", "websocket").await;
    let _second = server.connect("/?id=second").await;
    assert_eq!(raw_upgrade(server.port, "/?id=third", "websocket").await.0, 503);
    let text = scrape(&server).await;
    for reason in ["bad_client_id", "not_an_endpoint", "full"] {
        let series = format!("wstime_upgrades_refused_total{{reason=\"{reason}\"}}");
        assert_eq!(sample(&text, &series), Some(1.0), "{series}:\n{text}");
    }
    assert_eq!(sample(&text, "wstime_health{state=\"overloaded\"}"), Some(1.0), "2 of 2");
    assert_eq!(sample(&text, "wstime_load"), Some(1.0));

    // A close the server sends, by code.
    again.send(Message::Text("x".repeat(5000).into())).await;
    assert_eq!(again.expect_close().await, Some(1009));
    reaches(&server, "wstime_server_closes_total{code=\"1009\"}", 1.0).await;
    assert_eq!(value(&server, "wstime_server_closes_total{code=\"1009\"}").await, 1.0);
    assert_eq!(value(&server, "wstime_server_closes_total{code=\"1012\"}").await, 0.0);
    let unused = "wstime_upgrades_refused_total{reason=\"origin_not_allowed\"}";
    assert_eq!(sample(&scrape(&server).await, unused), Some(0.0), "exposed before it happens");
}

#[actix_web::test]
async fn the_drain_shows_in_the_metrics() {
    let mut server = TestServer::builder().env("DRAIN_GRACE_SECS", "30").start();
    let _client = server.connect("/?id=draining").await;
    server.signal("TERM");
    eventually("the drain to begin", || async { value(&server, "wstime_draining").await == 1.0 })
        .await;
    let text = scrape(&server).await;
    assert_eq!(sample(&text, "wstime_health{state=\"draining\"}"), Some(1.0), "{text}");
    assert_eq!(sample(&text, "wstime_health{state=\"ok\"}"), Some(0.0), "{text}");
    raw_upgrade(server.port, "/?id=late", "websocket").await;
    let refused = "wstime_upgrades_refused_total{reason=\"draining\"}";
    assert_eq!(value(&server, refused).await, 1.0);
}

#[actix_web::test]
async fn store_errors_are_counted_by_operation_even_when_memory_stands_in() {
    let dead = wstime_cluster::free_port().unwrap();
    let server =
        TestServer::builder().env("REDIS_URL", format!("redis://127.0.0.1:{dead}/0")).start();
    let mut client = server.connect("/?id=unstored").await;
    client.next_tick().await;
    reaches(&server, "wstime_store_errors_total{operation=\"register\"}", 1.0).await;
    assert_eq!(
        value(&server, "wstime_store_errors_total{operation=\"open\"}").await,
        1.0,
        "Redis failed the open; the session was kept in memory"
    );
    drop(client);
    reaches(&server, "wstime_store_errors_total{operation=\"touch\"}", 1.0).await;
}

/// The status of an upgrade from `port` for `id` with `extra` headers after a good
/// handshake's.
async fn upgrade_status(port: u16, id: &str, extra: &str) -> u16 {
    let headers = format!("{}{extra}", good_handshake_headers("websocket"));
    let request = handshake_request(port, &format!("/?id={id}"), &headers);
    raw_exchange(port, request.as_bytes()).await.0.status
}

#[actix_web::test]
async fn every_refusal_is_counted_by_its_reason() {
    let server = TestServer::builder()
        .env("MAX_CONNECTIONS_PER_CLIENT", "1")
        .env("CONNECT_RATE_PER_CLIENT", "0")
        .start();
    let port = server.port;
    let version_8 = "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 8\r\n\
                     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let request = handshake_request(port, "/?id=old", version_8);
    assert_eq!(raw_exchange(port, request.as_bytes()).await.0.status, 426);
    assert_eq!(upgrade_status(port, "evil", "Origin: https://evil.example\r\n").await, 403);
    // One socket per address: the next is refused, and a browser's is opened to be told
    // so with a 1013 (it could not read a 429).
    let _held = server.connect("/?id=held").await;
    assert_eq!(upgrade_status(port, "second", "").await, 429);
    let own = format!("Origin: http://127.0.0.1:{port}\r\n");
    assert_eq!(upgrade_status(port, "browser", &own).await, 101);

    let text = scrape(&server).await;
    let refused = |reason| format!("wstime_upgrades_refused_total{{reason=\"{reason}\"}}");
    for (reason, count) in
        [("bad_handshake", 1.0), ("origin_not_allowed", 1.0), ("client_limit", 2.0)]
    {
        assert_eq!(sample(&text, &refused(reason)), Some(count), "{reason}:\n{text}");
    }
    assert_eq!(sample(&text, "wstime_server_closes_total{code=\"1013\"}"), Some(1.0), "{text}");
    assert_eq!(sample(&text, "wstime_upgrades_accepted_total"), Some(1.0), "{text}");

    let rated = TestServer::builder().env("CONNECT_RATE_PER_CLIENT", "0.5/1").start();
    assert_eq!(upgrade_status(rated.port, "rate-1", "").await, 101);
    assert_eq!(upgrade_status(rated.port, "rate-2", "").await, 429);
    assert_eq!(value(&rated, &refused("rate_limited")).await, 1.0);
}

#[actix_web::test]
async fn an_open_that_waits_too_long_for_its_count_is_counted_as_store_unavailable() {
    // Opens of one session take its counts in turn, one a second once two are out: the
    // later of six opened at once would wait past the limit, and are refused with a 503.
    let server = TestServer::start("crowded");
    let opens = (0..6).map(|_| upgrade_status(server.port, "crowded", ""));
    let statuses = futures_util::future::join_all(opens).await;
    let refused = statuses.iter().filter(|&&status| status == 503).count();
    assert!(refused >= 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|&&status| status == 101).count() + refused, 6);
    let series = "wstime_upgrades_refused_total{reason=\"store_unavailable\"}";
    assert_eq!(value(&server, series).await, refused as f64, "{statuses:?}");
}

/// `GET /cluster`, parsed.
async fn cluster(server: &TestServer) -> serde_json::Value {
    let mut response =
        within("GET /cluster", awc::Client::default().get(server.http_url("/cluster")).send())
            .await
            .expect("GET /cluster");
    assert_eq!(response.status().as_u16(), 200);
    within("the cluster body", response.json()).await.expect("JSON")
}

/// The names of the instances `server` says are live.
async fn names(server: &TestServer) -> Vec<String> {
    let report = cluster(server).await;
    let instances = report["instances"].as_array().expect("instances").clone();
    instances.iter().map(|i| i["name"].as_str().unwrap().to_owned()).collect()
}

#[actix_web::test]
async fn without_redis_the_cluster_is_the_instance_itself() {
    let server = TestServer::start("alone");
    eventually("a first refresh", || async { !names(&server).await.is_empty() }).await;
    let report = cluster(&server).await;
    assert_eq!(report["answered_by"], "alone");
    assert_eq!(report["shared"], false);
    let me = &report["instances"][0];
    assert_eq!((me["name"].as_str(), me["health"].as_str()), (Some("alone"), Some("ok")));
    assert_eq!(me["address"], format!("http://127.0.0.1:{}", server.port));
    assert_eq!(me["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(value(&server, "wstime_cluster_instances").await, 1.0);
}

#[actix_web::test]
async fn an_instance_answers_its_own_row_as_it_is_now() {
    // Its view of the cluster is taken every 2 s; its own row is not from there, so a page
    // that has just connected sees itself counted, whenever it asks.
    let server = TestServer::start("honest");
    let mut sockets = Vec::new();
    for i in 0..3 {
        let mut socket = server.connect(&format!("/?id=honest-{i}")).await;
        socket.next_tick().await;
        sockets.push(socket);
        let me = &cluster(&server).await["instances"][0];
        assert_eq!(me["connections"], i + 1, "right after socket {i} opened: {me}");
        assert_eq!(me["refreshed_ms_ago"], 0, "{me}");
    }
}

#[actix_web::test]
async fn the_registry_shows_instances_appear_drain_and_vanish() {
    let redis = Redis::start(false).expect("start redis-server");
    let with =
        |name: &str| TestServer::builder().env("REDIS_URL", redis.url()).env("SERVER_NAME", name);
    let steady = with("registry-steady").start();
    let mut drained = with("registry-drained").env("DRAIN_GRACE_SECS", "30").start();
    let mut killed = with("registry-killed").start_process();
    let everyone = ["registry-drained", "registry-killed", "registry-steady"];
    for server in [&steady, &drained, &killed] {
        eventually("every instance in every view", || async { names(server).await == everyone })
            .await;
    }
    let report = cluster(&steady).await;
    assert_eq!(report["shared"], true);
    let mut _client = killed.connect("/?id=registered").await;
    eventually("the connection to show", || async {
        let report = cluster(&steady).await;
        report["instances"][1]["connections"] == 1
    })
    .await;

    drained.signal("TERM");
    eventually("the drain to show", || async {
        let report = cluster(&steady).await;
        report["instances"][0]["draining"] == true && report["instances"][0]["health"] == "draining"
    })
    .await;

    killed.signal("KILL");
    let killed_at = Instant::now();
    eventually("the killed instance to vanish", || async {
        !names(&steady).await.contains(&"registry-killed".to_owned())
    })
    .await;
    // Its entry lives 6 s past its last refresh, every 2 s: gone within about 8 s.
    assert!(killed_at.elapsed() < Duration::from_secs(10), "{:?}", killed_at.elapsed());
    // Each instance answers from its own last refresh: the drained one agrees within one.
    let survivors = ["registry-drained", "registry-steady"];
    eventually("the same answer from the drained instance", || async {
        names(&drained).await == survivors
    })
    .await;
}

#[actix_web::test]
async fn protocol_errors_idle_peers_and_drain_closes_are_counted_by_code() {
    let mut server = TestServer::builder()
        .env("PING_INTERVAL_SECS", "0.5")
        .env("IDLE_TIMEOUT_SECS", "1.5")
        .env("DRAIN_GRACE_SECS", "0")
        .env("DRAIN_WINDOW_SECS", "30")
        .start();
    // An unmasked frame from a client breaks the protocol: 1002.
    let request = crate::helpers::handshake_request(
        server.port,
        "/?id=unmasked",
        &crate::helpers::good_handshake_headers("websocket"),
    );
    let (response, mut stream) =
        crate::helpers::raw_exchange(server.port, request.as_bytes()).await;
    assert_eq!(response.status, 101);
    tokio::io::AsyncWriteExt::write_all(&mut stream, &[0x81, 0x02, b'h', b'i']).await.unwrap();
    reaches(&server, "wstime_server_closes_total{code=\"1002\"}", 1.0).await;
    // A peer that never answers a ping: 1001.
    let mut silent = server.connect("/?id=silent").await;
    silent.next_tick().await;
    reaches(&server, "wstime_server_closes_total{code=\"1001\"}", 1.0).await;
    drop(silent);

    // The drain closes ten sockets over 30 s: the first close is counted while the others
    // (and the server) are still there.
    let mut clients = server.open_ticking("drained", 10).await;
    server.signal("TERM");
    let first_closed = futures_util::future::select_all(
        clients.iter_mut().map(|client| Box::pin(client.expect_close())),
    );
    assert_eq!(within("the first drain close", first_closed).await.0, Some(1012));
    reaches(&server, "wstime_server_closes_total{code=\"1012\"}", 1.0).await;
}
