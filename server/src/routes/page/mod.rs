//! The page: trunk's output served from the static directory, compressed.

use std::path::Path;

use actix_web::{dev::HttpServiceFactory, middleware::Compress, web};

/// Serves `static_dir` at `/` with `index.html` for `/`. Compression wraps only the files:
/// the WebSocket routes must never pass through a body encoder.
pub fn files(static_dir: &Path) -> impl HttpServiceFactory {
    web::scope("")
        .wrap(Compress::default())
        .service(actix_files::Files::new("/", static_dir).index_file("index.html"))
}
