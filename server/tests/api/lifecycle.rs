//! Starting and stopping: signals, and the mistakes a person can make at start-up.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use wstime_cluster::Redis;
use wstime_protocol::ClientId;

use crate::helpers::{
    assert_one_line_error, code, raw_upgrade, run_failing, Client, Event, TestServer,
};

/// Reads from `client` until it is closed; returns (ticks seen, close code, when closed).
async fn ticks_until_closed(mut client: Client) -> (Vec<u64>, Option<u16>, Instant) {
    let mut ticks = Vec::new();
    loop {
        match client.next_event().await {
            Event::Text(text) => ticks.push(wstime_protocol::Tick::parse(&text).unwrap().seconds),
            Event::Closed(code) => return (ticks, code, Instant::now()),
        }
    }
}

#[actix_web::test]
async fn sigterm_drains_health_first_then_spread_1012s_then_exit_zero() {
    let grace = Duration::from_secs(3);
    let window = Duration::from_secs(2);
    let mut server =
        TestServer::builder().env("DRAIN_GRACE_SECS", "3").env("DRAIN_WINDOW_SECS", "2").start();
    let clients = server.open_ticking("drain", 10).await;

    let signalled = Instant::now();
    server.signal("TERM");
    let readers = actix_web::rt::spawn(join_all(clients.into_iter().map(ticks_until_closed)));
    let (status, body) = server.plain_health().await;
    assert_eq!((status, body.as_str()), (503, "draining"), "503 at once");
    let live = awc::Client::default().get(server.http_url("/livez"));
    let live = crate::helpers::within("the liveness check", live.send()).await.unwrap();
    assert_eq!(live.status().as_u16(), 200, "a draining instance is alive: no restart");
    let (status, refusal) = raw_upgrade(server.port, "/?id=latecomer", "websocket").await;
    assert_eq!(status, 503, "no new sockets while draining: {refusal}");
    assert!(!readers.is_finished(), "health turned 503 while every socket was still open");

    let results = readers.await.unwrap();
    let closes: Vec<Duration> = results.iter().map(|(_, _, at)| *at - signalled).collect();
    for (ticks, code, _) in &results {
        assert_eq!(*code, Some(1012));
        assert!(ticks.len() >= 2, "ticks went on during the grace period: {ticks:?}");
    }
    let first = *closes.iter().min().unwrap();
    let last = *closes.iter().max().unwrap();
    // The server sleeps the whole grace after hearing the signal, sent after `signalled`.
    assert!(first >= grace, "none closed before the grace ended: {first:?}");
    // Generous: the pacing itself is tested on a paused clock (worker's tests).
    assert!(last <= grace + window + Duration::from_secs(5), "within the window: {last:?}");
    assert!(last - first >= Duration::from_millis(300), "closes were spread: {closes:?}");

    let code = server.wait_exit(grace + window + Duration::from_secs(10));
    assert_eq!(code, Some(0));
}

#[actix_web::test]
async fn drained_clients_resume_on_another_instance_with_their_count() {
    let redis = Redis::start(false).expect("start redis-server");
    let mut draining = TestServer::builder()
        .env("REDIS_URL", redis.url())
        .env("DRAIN_GRACE_SECS", "1")
        .env("DRAIN_WINDOW_SECS", "1")
        .start();
    let survivor = TestServer::builder().env("REDIS_URL", redis.url()).start();
    let clients = draining.open_ticking("moving", 5).await;
    draining.signal("TERM");
    for (i, client) in clients.into_iter().enumerate() {
        let (ticks, code, _) = ticks_until_closed(client).await;
        assert_eq!(code, Some(1012));
        let last = *ticks.last().expect("ticks before the close");
        let mut resumed = survivor.connect(&format!("/?id=moving-{i}")).await;
        let (name, first) = resumed.next_tick().await;
        assert_eq!(name, survivor.name);
        assert!(first > last && first <= last + 3, "client {i}: {first} after {last}");
    }
}

#[actix_web::test]
async fn a_second_signal_exits_at_once() {
    let mut server = TestServer::builder().env("DRAIN_GRACE_SECS", "30").start_process();
    let _client = server.connect("/?id=impatient").await;
    server.signal("TERM");
    server.wait_for_log("draining");
    let again = Instant::now();
    server.signal("TERM");
    let status = server.wait_exit(Duration::from_secs(5));
    assert!(again.elapsed() < Duration::from_secs(3), "exited at once, not after the grace");
    assert_eq!(status, Some(143));
}

#[actix_web::test]
async fn sigterm_closes_sockets_with_1012_and_exits_zero() {
    for signal in ["TERM", "INT"] {
        let mut server = TestServer::builder()
            .env("DRAIN_GRACE_SECS", "0")
            .env("DRAIN_WINDOW_SECS", "0")
            .start_process();
        let mut client = server.connect("/?id=stopping").await;
        assert_eq!(client.next_tick().await.1, 0);
        server.signal(signal);
        assert_eq!(client.expect_close().await, Some(code(CloseCode::Restart)), "SIG{signal}");
        let status = server.wait_exit(Duration::from_secs(10));
        assert_eq!(status, Some(0), "SIG{signal}");
    }
}

#[test]
fn a_port_in_use_is_a_one_line_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let (status, stderr) = run_failing(&[("PORT", &port)]);
    assert_ne!(status, Some(0));
    assert_one_line_error(&stderr, "already in use");
}

