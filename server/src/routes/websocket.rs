//! The WebSocket upgrade: validate the client id and the handshake, open the session, and
//! answer `101` with the connection as the response body.

use actix_web::{
    body::BoxBody, dev::RequestHead, http::header, http::StatusCode, web, HttpRequest,
    HttpResponse, ResponseError,
};
use serde::Deserialize;
use wstime_protocol::{ClientId, InvalidClientId};

use crate::{connection::Connection, session::StoreError, state::AppState};

/// The upgrade request's query string.
#[derive(Debug, Deserialize)]
pub struct UpgradeQuery {
    id: Option<String>,
}

/// How long a refused client is asked to wait before trying again (`Retry-After`); a load
/// balancer in front sends the retry elsewhere.
const RETRY_AFTER_SECS: u32 = 5;

/// Why an upgrade was refused.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error(transparent)]
    InvalidId(#[from] InvalidClientId),
    #[error("server is at its connection limit; try again shortly")]
    Full,
    #[error("server is draining for a restart; connect again to reach another instance")]
    Draining,
    #[error("{0}")]
    Handshake(actix_web::Error),
    #[error("sessions cannot be opened right now ({0}); try again shortly")]
    Store(#[from] StoreError),
}

impl ResponseError for UpgradeError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::InvalidId(_) => StatusCode::BAD_REQUEST,
            Self::Full | Self::Draining | Self::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Handshake(error) => error.as_response_error().status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if self.status_code() == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECS));
        }
        response.content_type("text/plain; charset=utf-8").body(self.to_string())
    }
}

/// True when the request asks for a WebSocket. Header values are compared without regard
/// to case (`Upgrade: WebSocket` is common), as RFC 6455 requires.
pub fn is_upgrade(head: &RequestHead) -> bool {
    head.headers()
        .get_all(header::UPGRADE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("websocket"))
}

/// Answers an upgrade on `/` or `/ws`. The session is opened before the `101`, so a store
/// that cannot answer is a `503` the load balancer can retry elsewhere, not a socket that
/// opens only to close.
pub async fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    query: web::Query<UpgradeQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, UpgradeError> {
    let client_id = match query.into_inner().id {
        Some(raw) => ClientId::parse(&raw)?,
        None => ClientId::parse(&uuid::Uuid::new_v4().to_string())
            .expect("a UUID's text is a valid client id"),
    };
    if state.draining.is_cancelled() {
        return Err(UpgradeError::Draining);
    }
    let slot = state.capacity.admit().ok_or(UpgradeError::Full)?;
    let mut response = actix_http::ws::handshake(req.head())
        .map_err(|error| UpgradeError::Handshake(error.into()))?;
    let opened = state.sessions.open(&client_id).await?;
    tracing::info!("Client connected with ID: {client_id}");

    let connection =
        Connection::new(state.into_inner(), client_id, opened, body.into_inner(), slot);
    let response = response
        .message_body(BoxBody::new(connection))
        .map_err(|error| UpgradeError::Handshake(error.into()))?;
    Ok(response.into())
}
