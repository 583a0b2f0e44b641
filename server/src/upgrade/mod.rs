//! The WebSocket upgrade, the one place a socket becomes a connection.
//!
//! actix-http hands every request carrying `Upgrade: websocket` to this service with the
//! socket itself (`HttpServiceBuilder::upgrade`). Here, once and in this order: the path
//! (`/` or `/ws`), the handshake (RFC 6455), the page's origin, the client id, refusal
//! while draining, the client's own limits, admission under the hard limit, and the
//! session. A refusal is an HTTP response with a
//! one-line reason ([`refusal`]); an acceptance is the `101` and the first tick in one
//! write, after which the connection belongs to the worker ([`crate::worker`]) and
//! actix-http's dispatcher, with its buffers, is gone.

pub mod handshake;
pub mod origin;
pub mod policy;
pub mod refusal;

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    rc::Rc,
    sync::{Arc, Mutex},
    time::Duration,
};

use actix_codec::Framed;
use actix_http::{h1, header, HttpMessage as _, Request};
use actix_service::{Service, ServiceFactory};
use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt as _},
    time::Instant,
};
use wstime_protocol::{ClientId, CloseCode};

use self::{
    policy::Policy,
    refusal::{Refusal, RefusalLog},
};
use crate::{
    connection::{frames, schedule::Schedule, Admission, Connection},
    log_id::LoggedId,
    session::Opened,
    state::AppState,
    transport::Stream,
    worker::Worker,
};

/// How long a refused client may take to accept its response.
const REFUSAL_WRITE_LIMIT: Duration = Duration::from_secs(5);

/// Makes one [`Upgrade`] service per worker thread.
pub struct UpgradeFactory {
    state: Arc<AppState>,
    policy: Arc<Policy>,
    /// One log for every worker, so "once a minute per kind" holds for the instance. It is
    /// taken only when an upgrade is refused.
    refusals: Arc<Mutex<RefusalLog>>,
}

impl UpgradeFactory {
    /// Upgrades for the instance `state`, admitted by `policy`.
    pub fn new(state: Arc<AppState>, policy: Arc<Policy>) -> Self {
        Self { state, policy, refusals: Arc::default() }
    }
}

impl<T> ServiceFactory<(Request, Framed<Stream<T>, h1::Codec>)> for UpgradeFactory
where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
{
    type Response = ();
    type Error = Infallible;
    type Config = ();
    type Service = Upgrade<T>;
    type InitError = ();
    type Future = std::future::Ready<Result<Upgrade<T>, ()>>;

    fn new_service(&self, (): ()) -> Self::Future {
        let worker = Worker::new(&self.state.workers);
        let state = Arc::clone(&self.state);
        let policy = Arc::clone(&self.policy);
        let refusals = Arc::clone(&self.refusals);
        std::future::ready(Ok(Upgrade { worker, state, policy, refusals }))
    }
}

/// One worker's upgrade service.
pub struct Upgrade<T: AsyncRead + AsyncWrite + Unpin + 'static> {
    worker: Rc<Worker<T>>,
    state: Arc<AppState>,
    policy: Arc<Policy>,
    refusals: Arc<Mutex<RefusalLog>>,
}

impl<T> Service<(Request, Framed<Stream<T>, h1::Codec>)> for Upgrade<T>
where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
{
    type Response = ();
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<(), Infallible>>>>;

    actix_service::always_ready!();

    fn call(&self, (request, framed): (Request, Framed<Stream<T>, h1::Codec>)) -> Self::Future {
        let worker = Rc::clone(&self.worker);
        let state = Arc::clone(&self.state);
        let policy = Arc::clone(&self.policy);
        let refusals = Arc::clone(&self.refusals);
        Box::pin(async move {
            // The socket (still in its client's pending share until its `101`: the checks
            // and the session's open may take a while), and what the client sent after its
            // request (frames may follow a handshake at once); the dispatcher's buffers go
            // with the rest of the parts.
            let parts = framed.into_parts();
            let (io, early) = (parts.io, parts.read_buf);
            match admit(&state, &policy, &request).await {
                Ok(admitted) => open(&worker, &state, io.upgraded(), early, admitted),
                Err(refused) => {
                    let Refused { refusal, handshake } = &refused;
                    state.metrics.upgrade_refused(refusal.reason());
                    log_refusal(
                        &mut refusals.lock().unwrap_or_else(|e| e.into_inner()),
                        &request,
                        refusal,
                    );
                    let browser = request.headers().contains_key(header::ORIGIN);
                    match (handshake, refusal.close_code_for_browsers()) {
                        (Some(handshake), Some(code)) if browser => {
                            // A WebSocket, opened to be closed: it counts as a close too.
                            state.metrics.server_closed(code);
                            turn_away(io, handshake, code, refusal).await;
                        }
                        _ => refuse(io, refusal).await,
                    }
                }
            }
            Ok(())
        })
    }
}

