//! The WebSocket endpoint: upgrades, ids, ticks, client frames, vanishing clients.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use tokio_tungstenite::tungstenite::{protocol::frame::coding::CloseCode, Message};

use crate::helpers::{code, eventually, raw_upgrade, TestServer};

#[actix_web::test]
async fn upgrades_on_root_and_ws_whatever_the_header_case() {
    let server = TestServer::start("upgrade-paths");
    for path in ["/", "/ws", "/?id=abc", "/ws?id=abc"] {
        for header in ["websocket", "WebSocket", "WEBSOCKET"] {
            let (status, _) = raw_upgrade(server.port, path, header).await;
            assert_eq!(status, 101, "GET {path} with Upgrade: {header}");
        }
    }
}

#[actix_web::test]
async fn ticks_say_the_posts_words_from_zero_once_a_second() {
    let server = TestServer::start("tick-cadence");
    let mut client = server.connect("/?id=cadence").await;
    // The clock starts when the socket is open: that is when the first tick is due.
    let opened = Instant::now();

    let (name, first) = client.next_tick().await;
    assert_eq!((name.as_str(), first), ("tick-cadence", 0));
    assert!(opened.elapsed() < Duration::from_millis(900), "the first tick comes at open");

    for expected in 1..=3 {
        let (name, seconds) = client.next_tick().await;
        assert_eq!((name.as_str(), seconds), ("tick-cadence", expected));
    }
    // Four ticks, the first at open: three intervals of one second (generous bounds).
    let elapsed = opened.elapsed();
    assert!(elapsed >= Duration::from_millis(2_700), "ticks came too fast: {elapsed:?}");
    assert!(elapsed < Duration::from_millis(4_500), "ticks came too slowly: {elapsed:?}");
}

#[actix_web::test]
async fn an_unnamed_server_picks_an_adjective_animal_name() {
    let server = TestServer::builder().start();
    let words: Vec<&str> = server.name.split('-').collect();
    assert_eq!(words.len(), 2, "{:?}", server.name);
    assert!(words.iter().all(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase())));
    let mut client = server.connect("/").await;
    assert_eq!(client.next_tick().await.0, server.name);
}

#[actix_web::test]
async fn ticks_arrive_as_exact_text() {
    let server = TestServer::start("exact-text");
    let mut client = server.connect("/ws").await;
    assert_eq!(
        client.next_event().await,
        crate::helpers::Event::Text("exact-text: you have been connected for 0 seconds".into())
    );
}

/// An id is a bearer token for its count: the log names a connection by its id's hash (the
/// first eight hex digits of its SHA-256), never by the id.
#[actix_web::test]
async fn connections_are_logged_by_their_ids_hash_and_missing_ids_assigned() {
    let mut server = TestServer::builder().env("SERVER_NAME", "ids-logged").start_process();
    let _named = server.connect("/?id=Robert_Zhu-42").await;
    // printf %s Robert_Zhu-42 | sha256sum | cut -c1-8
    let line = server.wait_for_log("Client connected with ID hash ");
    assert!(line.ends_with("Client connected with ID hash 03eb3a70"), "{line}");

    let mut anonymous = server.connect("/").await;
    assert_eq!(anonymous.next_tick().await.1, 0);
    let line = server.wait_for_log_where("the assigned id's line", |line| {
        line.contains("Client connected with ID hash ") && !line.ends_with("03eb3a70")
    });
    let hash = line.rsplit(' ').next().unwrap();
    assert!(hash.len() == 8 && hash.chars().all(|c| c.is_ascii_hexdigit()), "{line}");
}

#[actix_web::test]
async fn invalid_ids_get_400_with_a_reason_and_no_upgrade() {
    let server = TestServer::start("ids-refused");
    let too_long = "x".repeat(65);
    for (query, reason) in [
        ("?id=", "empty"),
        (&*format!("?id={too_long}"), "65 characters"),
        ("?id=a%20b", "' '"),
        ("?id=%C3%A9", "'é'"),
        ("?id=a/b", "'/'"),
    ] {
        for path in ["/", "/ws"] {
            let (status, body) =
                raw_upgrade(server.port, &format!("{path}{query}"), "websocket").await;
            assert_eq!(status, 400, "{path}{query}");
            assert!(body.contains(reason), "{path}{query}: {body:?} should mention {reason}");
        }
    }
    assert_eq!(server.live_connections().await, 0);
}

#[actix_web::test]
async fn pings_are_answered_and_other_frames_ignored() {
    let server = TestServer::start("frames");
    let mut client = server.connect("/?id=frames").await;
    assert_eq!(client.next_tick().await.1, 0);
    client.send(Message::Text("hello".into())).await;
    client.send(Message::Binary(vec![1, 2, 3].into())).await;
    client.send(Message::Ping(b"are you there".to_vec().into())).await;
    let pong = loop {
        match crate::helpers::within("a pong", futures_util::StreamExt::next(&mut client.socket))
            .await
        {
            Some(Ok(Message::Pong(payload))) => break payload,
            Some(Ok(Message::Text(_))) => continue,
            other => panic!("expected a pong, got {other:?}"),
        }
    };
    assert_eq!(&pong[..], b"are you there");
    assert_eq!(client.next_tick().await.0, "frames", "still ticking after ignored frames");
}

#[actix_web::test]
async fn oversized_frames_close_with_1009() {
    let server = TestServer::start("oversized");
    let mut client = server.connect("/?id=big").await;
    client.send(Message::Text("a".repeat(4000).into())).await;
    assert_eq!(client.next_tick().await.1, 0, "a frame under the limit is ignored");
    client.send(Message::Text("a".repeat(5000).into())).await;
    assert_eq!(client.expect_close().await, Some(code(CloseCode::Size)));
}

#[actix_web::test]
async fn vanished_clients_leave_nothing_behind() {
    let server = TestServer::start("vanishing");
    let mut clients = join_all((0..50).map(|i| {
        let server = &server;
        async move { server.connect(&format!("/?id=vanish-{i}")).await }
    }))
    .await;
    for client in &mut clients {
        assert_eq!(client.next_tick().await.1, 0);
    }
    assert_eq!(server.live_connections().await, 50);

    // Drop without a close handshake: the TCP connections just go away.
    drop(clients);
    eventually("the live count to return to 0", || async { server.live_connections().await == 0 })
        .await;
}

#[actix_web::test]
async fn a_silent_peer_is_dropped_after_the_idle_timeout() {
    let server = TestServer::builder()
        .env("PING_INTERVAL_SECS", "0.5")
        .env("IDLE_TIMEOUT_SECS", "1.5")
        .start();
    // The silent client reads one tick and then nothing: it never answers a ping.
    let mut silent = server.connect("/?id=silent").await;
    assert_eq!(silent.next_tick().await.1, 0);
    // The lively one keeps reading, so tungstenite answers every ping with a pong.
    let mut lively = server.connect("/?id=lively").await;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        lively.next_tick().await;
    }
    assert_eq!(server.live_connections().await, 1, "only the silent peer was dropped");
    assert!(matches!(silent.expect_close().await, Some(1001) | None));
    lively.next_tick().await;
}
