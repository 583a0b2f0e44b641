//! The WebSocket upgrade, the one place a socket becomes a connection.
//!
//! actix-http hands every request carrying `Upgrade: websocket` to this service with the
//! socket itself (`HttpServiceBuilder::upgrade`). Here, once and in this order: the path
//! (`/` or `/ws`), the handshake (RFC 6455), the client id, refusal while draining,
//! admission under the hard limit, and the session. A refusal is an HTTP response with a
//! one-line reason ([`refusal`]); an acceptance is the `101` and the first tick in one
//! write, after which the connection belongs to the worker ([`crate::worker`]) and
//! actix-http's dispatcher, with its buffers, is gone.

pub mod handshake;
pub mod refusal;

use std::{
    cell::RefCell, convert::Infallible, future::Future, pin::Pin, rc::Rc, sync::Arc, time::Duration,
};

use actix_codec::Framed;
use actix_http::{h1, Request};
use actix_service::{Service, ServiceFactory};
use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt as _},
    time::Instant,
};
use wstime_protocol::ClientId;

use self::refusal::{Refusal, RefusalLog};
use crate::{
    connection::{schedule::Schedule, Connection},
    metrics::StoreOperation,
    state::AppState,
    worker::Worker,
};

/// How long a refused client may take to accept its response.
const REFUSAL_WRITE_LIMIT: Duration = Duration::from_secs(5);

/// Makes one [`Upgrade`] service per worker thread.
pub struct UpgradeFactory {
    state: Arc<AppState>,
}

impl UpgradeFactory {
    /// Upgrades for the instance `state`.
    pub fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }
}

impl<T> ServiceFactory<(Request, Framed<T, h1::Codec>)> for UpgradeFactory
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
        let worker = Worker::new(Arc::clone(&self.state));
        std::future::ready(Ok(Upgrade { worker, refusals: Rc::default() }))
    }
}

/// One worker's upgrade service.
pub struct Upgrade<T: AsyncRead + AsyncWrite + Unpin + 'static> {
    worker: Rc<Worker<T>>,
    refusals: Rc<RefCell<RefusalLog>>,
}

impl<T> Service<(Request, Framed<T, h1::Codec>)> for Upgrade<T>
where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
{
    type Response = ();
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<(), Infallible>>>>;

    actix_service::always_ready!();

    fn call(&self, (request, framed): (Request, Framed<T, h1::Codec>)) -> Self::Future {
        let worker = Rc::clone(&self.worker);
        let refusals = Rc::clone(&self.refusals);
        Box::pin(async move {
            // The socket, and what the client sent after its request (frames may follow a
            // handshake at once); the dispatcher's buffers go with the rest of the parts.
            let parts = framed.into_parts();
            let (io, early) = (parts.io, parts.read_buf);
            match admit(worker.state(), &request).await {
                Ok(admitted) => open(&worker, io, early, admitted),
                Err(refusal) => {
                    worker.state().metrics.upgrade_refused(refusal.reason());
                    let unlogged = refusals.borrow_mut().record(refusal.reason(), Instant::now());
                    if let Some(unlogged) = unlogged {
                        tracing::info!(
                            path = request.path(),
                            peer = ?request.peer_addr(),
                            "upgrade refused ({}; {unlogged} more since the last such line): {refusal}",
                            refusal.status()
                        );
                    }
                    refuse(io, &refusal).await;
                }
            }
            Ok(())
        })
    }
}

/// An upgrade that passed every check.
struct Admitted {
    client_id: ClientId,
    handshake: handshake::Accepted,
    opened: crate::session::Opened,
    slot: tokio::sync::OwnedSemaphorePermit,
}

/// Every check, in order; the session is opened last, once nothing else can refuse.
async fn admit(state: &AppState, request: &Request) -> Result<Admitted, Refusal> {
    if !matches!(request.path(), "/" | "/ws") {
        return Err(Refusal::NotAnEndpoint);
    }
    let handshake = handshake::check(request.head())?;
    let client_id = client_id(request.uri().query())?;
    if state.lifecycle.is_draining() {
        return Err(Refusal::Draining);
    }
    let slot = state.capacity.admit().ok_or(Refusal::Full)?;
    let started = Instant::now();
    let opened = state.sessions.open(&client_id).await;
    let took = started.elapsed();
    state.metrics.store_operation(StoreOperation::OPEN, took, opened.is_ok());
    Ok(Admitted { client_id, handshake, opened: opened?, slot })
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
fn open<T>(worker: &Rc<Worker<T>>, io: T, early: bytes::BytesMut, admitted: Admitted)
where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let Admitted { client_id, handshake, opened, slot } = admitted;
    let state = worker.state();
    tracing::info!("Client connected with ID: {client_id}");
    state.metrics.upgrade_accepted(&opened);
    let epoch = state.started;
    let schedule = Schedule::new(opened, Instant::now(), epoch, &state.timing);
    let live = state.lifecycle.connection();
    let connection = Connection::new(io, client_id, schedule, early, slot, live);
    let mut head = bytes::BytesMut::new();
    handshake.response(&mut head);
    worker.start(connection, &head);
}

/// Answers a refused upgrade and closes the socket.
async fn refuse<T>(mut io: T, refusal: &Refusal)
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let answer = async {
        io.write_all(&refusal.response()).await?;
        io.shutdown().await
    };
    let _ = tokio::time::timeout(REFUSAL_WRITE_LIMIT, answer).await;
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
