//! Start-up and shutdown: bind the one port, wire the app, run until told to stop.

use std::{future::Future, io, net::TcpListener, path::PathBuf, sync::Arc, time::Duration};

use actix_web::{dev::Server, web, App, HttpServer};

use crate::{
    routes,
    session::{
        self, fallback::FallbackStore, memory::MemoryStore, redis::RedisStore, SessionStore,
    },
    state::{AppState, Timing},
    Config,
};

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
    #[error("REDIS_URL is not usable: {0}")]
    Redis(#[source] redis::RedisError),
}

/// A server that is bound and ready to run.
pub struct Application {
    server: Server,
    port: u16,
    state: AppState,
    /// The Redis store whose connection must be maintained, when sessions are shared.
    redis: Option<Arc<RedisStore>>,
}

/// How long shutdown waits for sockets to finish their close handshake before it stops the
/// HTTP server regardless: a peer that never answers must not hold the process up.
const CLOSE_HANDSHAKE_LIMIT: Duration = Duration::from_secs(2);

impl Application {
    /// Checks the page is built, binds the port, connects the session store (Redis being
    /// down is a warning, not an error) and builds the server, without running it.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
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
        let (sessions, redis) = session_store(&config).await?;
        let timing = Timing {
            ping_interval: config.ping_interval_secs,
            idle_timeout: config.idle_timeout_secs,
            keep_alive: session::keep_alive_interval(config.resume_window_secs),
        };
        let state = AppState::new(&name, sessions, timing);

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
        Ok(Self { server, port, state, redis })
    }

    /// The port actually bound (useful with `--port 0`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown` completes, then closes every socket and stops.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let Self { server, state, redis, .. } = self;
        let handle = server.handle();
        let server_task = actix_web::rt::spawn(server);
        if let Some(redis) = redis {
            let shutdown = state.shutdown.clone();
            actix_web::rt::spawn(async move { redis.maintain(shutdown).await });
        }

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

/// The session store the configuration asks for. With Redis, one connection attempt is
/// made now so the first clients are already shared; if it fails the server starts anyway
/// and `RedisStore::maintain` keeps trying.
async fn session_store(
    config: &Config,
) -> Result<(Arc<dyn SessionStore>, Option<Arc<RedisStore>>), StartupError> {
    let window = config.resume_window_secs;
    let Some(url) = &config.redis_url else {
        tracing::info!(
            "sessions are kept in memory (set REDIS_URL to share them between instances)"
        );
        return Ok((Arc::new(MemoryStore::new(window)), None));
    };
    let redis = Arc::new(RedisStore::new(url, window).map_err(StartupError::Redis)?);
    if redis.connect().await {
        tracing::info!("sessions are shared through Redis at {}", redis.address());
    }
    let store = FallbackStore::new(Arc::clone(&redis), MemoryStore::new(window));
    Ok((Arc::new(store), Some(redis)))
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
