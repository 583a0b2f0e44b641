//! Starting and stopping: signals, and the mistakes a person can make at start-up.

use std::{process::Command, time::Duration};

use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::helpers::{code, TestServer};

#[actix_web::test]
async fn sigterm_closes_sockets_with_1012_and_exits_zero() {
    for signal in ["TERM", "INT"] {
        let mut server = TestServer::start("stopping");
        let mut client = server.connect("/?id=stopping").await;
        assert_eq!(client.next_tick().await.1, 0);
        server.signal(signal);
        assert_eq!(client.expect_close().await, Some(code(CloseCode::Restart)), "SIG{signal}");
        let status = server.wait_exit(Duration::from_secs(10));
        assert_eq!(status.code(), Some(0), "SIG{signal}");
    }
}

/// Runs the binary with `env` and returns (exit code, stderr).
fn run_failing(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let dist = tempfile::tempdir().unwrap();
    crate::helpers::fake_dist(dist.path());
    let output = Command::new(env!("CARGO_BIN_EXE_wstime-server"))
        .env_clear()
        .env("BIND", "127.0.0.1")
        .env("STATIC_DIR", dist.path())
        .envs(env.iter().copied())
        .output()
        .expect("run wstime-server");
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

fn assert_one_line_error(stderr: &str, needle: &str) {
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got {stderr:?}");
    assert!(lines[0].contains(needle), "{stderr:?} should mention {needle:?}");
    assert!(!stderr.contains("panicked"), "{stderr:?}");
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
fn bad_values_are_one_line_errors() {
    for (key, value, needle) in [
        ("PORT", "eighty", "--port"),
        ("PORT", "70000", "--port"),
        ("BIND", "localhost:80", "--bind"),
        ("SERVER_NAME", " ", "server name"),
    ] {
        let (status, stderr) = run_failing(&[(key, value)]);
        assert_eq!(status, Some(2), "{key}={value}");
        assert_one_line_error(&stderr, needle);
    }
}
