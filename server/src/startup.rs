//! Start-up and shutdown: bind the one port, wire the app, run until told to stop.

use std::{
    io,
    net::TcpListener,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use actix_http::{error::DispatchError, KeepAlive, Protocol};
use actix_service::{map_config, ServiceFactory, ServiceFactoryExt as _};
use actix_web::{
    dev::{AppConfig, Server},
    web, App,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::task::TaskTracker;

use crate::{
    agent,
    capacity::{self, Capacity, Limits},
    client_limits::ClientLimits,
    cluster::KnownCluster,
    config::Config,
    connection::{schedule::Timing, shared::Settings},
    instance::Instance,
    lifecycle::Stage,
    listener,
    metrics::{scrape::InstanceCollector, Metrics},
    rebalance::{self, Rebalancing},
    redis::{topology::ConnectError, Redis},
    registry::{self, Registry},
    routes::{self, AppPort},
    session::{
        self,
        fallback::FallbackStore,
        memory::MemoryStore,
        redis::RedisStore,
        timed::Timed,
        touches::{self, TouchQueue},
        SessionStore,
    },
    shutdown::{self, DrainTiming, Signals, Stopped},
    state::AppState,
    tick_wheel::Stagger,
    transport::{self, Doorway, Stream, TlsSetupError},
    upgrade::{policy::Policy, UpgradeFactory},
    worker::WorkerParts,
};

/// How long a client has to send its request head (an upgrade's included): slowloris.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the server could not start. Each message says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("{addr} is already in use: stop the other process or choose another port with --port / PORT")]
    PortInUse { addr: String },
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: io::Error },
    #[error("{index} not found: build the page first with `trunk build --release` (or `make run`), or point STATIC_DIR at a built page")]
    MissingPage { index: PathBuf },
    #[error("cannot answer the agent check on {addr} (AGENT_PORT): {source}")]
    Agent { addr: String, source: io::Error },
    #[error("cannot listen on {addr} (ADMIN_BIND): {source}")]
    Admin { addr: String, source: io::Error },
    #[error(transparent)]
    Tls(#[from] TlsSetupError),
    #[error("cannot start the HTTP server: {0}")]
    Server(#[source] io::Error),
    #[error("REDIS_URL is not usable: {0}")]
    Redis(#[source] redis::RedisError),
    #[error("REDIS_URL is not usable: Redis at {0}")]
    RedisRefused(#[source] ConnectError),
}

/// How long the background tasks may take to finish once the instance has stopped: the
/// registry's last refresh and its removal, each within the Redis client's limit of
/// 0.5 s, and the agent's answers under way, within their 2 s.
const TASKS_LIMIT: Duration = Duration::from_secs(2);

/// How long the HTTP servers may take to stop once the drain is over (whole seconds:
/// actix-server counts its shutdown timeout in them).
const HTTP_STOP_LIMIT: Duration = Duration::from_secs(1);

/// The longest a stop takes after the drain window: the drain's overrun, the HTTP servers'
/// stop and the background tasks. A supervisor's stop timeout (systemd's
/// `TimeoutStopSec`, Kubernetes' `terminationGracePeriodSeconds`) must exceed
/// `DRAIN_GRACE_SECS` + `DRAIN_WINDOW_SECS` + this; the deploy tests check it does.
pub const STOP_AFTER_WINDOW: Duration =
    crate::shutdown::DRAIN_AFTER_WINDOW.saturating_add(HTTP_STOP_LIMIT).saturating_add(TASKS_LIMIT);

/// A server that is bound and ready to run.
pub struct Application {
    server: Server,
    /// The admin address's server, when `ADMIN_BIND` is set.
    admin: Option<Server>,
    state: web::Data<AppState>,
    port: u16,
    /// The Redis shared by the session store and the registry, when sessions are shared.
    redis: Option<Arc<Redis>>,
    /// The session touches the connections queue, worked through while the server runs.
    touches: TouchQueue,
    /// Where HAProxy's agent check is answered, when `AGENT_PORT` is set.
    agent: Option<tokio::net::TcpListener>,
    /// How the instance rebalances, when it does.
    rebalancing: Option<Rebalancing>,
    /// The drain's grace period and window.
    drain: DrainTiming,
}

impl Application {
    /// Checks the page is built, binds the port, connects the session store (Redis being
    /// down is a warning, not an error) and builds the server, without running it.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let index = config.static_dir.join("index.html");
        if !index.is_file() {
            return Err(StartupError::MissingPage { index });
        }

        let addr = std::net::SocketAddr::new(config.bind, config.port);
        let listener = listener::bind(addr).map_err(|source| match source.kind() {
            io::ErrorKind::AddrInUse => StartupError::PortInUse { addr: addr.to_string() },
            _ => StartupError::Bind { addr: addr.to_string(), source },
        })?;
        let port = listener.local_addr().map_err(StartupError::Server)?.port();

        let name = config.server_name.clone().unwrap_or_else(random_name);
        tracing::info!("This server is named: {name}");
        let pending = config.max_pending_handshakes;
        let limits = Limits {
            max_connections: config
                .max_connections
                .unwrap_or_else(|| capacity::default_max_connections(pending.into())),
            healthy_below: config.healthy_below,
            recover_below: config.recover_below,
            network_capacity_bps: config.network_capacity_bps,
        };
        tracing::info!(
            "accepting up to {} connections; health check fails at load {} and recovers below {}",
            limits.max_connections,
            limits.healthy_below,
            limits.recover_below
        );
        let address =
            config.advertise_addr.clone().unwrap_or_else(|| advertised(config.bind, port));
        let instance = Arc::new(Instance::new(&name, &address, Capacity::new(limits)));
        let cluster = Arc::new(KnownCluster::new(&name));
        let collector =
            InstanceCollector { instance: Arc::clone(&instance), cluster: Arc::clone(&cluster) };
        let metrics = Arc::new(Metrics::new(collector));
        let (sessions, redis) = session_store(&config, &metrics).await?;
        // Room for every socket's last touch at once (a drain), and as many again.
        let waiting = usize::try_from(limits.max_connections).unwrap_or(usize::MAX);
        let (touch_requests, touches) = touches::queue(waiting.saturating_mul(2));
        let connections = Settings {
            tick_prefix: wstime_protocol::tick::prefix(&name).into(),
            timing: Timing {
                ping_interval: config.ping_interval,
                idle_timeout: config.idle_timeout,
                keep_alive: session::keep_alive_interval(config.resume_window),
            },
            touches: touch_requests,
            metrics: Arc::clone(&metrics),
        };
        let workers = WorkerParts {
            instance: Arc::clone(&instance),
            connections,
            drain_window: config.drain_window,
            moves: Arc::default(),
            stagger: Arc::new(Stagger::new(worker_threads())),
        };
        let state = web::Data::new(AppState { instance, sessions, metrics, cluster, workers });
        let tls = match &config.tls {
            Some(files) => Some(transport::tls_config(&files.cert, &files.key)?),
            None => None,
        };
        let client_limits = ClientLimits::new(
            Some(config.max_connections_per_client).filter(|&max| max > 0),
            config.connect_rate_per_client.0,
        )
        .with_max_pending(config.pending_share());
        let client_limits = Arc::new(client_limits);
        let policy = Policy {
            origins: config.allowed_origins.clone(),
            trusted_proxies: config.trusted_proxies.clone(),
            client_limits: Arc::clone(&client_limits),
        };
        let doorway =
            Doorway::new(config.trusted_proxies.clone(), client_limits, Arc::clone(&state.metrics));
        let edge = Edge {
            doorway: Arc::new(doorway),
            tls,
            policy: Arc::new(policy),
            max_pending_handshakes: config.max_pending_handshakes as usize,
        };
        let admin = match config.admin_bind {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .map_err(|source| StartupError::Admin { addr: addr.to_string(), source })?,
            ),
            None => None,
        };
        let app_port = match admin {
            Some(_) => AppPort::PublicOnly,
            None => AppPort::Everything,
        };
        let server = serve(listener, app_port, state.clone(), config.static_dir.clone(), edge)?;
        let admin = admin.map(|listener| serve_admin(listener, state.clone())).transpose()?;

        let agent_host = config.admin_bind.map_or(config.bind, |admin| admin.ip());
        let agent = match config.agent_port {
            Some(agent_port) => Some(bind_agent(agent_host, agent_port)?),
            None => None,
        };
        let rebalancing = config.rebalancing();
        let drain = DrainTiming { grace: config.drain_grace, window: config.drain_window };

        tracing::info!("Server listening on port {port}");
        Ok(Self { server, admin, state, port, redis, touches, agent, rebalancing, drain })
    }

    /// The port it listens on (the one asked for, or the one the system chose for 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its name, as it appears in every tick.
    pub fn name(&self) -> &str {
        &self.state.instance.name
    }

    /// Serves until the first signal from `signals`, then drains (see [`shutdown`]); a
    /// second signal cuts the drain short and exits at once. After a drain it returns once
    /// the HTTP servers and every background task it started have finished (the registry's
    /// removal of this instance's entry among them), as mini-redis's server waits for its
    /// connections.
    pub async fn run_until(self, mut signals: impl Signals) -> io::Result<Stopped> {
        let Self { server, admin, state, redis, touches, agent, rebalancing, drain, .. } = self;
        let handle = server.handle();
        let server_task = actix_web::rt::spawn(server);
        let admin = admin.map(|admin| (admin.handle(), actix_web::rt::spawn(admin)));
        // Background work hears the lifecycle: it ends when the instance has stopped, and
        // the touch queue is flushed as the drain reaches that step.
        let instance = &state.instance;
        let lifecycle = &instance.lifecycle;
        let tasks = TaskTracker::new();
        if let Some(redis) = redis.clone() {
            let stopped = lifecycle.reached(Stage::Stopped);
            tasks.spawn_local(async move { redis.maintain(stopped).await });
        }
        let registry = Registry {
            instance: Arc::clone(instance),
            cluster: Arc::clone(&state.cluster),
            redis,
            metrics: Arc::clone(&state.metrics),
        };
        tasks.spawn_local(registry::maintain(registry, lifecycle.reached(Stage::Stopped)));
        let (flushing, stopped) =
            (lifecycle.reached(Stage::Flushing), lifecycle.reached(Stage::Stopped));
        let sessions = Arc::clone(&state.sessions);
        let touches_written = tasks.spawn_local(touches.run(sessions, flushing, stopped));
        if let Some(listener) = agent {
            let (instance, cluster) = (Arc::clone(instance), Arc::clone(&state.cluster));
            let stopped = lifecycle.reached(Stage::Stopped);
            tasks.spawn_local(agent::serve(listener, instance, cluster, stopped));
        }
        if let Some(settings) = rebalancing {
            let (instance, cluster) = (Arc::clone(instance), Arc::clone(&state.cluster));
            let moves = Arc::clone(&state.workers.moves);
            let stopped = lifecycle.reached(Stage::Stopped);
            tasks.spawn_local(rebalance::run(instance, cluster, moves, settings, stopped));
        }
        let sampled = Arc::clone(instance);
        let stopped = lifecycle.reached(Stage::Stopped);
        tasks.spawn_local(async move {
            let connections = || sampled.live_connections();
            sampled.capacity.sample(connections, stopped).await;
        });
        tasks.close();

        let first = signals.next().await;
        tracing::info!(
            "received {}",
            first.map_or("the end of the signal stream".into(), |s| s.to_string())
        );
        let written = async {
            let _ = touches_written.await;
        };
        let stopped = tokio::select! {
            () = shutdown::drain(lifecycle, drain, written) => Stopped::Drained,
            Some(second) = signals.next() => {
                tracing::warn!("received {second} during the drain: exiting now");
                lifecycle.advance(Stage::Stopped);
                Stopped::Forced(second)
            }
        };
        handle.stop(stopped == Stopped::Drained).await;
        let served = server_task.await.map_err(io::Error::other).and_then(|served| served);
        if let Some((handle, admin_task)) = admin {
            handle.stop(false).await;
            let _ = admin_task.await;
        }
        if stopped == Stopped::Drained
            && tokio::time::timeout(TASKS_LIMIT, tasks.wait()).await.is_err()
        {
            tracing::warn!("background tasks did not finish within {TASKS_LIMIT:?}");
        }
        served.map(|()| stopped)
    }
}

/// The session store the configuration asks for, every operation timed, and the Redis it
/// uses. With Redis, one connection attempt is made now (with the access check of what the
/// store and the registry will do) so the first clients are already shared; if it fails
/// the server starts anyway and `Redis::maintain` keeps trying.
async fn session_store(
    config: &Config,
    metrics: &Arc<Metrics>,
) -> Result<(Arc<dyn SessionStore>, Option<Arc<Redis>>), StartupError> {
    let window = config.resume_window;
    let Some(target) = &config.redis_url else {
        tracing::info!(
            "sessions are kept in memory (set REDIS_URL to share them between instances)"
        );
        let store = Timed::new(MemoryStore::new(window), Arc::clone(metrics));
        return Ok((Arc::new(store), None));
    };
    let redis = Arc::new(Redis::new(target).map_err(StartupError::Redis)?);
    let shared = Arc::new(RedisStore::new(Arc::clone(&redis), window));
    let mut probes = shared.access_probes();
    probes.extend(registry::access_probes());
    match redis.connect(&probes).await {
        Ok(()) => tracing::info!("sessions are shared through Redis at {}", redis.description()),
        Err(refused @ ConnectError::Refused { .. }) => {
            return Err(StartupError::RedisRefused(refused))
        }
        Err(error) => tracing::warn!(
            "Redis at {} is unreachable ({error}): serving sessions from this instance's \
             memory until it is back (sessions will not survive a move to another instance)",
            redis.description()
        ),
    }
    let store = FallbackStore::new(shared, MemoryStore::new(window), Arc::clone(metrics));
    Ok((Arc::new(Timed::new(store, Arc::clone(metrics))), Some(redis)))
}

/// How the HTTP server meets its connections and admits its WebSockets.
struct Edge {
    doorway: Arc<Doorway>,
    tls: Option<Arc<rustls::ServerConfig>>,
    policy: Arc<Policy>,
    max_pending_handshakes: usize,
}

/// The app port's worker threads: one per core.
fn worker_threads() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

/// The HTTP server on `listener`: actix-web's app for the page, the health check, the
/// metrics and the cluster, and the [`crate::upgrade`] service for WebSockets, served by
/// actix-http on actix-server, over plain TCP or TLS ([`transport`]).
///
/// Assembled from those rather than with `actix_web::HttpServer` for two reasons. Only
/// actix-http's builder takes an upgrade service, which receives the socket itself, so a
/// WebSocket is not driven through the HTTP/1 dispatcher for its whole life (see
/// [`crate::connection`]). And since actix-web 4.14, `HttpServer` gives every connection a
/// graceful-shutdown future that the dispatcher polls on every wake (8% of the server's
/// user time in a `perf` profile at 10,000 sockets), with no setting to leave it out; our
/// drain closes the sockets itself.
///
/// What bounds a connection's HTTP phase: at most `MAX_PENDING_HANDSHAKES` connections in
/// HTTP at once (a WebSocket leaves HTTP at its `101`, so it does not count), each client a
/// share of them ([`transport`]), and one request per connection, whose head must arrive
/// within 5 s. actix-http's head deadline covers a connection's first request only, and a
/// keep-alive connection's timer is reset by any byte, so a second request sent a byte at a
/// time had no deadline at all; with keep-alive off every request is a first. What that
/// costs a page load, measured, is in docs/deploying.md.
fn serve(
    listener: TcpListener,
    app_port: AppPort,
    state: web::Data<AppState>,
    static_dir: PathBuf,
    edge: Edge,
) -> Result<Server, StartupError> {
    let workers = worker_threads();
    let builder = actix_server::Server::build()
        // Signals are ours: shutdown drains the sockets first (see `run_until`).
        .disable_signals()
        .shutdown_timeout(HTTP_STOP_LIMIT.as_secs())
        .workers(workers)
        .max_concurrent_connections(edge.max_pending_handshakes.div_ceil(workers));
    let Edge { doorway, tls, policy, .. } = edge;
    let builder = match tls {
        None => builder.listen("wstime", listener, move || {
            let http = http(&state, &static_dir, app_port, &policy, false);
            transport::plain(Arc::clone(&doorway)).and_then(http)
        }),
        Some(config) => builder.listen("wstime-tls", listener, move || {
            let http = http(&state, &static_dir, app_port, &policy, true);
            transport::tls(Arc::clone(&doorway), Arc::clone(&config)).and_then(http)
        }),
    };
    Ok(builder.map_err(StartupError::Server)?.run())
}

/// The admin address's server (`ADMIN_BIND`): `/metrics`, `/cluster` and the health
/// check's JSON ([`routes`]), plain HTTP, one request a connection, on a worker of its own.
/// Not the app port's workers: when the app port's pending pool is full (a flood from many
/// addresses), those stop accepting on every listener they serve, and an operator would
/// lose the metrics just when they are needed.
fn serve_admin(listener: TcpListener, state: web::Data<AppState>) -> Result<Server, StartupError> {
    let builder = actix_server::Server::build()
        .disable_signals()
        .shutdown_timeout(HTTP_STOP_LIMIT.as_secs())
        .workers(1)
        .listen("wstime-admin", listener, move || {
            let app = App::new().app_data(state.clone()).configure(routes::admin);
            actix_http::HttpService::build()
                .keep_alive(KeepAlive::Disabled)
                .client_request_timeout(HANDSHAKE_TIMEOUT)
                .client_disconnect_timeout(Duration::from_secs(1))
                .finish(map_config(app, |_| AppConfig::default()))
                .tcp()
        })
        .map_err(StartupError::Server)?;
    Ok(builder.run())
}

/// One worker's HTTP service over connections of type `S`.
fn http<S: AsyncRead + AsyncWrite + Unpin + 'static>(
    state: &web::Data<AppState>,
    static_dir: &Path,
    app_port: AppPort,
    policy: &Arc<Policy>,
    secure: bool,
) -> impl ServiceFactory<
    (Stream<S>, Protocol, Option<std::net::SocketAddr>),
    Config = (),
    Response = (),
    Error = DispatchError,
    InitError = (),
> {
    let app =
        App::new().app_data(state.clone()).configure(|cfg| routes::app(cfg, static_dir, app_port));
    let builder = actix_http::HttpService::build()
        .keep_alive(KeepAlive::Disabled)
        .client_request_timeout(HANDSHAKE_TIMEOUT)
        .client_disconnect_timeout(Duration::from_secs(1));
    let builder = if secure { builder.secure() } else { builder };
    builder
        .upgrade(UpgradeFactory::new(state.clone().into_inner(), Arc::clone(policy)))
        .finish(map_config(app, |_| AppConfig::default()))
}

/// The agent check's listener, on `host`: BIND's address, or ADMIN_BIND's when it is set.
fn bind_agent(host: std::net::IpAddr, port: u16) -> Result<tokio::net::TcpListener, StartupError> {
    let addr = std::net::SocketAddr::new(host, port);
    let listener = TcpListener::bind(addr)
        .and_then(|listener| {
            listener.set_nonblocking(true)?;
            tokio::net::TcpListener::from_std(listener)
        })
        .map_err(|source| StartupError::Agent { addr: addr.to_string(), source })?;
    Ok(listener)
}

/// The default advertised address: the bound address, or the host's name when bound to
/// every interface.
fn advertised(bind: std::net::IpAddr, port: u16) -> String {
    let host = match bind.is_unspecified() {
        true => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|name| name.trim().to_owned())
            .unwrap_or_else(|_| "localhost".to_owned()),
        false => std::net::SocketAddr::new(bind, port).ip().to_string(),
    };
    match bind {
        std::net::IpAddr::V6(_) if !bind.is_unspecified() => format!("http://[{host}]:{port}"),
        _ => format!("http://{host}:{port}"),
    }
}

/// A random adjective-animal name such as `slimy-cardinal`, like the post's server.
fn random_name() -> String {
    petname::petname(2, "-").expect("petname's default word lists are not empty")
}
