//! The page: trunk's output in the static directory, served as it was built. Nothing is
//! compressed per request: the build left brotli and gzip copies of the hashed assets
//! beside them (scripts/precompress.sh), and [`hashed`] picks one for each request.
//!
//! Three kinds of file, three caching rules:
//! - `index.html` (also at `/`) names the hashed assets of the build it came with, so
//!   browsers must ask again each time (`no-cache`: revalidated with its ETag, a `304`
//!   when unchanged) to see a new deploy.
//! - A hashed asset ([`hashed::is_hashed`]) never changes under its name: cached for a
//!   year, `immutable`.
//! - Anything else is served by actix-files as it comes, without a cache rule.

mod hashed;
mod negotiate;

use std::{path::Path, sync::Arc};

use actix_files::NamedFile;
use actix_web::{
    dev::HttpServiceFactory,
    guard,
    http::header::{HeaderValue, CACHE_CONTROL},
    web, HttpRequest, HttpResponse,
};

/// The page's entry point, in the static directory.
const INDEX: &str = "index.html";

/// Serves `static_dir` at `/`, `index.html` for `/`. WebSocket upgrades never come here
/// (actix-http hands them to [`crate::upgrade`] first), so no body of theirs could pass
/// through anything of the page's.
pub fn files(static_dir: &Path) -> impl HttpServiceFactory {
    let dir: Arc<Path> = Arc::from(static_dir);
    let index_dir = Arc::clone(&dir);
    let assets_dir = Arc::clone(&dir);
    web::scope("")
        .service(web::resource(["/", "/index.html"]).route(read().to(move |req| {
            let dir = Arc::clone(&index_dir);
            async move { index(req, &dir).await }
        })))
        .service(
            web::resource("/{asset}")
                .guard(guard::fn_guard(|ctx| {
                    hashed::is_hashed(ctx.head().uri.path().trim_start_matches('/'))
                }))
                .route(read().to(move |req| {
                    let dir = Arc::clone(&assets_dir);
                    async move { hashed::serve(req, &dir).await }
                })),
        )
        // actix-files keeps every request inside the directory (`..` and hidden files are
        // refused) and answers 405 to what is neither GET nor HEAD, as here.
        .service(actix_files::Files::new("/", &*dir))
}

/// GET or HEAD: what reading a file takes.
fn read() -> actix_web::Route {
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

/// `index.html`, to be revalidated on every visit.
async fn index(req: HttpRequest, dir: &Path) -> actix_web::Result<HttpResponse> {
    let file = NamedFile::open_async(dir.join(INDEX)).await?;
    let mut response = file.into_response(&req);
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}