#[test]
fn a_missing_page_says_to_build_it() {
    let (status, stderr) = run_failing(&[("PORT", "0"), ("STATIC_DIR", "/nonexistent/dist")]);
    assert_ne!(status, Some(0));
    assert_one_line_error(&stderr, "trunk build");
}

#[test]
fn unusable_tls_files_and_a_taken_agent_port_are_one_line_errors() {
    let (status, stderr) =
        run_failing(&[("PORT", "0"), ("TLS_CERT", "/nonexistent/cert.pem"), ("TLS_KEY", "/k.pem")]);
    assert_ne!(status, Some(0));
    assert_one_line_error(&stderr, "TLS_CERT /nonexistent/cert.pem");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let agent = taken.local_addr().unwrap().port().to_string();
    let (status, stderr) = run_failing(&[("PORT", "0"), ("AGENT_PORT", &agent)]);
    assert_ne!(status, Some(0));
    assert_one_line_error(&stderr, "AGENT_PORT");
}

#[test]
fn bad_values_are_one_line_errors() {
    for (key, value, needle) in [
        ("PORT", "eighty", "--port"),
        ("PORT", "70000", "--port"),
        ("BIND", "localhost:80", "--bind"),
        ("SERVER_NAME", " ", "server name"),
        ("REDIS_URL", "http://app:hunter2@127.0.0.1", "REDIS_URL"),
        ("REDIS_URL", "redis-sentinel://app:hunter2@127.0.0.1:26379", "REDIS_URL"),
        ("REDIS_URL", "redis-cluster://app:hunter2@127.0.0.1:7000/1", "REDIS_URL"),
        ("ALLOWED_ORIGINS", "example.com", "--allowed-origins"),
        ("TRUSTED_PROXIES", "10.0.0.0/40", "--trusted-proxies"),
        ("CONNECT_RATE_PER_CLIENT", "fast", "--connect-rate-per-client"),
        ("REBALANCE", "maybe", "--rebalance"),
    ] {
        let (status, stderr) = run_failing(&[(key, value)]);
        assert_eq!(status, Some(2), "{key}={value}");
        assert_one_line_error(&stderr, needle);
        assert!(!stderr.contains("hunter2"), "the password is never printed: {stderr}");
    }
}

#[actix_web::test]
async fn the_last_touches_of_closing_sockets_reach_the_store_before_exit() {
    let redis = Redis::start(false).expect("start redis-server");
    let grace = Duration::from_secs(4);
    let mut server = TestServer::builder()
        .env("REDIS_URL", redis.url())
        .env("RESUME_WINDOW_SECS", "60")
        .env("DRAIN_GRACE_SECS", "4")
        .env("DRAIN_WINDOW_SECS", "0")
        .start();
    let clients = server.open_ticking("last-touch", 50).await;
    let ids: Vec<ClientId> =
        (0..50).map(|i| ClientId::parse(&format!("last-touch-{i}")).unwrap()).collect();
    server.signal("TERM");
    let readers = actix_web::rt::spawn(join_all(clients.into_iter().map(ticks_until_closed)));
    assert_eq!(server.wait_exit(grace + Duration::from_secs(15)), Some(0));
    readers.await.unwrap();

    // Each session's window restarted when its socket closed, at the end of the drain:
    // a minute from then, not from the open, which was more than the grace before.
    let mut connection = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("connect to redis");
    for id in &ids {
        let key = wstime_server::session::redis::session_key(id);
        let left: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut connection).await.unwrap();
        let from_open = (Duration::from_secs(60) - grace).as_millis() as i64;
        assert!(left > from_open + 2_000, "{key} expires in {left} ms: not touched at its close");
    }
}

/// Whether the registry in `redis` holds an entry for `name`.
fn registered(redis: &Redis, name: &str) -> bool {
    let key = "wstime:{cluster}:instances";
    redis.ask(redis::cmd("HEXISTS").arg(key).arg(name)).expect("ask the registry")
}

/// A stop waits for everything the instance started: the registry's last write removes its
/// entry before the process exits (or, in this process, before `run_until` returns), so the
/// cluster does not show a stopped instance for the seconds its entry would take to expire.
/// Redis holds every write for 0.2 s as the stop begins (well within the client's limit of
/// 0.5 s an operation), longer than the rest of a stop with no grace and no window takes.
#[actix_web::test]
async fn a_cleanly_stopped_instance_leaves_no_registry_entry() {
    let redis = Redis::start(false).expect("start redis-server");
    let builder = |name: &str| {
        TestServer::builder()
            .env("REDIS_URL", redis.url())
            .env("SERVER_NAME", name)
            .env("DRAIN_GRACE_SECS", "0")
            .env("DRAIN_WINDOW_SECS", "0")
    };
    let process = builder("stopped-process").start_process();
    let in_process = builder("stopped-in-process").start();
    for mut server in [process, in_process] {
        let name = server.name.clone();
        crate::helpers::eventually("the instance to register", || async {
            registered(&redis, &name)
        })
        .await;
        let _: () = redis.ask(redis::cmd("CLIENT").arg(&["PAUSE", "200", "WRITE"])).unwrap();
        server.signal("TERM");
        assert_eq!(server.wait_exit(Duration::from_secs(15)), Some(0));
        assert!(!registered(&redis, &name), "{name} left its entry behind");
    }
}
