//! Start-up and shutdown: bind the one port, wire the app, run until told to stop.

use std::{future::Future, io, net::TcpListener, path::PathBuf, time::Duration};

use actix_web::{dev::Server, web, App, HttpServer};

use crate::{routes, state::AppState, Config};

/// Why the server could not start. Each message says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("{addr} is already in use: stop the other process or choose another port with --port / PORT")]
    PortInUse { addr: String },
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: io::Error },
    #[error("{index} not found: build the page first with `trunk build --release` (or `make run`), or point STATIC_DIR at a built page")]
    MissingPage { index: PathBuf },
    #[error("cannot start the HTTP server: {0}")]
    Server(#[source] io::Error),
}

/// A server that is bound and ready to run.
pub struct Application {
    server: Server,
    port: u16,
    state: AppState,
}

/// How long shutdown waits for sockets to finish their close handshake before it stops the
/// HTTP server regardless: a peer that never answers must not hold the process up.
const CLOSE_HANDSHAKE_LIMIT: Duration = Duration::from_secs(2);

impl Application {
    /// Checks the page is built, binds the port and builds the server, without running it.
    pub fn build(config: Config) -> Result<Self, StartupError> {
        let index = config.static_dir.join("index.html");
        if !index.is_file() {
            return Err(StartupError::MissingPage { index });
        }

        let addr = std::net::SocketAddr::new(config.bind, config.port);
        let listener = TcpListener::bind(addr).map_err(|source| match source.kind() {
            io::ErrorKind::AddrInUse => StartupError::PortInUse { addr: addr.to_string() },
            _ => StartupError::Bind { addr: addr.to_string(), source },
        })?;
        let port = listener.local_addr().map_err(StartupError::Server)?.port();

        let name = config.server_name.clone().unwrap_or_else(random_name);
        tracing::info!("This server is named: {name}");
        let state = AppState::new(&name);

        let app_state = web::Data::new(state.clone());
        let static_dir = config.static_dir.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .configure(|cfg| routes::configure(cfg, &static_dir))
        })
        // Signals are ours: shutdown closes the sockets first (see `run_until`).
        .disable_signals()
        .shutdown_timeout(CLOSE_HANDSHAKE_LIMIT.as_secs())
        .listen(listener)
        .map_err(StartupError::Server)?
        .run();

        tracing::info!("Server listening on port {port}");
        Ok(Self { server, port, state })
    }

    /// The port actually bound (useful with `--port 0`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown` completes, then closes every socket and stops.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let Self { server, state, .. } = self;
        let handle = server.handle();
        let server_task = actix_web::rt::spawn(server);

        shutdown.await;
        tracing::info!(
            connections = state.live_connections(),
            "shutting down: closing every WebSocket"
        );
        state.shutdown.cancel();
        state.connections.close();
        if tokio::time::timeout(CLOSE_HANDSHAKE_LIMIT, state.connections.wait()).await.is_err() {
            tracing::warn!(
                connections = state.live_connections(),
                "some sockets did not finish closing; stopping anyway"
            );
        }
        handle.stop(true).await;
        server_task.await.map_err(io::Error::other)?
    }
}

/// A random adjective-animal name such as `slimy-cardinal`, like the post's server.
fn random_name() -> String {
    petname::petname(2, "-").expect("petname's default word lists are not empty")
}

/// Completes on the first SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(stream) => stream,
        Err(error) => {
            tracing::error!(
                "cannot listen for SIGTERM ({error}); only Ctrl-C will stop the server"
            );
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("received SIGINT"),
        _ = terminate.recv() => tracing::info!("received SIGTERM"),
    }
}
