//! The page and the health check, served on the same port as the WebSocket.

use crate::helpers::{within, TestServer};

async fn get(
    server: &TestServer,
    path: &str,
    encoding: Option<&str>,
) -> awc::ClientResponse<
    impl futures_util::Stream<Item = Result<actix_web::web::Bytes, awc::error::PayloadError>>,
> {
    let client = awc::Client::default();
    let mut request = client.get(server.http_url(path)).no_decompress();
    if let Some(encoding) = encoding {
        request = request.insert_header(("Accept-Encoding", encoding));
    }
    within("an HTTP response", request.send()).await.expect("HTTP request")
}

#[actix_web::test]
async fn serves_the_page_at_the_root() {
    let server = TestServer::start("page-root");
    let mut response = get(&server, "/", None).await;
    assert_eq!(response.status(), 200);
    let body = within("the body", response.body()).await.unwrap();
    assert!(String::from_utf8_lossy(&body).contains("wstime test page"));
}

#[actix_web::test]
async fn serves_wasm_with_its_mime_type() {
    let server = TestServer::start("page-wasm");
    let response = get(&server, "/wstime-frontend_bg.wasm", None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers().get("content-type").unwrap(), "application/wasm");
}

#[actix_web::test]
async fn compresses_when_the_client_accepts_it() {
    let server = TestServer::start("page-gzip");
    for (path, accept, expected) in
        [("/", "gzip", "gzip"), ("/wstime-frontend_bg.wasm", "br", "br")]
    {
        let response = get(&server, path, Some(accept)).await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers().get("content-encoding").map(|v| v.to_str().unwrap()),
            Some(expected),
            "{path} with Accept-Encoding: {accept}"
        );
    }
}

#[actix_web::test]
async fn missing_files_are_404() {
    let server = TestServer::start("page-404");
    assert_eq!(get(&server, "/no-such-file.js", None).await.status(), 404);
}

#[actix_web::test]
async fn health_check_answers_in_text_and_json() {
    let server = TestServer::start("health-basic");
    let mut response = get(&server, "/healthcheck", None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(within("the body", response.body()).await.unwrap(), "ok");

    let report = server.health().await;
    assert_eq!(report["name"], "health-basic");
    assert_eq!(report["status"], "ok");
    assert_eq!(report["connections"], 0);
}
