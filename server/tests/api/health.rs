//! The deep health check: load, thresholds with hysteresis, the hard connection limit.

use tokio_tungstenite::tungstenite;

use crate::helpers::{eventually, raw_upgrade, Client, TestServer};

async fn open(server: &TestServer, id: &str) -> Client {
    let mut client = server.connect(&format!("/?id={id}")).await;
    client.next_tick().await;
    client
}

/// Drops the newest client and waits until the server has let go of it.
async fn close_one(server: &TestServer, clients: &mut Vec<Client>) {
    clients.pop();
    let expected = clients.len() as u64;
    eventually("the server to count the closed socket", || async {
        server.live_connections().await == expected
    })
    .await;
}

#[actix_web::test]
async fn fails_at_the_threshold_and_recovers_only_below_the_lower_one() {
    let server = TestServer::builder().env("MAX_CONNECTIONS", "10").start();
    let mut clients = Vec::new();
    for i in 0..5 {
        clients.push(open(&server, &format!("h{i}")).await);
        assert_eq!(server.plain_health().await, (200, "ok".into()), "{} sockets", i + 1);
    }
    clients.push(open(&server, "h5").await);
    assert_eq!(server.plain_health().await, (503, "server is overloaded".into()), "6 of 10");
    // Liveness is not capacity: a full instance must not be restarted by a liveness probe.
    let live = awc::Client::default().get(server.http_url("/livez"));
    let live = crate::helpers::within("the liveness check", live.send()).await.unwrap();
    assert_eq!(live.status().as_u16(), 200, "alive while overloaded");

    close_one(&server, &mut clients).await;
    assert_eq!(server.plain_health().await.0, 503, "5 of 10 is not below the recovery threshold");
    close_one(&server, &mut clients).await;
    assert_eq!(server.plain_health().await, (200, "ok".into()), "4 of 10 is below it");
}

#[actix_web::test]
async fn the_json_form_gives_the_details() {
    let server = TestServer::builder()
        .env("SERVER_NAME", "detailed")
        .env("MAX_CONNECTIONS", "10")
        .env("HEALTHY_BELOW", "0.8")
        .env("RECOVER_BELOW", "0.7")
        .start();
    let _clients = [open(&server, "j1").await, open(&server, "j2").await];
    let report = server.health().await;
    assert_eq!(report["name"], "detailed");
    assert_eq!(report["status"], "ok");
    assert_eq!(report["connections"], 2);
    assert_eq!(report["max_connections"], 10);
    assert_eq!(report["load"], 0.2);
    assert_eq!(report["healthy_below"], 0.8);
    assert_eq!(report["recover_below"], 0.7);
    assert_eq!(report["network_capacity_bps"], serde_json::Value::Null);
    assert_eq!(report["store"]["kind"], "memory");
    assert_eq!(report["store"]["reachable"], true);
    assert_eq!(report["draining"], false);
    assert!(report["uptime_secs"].is_u64());
    assert!(report["outbound_bps"].is_u64());
}

#[actix_web::test]
async fn at_the_hard_limit_upgrades_get_503_with_retry_after_and_open_sockets_tick_on() {
    let server = TestServer::builder().env("MAX_CONNECTIONS", "3").start();
    let mut clients =
        vec![open(&server, "l1").await, open(&server, "l2").await, open(&server, "l3").await];

    let refused = tokio_tungstenite::connect_async(server.ws_url("/?id=l4")).await;
    match refused {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503);
            assert_eq!(response.headers().get("retry-after").unwrap(), "5");
        }
        other => panic!("expected 503, got {:?}", other.map(|_| "an upgrade")),
    }
    for client in &mut clients {
        client.next_tick().await;
    }
    close_one(&server, &mut clients).await;
    open(&server, "l4").await;
}

#[actix_web::test]
async fn outbound_traffic_counts_as_load_when_a_capacity_is_set() {
    // Three sockets send about 3 × 56 bytes a second: over half of 200 bytes per second.
    let server = TestServer::builder()
        .env("SERVER_NAME", "chatty")
        .env("NETWORK_CAPACITY_BPS", "200")
        .env("MAX_CONNECTIONS", "1000")
        .start();
    let mut clients =
        vec![open(&server, "n1").await, open(&server, "n2").await, open(&server, "n3").await];
    // The rate is sampled once a second; reading ticks keeps the clients' buffers drained.
    let mut rounds = 0;
    while server.plain_health().await.0 != 503 {
        rounds += 1;
        assert!(rounds < 10, "the traffic never counted as load: {}", server.health().await);
        for client in &mut clients {
            client.next_tick().await;
        }
    }
    let report = server.health().await;
    assert!(report["outbound_bps"].as_u64().unwrap() >= 120, "{report}");
    assert!(report["load"].as_f64().unwrap() >= 0.6, "{report}");
}

#[actix_web::test]
async fn refused_upgrades_say_why_in_plain_text() {
    let server = TestServer::builder().env("MAX_CONNECTIONS", "1").start();
    let _only = open(&server, "only").await;
    let (status, body) = raw_upgrade(server.port, "/?id=second", "websocket").await;
    assert_eq!(status, 503);
    assert!(body.contains("connection limit"), "{body:?}");
}