/// Logs a refusal, at most once a minute per kind (and, for origins, per origin).
fn log_refusal(log: &mut RefusalLog, request: &Request, refusal: &Refusal) {
    if let Some(unlogged) = log.record(refusal, Instant::now()) {
        tracing::info!(
            path = request.path(),
            peer = ?request.peer_addr(),
            "upgrade refused ({}; {unlogged} more like it since the last such line): {refusal}",
            refusal.status()
        );
    }
}

/// An upgrade that passed every check.
struct Admitted {
    client_id: ClientId,
    handshake: handshake::Accepted,
    opened: Opened,
    admission: Admission,
}

/// An upgrade that did not, with its handshake if that much was right.
struct Refused {
    refusal: Refusal,
    handshake: Option<handshake::Accepted>,
}

impl From<Refusal> for Refused {
    fn from(refusal: Refusal) -> Self {
        Self { refusal, handshake: None }
    }
}

/// Every check, in order; the session is opened last, once nothing else can refuse.
async fn admit(state: &AppState, policy: &Policy, request: &Request) -> Result<Admitted, Refused> {
    if !matches!(request.path(), "/" | "/ws") {
        return Err(Refusal::NotAnEndpoint.into());
    }
    let handshake = handshake::check(request.head()).map_err(Refusal::from)?;
    policy.check_origin(request)?;
    let client_id = client_id(request.uri().query()).map_err(Refusal::from)?;
    let instance = &state.instance;
    if instance.lifecycle.is_draining() {
        return Err(Refusal::Draining.into());
    }
    let refused = |refusal| Refused { refusal, handshake: Some(handshake) };
    let client = policy.admit_client(policy.client(request)).map_err(refused)?;
    let slot = instance.capacity.admit().ok_or(Refusal::Full)?;
    let opened = state.sessions.open(&client_id).await;
    let admission = Admission { slot, client, live: instance.lifecycle.connection() };
    Ok(Admitted { client_id, handshake, opened: opened.map_err(Refusal::from)?, admission })
}

/// The `?id=` of the query string, percent-decoded; a fresh UUID when there is none (the
/// post's page sends none).
fn client_id(query: Option<&str>) -> Result<ClientId, wstime_protocol::InvalidClientId> {
    let sent = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(name, _)| name == "id")
        .map(|(_, value)| value);
    match sent {
        Some(raw) => ClientId::parse(&raw),
        None => Ok(ClientId::parse(&uuid::Uuid::new_v4().to_string())
            .expect("a UUID's text is a valid client id")),
    }
}

/// Hands the connection to the worker, which writes the `101` and the first tick.
fn open<T>(
    worker: &Rc<Worker<T>>,
    state: &AppState,
    io: T,
    early: bytes::BytesMut,
    admitted: Admitted,
) where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let Admitted { client_id, handshake, opened, admission } = admitted;
    tracing::info!("Client connected with ID hash {}", LoggedId(&client_id));
    state.metrics.upgrade_accepted(opened.away);
    let timing = worker.shared().timing();
    let schedule = Schedule::new(opened, Instant::now(), worker.epoch(), timing);
    let connection = Connection::new(io, client_id, schedule, early, admission);
    let mut head = bytes::BytesMut::new();
    handshake.response(&mut head);
    worker.start(connection, &head);
}

/// Answers a refused upgrade and closes the socket.
async fn refuse<T>(io: T, refusal: &Refusal)
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    answer(io, &refusal.response()).await;
}

/// Accepts the upgrade only to close it at once with `code`, for a browser page that could
/// not otherwise learn why it was refused.
async fn turn_away<T>(io: T, handshake: &handshake::Accepted, code: CloseCode, refusal: &Refusal)
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut bytes = bytes::BytesMut::new();
    handshake.response(&mut bytes);
    let reason = match refusal {
        Refusal::RateLimited(_) => "too many connection attempts from your address",
        _ => "too many connections from your address",
    };
    frames::close(&mut bytes, Some((code, reason)));
    answer(io, &bytes).await;
}

/// Writes `bytes` and closes the socket, within [`REFUSAL_WRITE_LIMIT`].
async fn answer<T>(mut io: T, bytes: &[u8])
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let answered = async {
        io.write_all(bytes).await?;
        io.shutdown().await
    };
    let _ = tokio::time::timeout(REFUSAL_WRITE_LIMIT, answered).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_percent_decoded_and_missing_ones_assigned() {
        assert_eq!(client_id(Some("id=Robert_Zhu-42")).unwrap().as_str(), "Robert_Zhu-42");
        assert_eq!(client_id(Some("x=1&id=a%2Db")).unwrap().as_str(), "a-b");
        assert!(client_id(Some("id=a%20b")).is_err());
        assert!(client_id(Some("id=")).is_err());
        let assigned = client_id(None).unwrap();
        assert_eq!(assigned.as_str().len(), 36);
        assert_ne!(assigned, client_id(Some("other=1")).unwrap(), "a fresh one each time");
    }
}
