//! trunk's hashed assets (`wstime-frontend-c43895c218e78068_bg.wasm`, `….js`,
//! `style-….css`): sent as the build precompressed them, and cached for good.

use std::path::Path;

use actix_files::NamedFile;
use actix_web::{
    http::{
        header::{AcceptEncoding, HeaderValue, CACHE_CONTROL, RANGE, VARY},
        StatusCode,
    },
    HttpMessage as _, HttpRequest, HttpResponse,
};

use super::negotiate::{self, Coding};

/// What a hashed asset's name ends with: what trunk hashes.
const EXTENSIONS: [&str; 3] = ["wasm", "js", "css"];

/// The fewest hex digits taken for a hash. trunk writes its 64-bit hash with `{:x}`, so
/// without leading zeros: one name in 2^32 has fewer than 8, and that one is merely served
/// as an unhashed file (no year of caching), never wrongly cached.
const MIN_HASH_DIGITS: usize = 8;

/// Whether `name` (one path segment) is a file trunk named by its content:
/// `<stem>-<hex hash>[_bg].<wasm|js|css>`. Such a name never serves other bytes, so a
/// browser may keep it for a year without asking; and it has no `/`, `.`-start or `%`, so
/// it cannot name anything outside the directory.
pub fn is_hashed(name: &str) -> bool {
    let Some((stem, extension)) = name.rsplit_once('.') else { return false };
    let stem = stem.strip_suffix("_bg").unwrap_or(stem);
    let Some((base, hash)) = stem.rsplit_once('-') else { return false };
    EXTENSIONS.contains(&extension)
        && !base.is_empty()
        && base.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && (MIN_HASH_DIGITS..=16).contains(&hash.len())
        && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Sends the hashed asset the route matched: its brotli or gzip copy when the request
/// accepts one and the build made it (`<name>.br`, `<name>.gz`), else the file itself.
///
/// Each copy is a file of its own to actix-files, with its own ETag and Last-Modified, so
/// conditional requests work for every variant, and a cache that holds the brotli bytes
/// never gets a `304` meant for the gzip ones. The headers of the original are kept:
/// `Content-Type` (`application/wasm`, which browsers' streaming compilation requires) and
/// `Content-Disposition`. A `Range` request gets the original: actix-files marks a
/// partial response `Content-Encoding: identity` whenever the request names an
/// encoding, which would be false for a slice of a brotli file.
pub async fn serve(req: HttpRequest, dir: &Path) -> actix_web::Result<HttpResponse> {
    let name = req.match_info().query("asset");
    let original = NamedFile::open_async(dir.join(name)).await?;
    let codings = match req.headers().contains_key(RANGE) {
        true => Vec::new(),
        false => negotiate::acceptable(req.get_header::<AcceptEncoding>().as_ref()),
    };
    for coding in codings {
        let copy = dir.join(format!("{name}.{}", coding.suffix()));
        if let Ok(copy) = NamedFile::open_async(copy).await {
            return Ok(cached(encoded(copy, &original, coding), &req));
        }
    }
    Ok(cached(original, &req))
}

/// The response for `file`, which varies with `Accept-Encoding` and, once sent, never goes
/// stale. (A refusal, such as a `416` to a range past the end, is not cached.)
fn cached(file: NamedFile, req: &HttpRequest) -> HttpResponse {
    let mut response = file.into_response(req);
    let sent = response.status().is_success() || response.status() == StatusCode::NOT_MODIFIED;
    let headers = response.headers_mut();
    headers.insert(VARY, HeaderValue::from_static("accept-encoding"));
    if sent {
        let forever = HeaderValue::from_static("public, max-age=31536000, immutable");
        headers.insert(CACHE_CONTROL, forever);
    }
    response
}

/// `copy` (the bytes in `coding`) described as `original` is.
fn encoded(copy: NamedFile, original: &NamedFile, coding: Coding) -> NamedFile {
    copy.set_content_type(original.content_type().clone())
        .set_content_disposition(original.content_disposition().clone())
        .set_content_encoding(coding.content_encoding())
}

#[cfg(test)]
mod tests {
    use super::is_hashed;

    #[test]
    fn trunks_names_are_hashed() {
        for name in [
            "wstime-frontend-c43895c218e78068_bg.wasm",
            "wstime-frontend-c43895c218e78068.js",
            "style-1597def12bbb7cbb.css",
            "style-1597def12.css",
        ] {
            assert!(is_hashed(name), "{name}");
        }
    }

    #[test]
    fn other_names_are_not() {
        for name in [
            "index.html",
            "wstime-frontend_bg.wasm",
            "style-1597def12bbb7cbb.css.br",
            "style-1597def12bbb7cbb.html",
            "style-1597DEF12BBB7CBB.css",
            "style-1597.css",
            "style-1597def12bbb7cbb0.css",
            "-1597def12bbb7cbb.css",
            "../x-1597def12bbb7cbb.css",
            "..%2fx-1597def12bbb7cbb.css",
            ".x-1597def12bbb7cbb.css",
        ] {
            assert!(!is_hashed(name), "{name}");
        }
    }
}
