//! The `wstime-server` binary: parse the configuration, start, run until a signal.

use std::process::ExitCode;

/// jemalloc keeps each size class in its own page-aligned slabs, so the 8 KiB buffers
/// actix-http allocates per connection stay mostly untouched (and not resident), instead
/// of sharing pages with small allocations as glibc's malloc arranges them.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use wstime_protocol::ready::Ready;
use wstime_server::{
    shutdown::{self, Stopped},
    Application, Config,
};

fn main() -> ExitCode {
    let config = match Config::from_env_and_args() {
        Ok(config) => config,
        Err(exit) => return exit,
    };
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // The redis crate's cluster client warns of every failed reconnect to a node, several a
    // second while one is down; the session store says once that Redis is lost and why.
    // A RUST_LOG that names redis still gets them.
    if !std::env::var("RUST_LOG").is_ok_and(|filter| filter.contains("redis")) {
        filter = filter.add_directive("redis=error".parse().expect("a valid directive"));
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();

    let ready_file = config.ready_file.clone();
    actix_web::rt::System::new().block_on(async move {
        let app = match Application::build(config).await {
            Ok(app) => app,
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::FAILURE;
            }
        };
        if let Some(path) = ready_file {
            let ready =
                Ready { port: app.port(), name: app.name().to_owned(), pid: std::process::id() };
            if let Err(error) = ready.write(&path) {
                eprintln!("error: cannot write READY_FILE {}: {error}", path.display());
                return ExitCode::FAILURE;
            }
        }
        let signals = match shutdown::signals() {
            Ok(signals) => signals,
            Err(error) => {
                eprintln!("error: cannot listen for SIGINT/SIGTERM: {error}");
                return ExitCode::FAILURE;
            }
        };
        match app.run_until(signals).await {
            Ok(Stopped::Drained) => ExitCode::SUCCESS,
            Ok(Stopped::Forced(signal)) => ExitCode::from(signal.exit_code()),
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::FAILURE
            }
        }
    })
}
