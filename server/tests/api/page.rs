//! The page and the health check, served on the same port as the WebSocket: the hashed
//! assets in the precompressed copy the request accepts, cached for good; `index.html`
//! revalidated; nothing outside the page directory.

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};

use crate::helpers::{fake_file, within, TestServer, HASHED_JS, HASHED_WASM, OUTSIDE_THE_PAGE};

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

/// The value of `name` in `response`'s headers, if any.
fn header<'a, S>(response: &'a awc::ClientResponse<S>, name: &str) -> Option<&'a str> {
    response.headers().get(name).map(|value| value.to_str().expect("a visible header"))
}

#[actix_web::test]
async fn files_that_are_not_hashed_are_sent_as_they_are() {
    let server = TestServer::start("page-wasm");
    let response = get(&server, "/wstime-frontend_bg.wasm", Some("br, gzip")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type"), Some("application/wasm"));
    assert_eq!(header(&response, "content-encoding"), None, "nothing is compressed per request");
    assert_eq!(header(&response, "cache-control"), None);
}

#[actix_web::test]
async fn hashed_assets_are_sent_in_the_best_accepted_precompressed_copy() {
    let server = TestServer::start("page-precompressed");
    let wasm_br = format!("{HASHED_WASM}.br");
    let wasm_gz = format!("{HASHED_WASM}.gz");
    let js_gz = format!("{HASHED_JS}.gz");
    // (asset, Accept-Encoding, the Content-Encoding expected, the file whose bytes come)
    let cases = [
        (HASHED_WASM, Some("gzip, deflate, br, zstd"), Some("br"), wasm_br.as_str()),
        (HASHED_WASM, Some("gzip;q=1, br;q=1"), Some("br"), &wasm_br),
        (HASHED_WASM, Some("gzip"), Some("gzip"), &wasm_gz),
        (HASHED_WASM, Some("br;q=0.5, gzip"), Some("gzip"), &wasm_gz),
        (HASHED_WASM, Some("br;q=0, *"), Some("gzip"), &wasm_gz),
        (HASHED_WASM, Some("br;q=0, gzip;q=0"), None, HASHED_WASM),
        (HASHED_WASM, Some("identity"), None, HASHED_WASM),
        (HASHED_WASM, None, None, HASHED_WASM),
        // No brotli copy: the gzip one, or else the original.
        (HASHED_JS, Some("gzip, br"), Some("gzip"), &js_gz),
        (HASHED_JS, Some("br"), None, HASHED_JS),
    ];
    for (asset, accept, encoding, file) in cases {
        let mut response = get(&server, &format!("/{asset}"), accept).await;
        let case = format!("{asset} with Accept-Encoding: {accept:?}");
        assert_eq!(response.status(), 200, "{case}");
        assert_eq!(header(&response, "content-encoding"), encoding, "{case}");
        let content_type = match asset.ends_with(".wasm") {
            true => "application/wasm",
            false => "text/javascript",
        };
        assert_eq!(header(&response, "content-type"), Some(content_type), "{case}");
        assert_eq!(header(&response, "vary"), Some("accept-encoding"), "{case}");
        assert_eq!(
            header(&response, "cache-control"),
            Some("public, max-age=31536000, immutable"),
            "{case}"
        );
        let body = within("the body", response.body()).await.expect("the body");
        assert_eq!(body, fake_file(file), "{case}: the bytes of {file}");
    }
}

#[actix_web::test]
async fn each_precompressed_copy_answers_conditional_and_range_requests() {
    let server = TestServer::start("page-conditional");
    let path = format!("/{HASHED_WASM}");
    let brotli = get(&server, &path, Some("br")).await;
    let identity = get(&server, &path, None).await;
    let etag = |response| header(response, "etag").expect("an ETag").to_owned();
    let (brotli_tag, identity_tag) = (etag(&brotli), etag(&identity));
    assert_ne!(brotli_tag, identity_tag, "two representations, two ETags");

    let client = awc::Client::default();
    let conditional = |accept: &'static str, tag: &str| {
        client
            .get(server.http_url(&path))
            .insert_header(("Accept-Encoding", accept))
            .insert_header(("If-None-Match", tag.to_owned()))
            .send()
    };
    let unchanged = within("a 304", conditional("br", &brotli_tag)).await.expect("a response");
    assert_eq!(unchanged.status(), 304);
    assert_eq!(header(&unchanged, "vary"), Some("accept-encoding"));
    // The brotli copy's ETag does not validate the gzip copy.
    let other = within("a 200", conditional("gzip", &brotli_tag)).await.expect("a response");
    assert_eq!(other.status(), 200);
    assert_eq!(header(&other, "content-encoding"), Some("gzip"));

    // A range is a slice of the original: a slice of brotli bytes could not be decoded.
    let mut partial = within(
        "a 206",
        client
            .get(server.http_url(&path))
            .insert_header(("Accept-Encoding", "br, gzip"))
            .insert_header(("Range", "bytes=4-15"))
            .send(),
    )
    .await
    .expect("a response");
    assert_eq!(partial.status(), 206);
    assert_ne!(header(&partial, "content-encoding"), Some("br"));
    let body = within("the body", partial.body()).await.expect("the body");
    assert_eq!(body, fake_file(HASHED_WASM)[4..16]);
}

#[actix_web::test]
async fn index_is_revalidated_on_every_visit() {
    let server = TestServer::start("page-index");
    for path in ["/", "/index.html"] {
        let response = get(&server, path, Some("gzip, deflate, br, zstd")).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(header(&response, "cache-control"), Some("no-cache"), "{path}");
        assert_eq!(header(&response, "content-encoding"), None, "{path}");
        assert!(header(&response, "content-type").unwrap().starts_with("text/html"), "{path}");
        let tag = header(&response, "etag").expect("an ETag").to_owned();
        let revalidated = within(
            "a 304",
            awc::Client::default()
                .get(server.http_url(path))
                .insert_header(("If-None-Match", tag))
                .send(),
        )
        .await
        .expect("a response");
        assert_eq!(revalidated.status(), 304, "{path}");
    }
}

#[actix_web::test]
async fn nothing_outside_the_page_directory_is_reachable() {
    let server = TestServer::start("page-outside");
    for target in [
        format!("/../{OUTSIDE_THE_PAGE}"),
        format!("/%2e%2e/{OUTSIDE_THE_PAGE}"),
        format!("/..%2f{OUTSIDE_THE_PAGE}"),
        format!("/dist/../../{OUTSIDE_THE_PAGE}"),
    ] {
        // Sent as bytes: an HTTP client would tidy the dots away before sending.
        let mut stream = within("a connection", TcpStream::connect(("127.0.0.1", server.port)))
            .await
            .expect("connect");
        let request = format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("send the request");
        let mut response = Vec::new();
        within("the response", stream.read_to_end(&mut response)).await.expect("the response");
        let response = String::from_utf8_lossy(&response);
        let status = response.split(' ').nth(1).unwrap_or_default();
        assert!(matches!(status, "400" | "404"), "{target}: {response}");
        assert!(!response.contains("not part of the page"), "{target}: {response}");
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
