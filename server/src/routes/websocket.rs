//! The WebSocket upgrade: validate the client id, complete the handshake, hand the socket
//! to its connection task.

use actix_web::{
    dev::RequestHead, http::header, http::StatusCode, web, HttpRequest, HttpResponse, ResponseError,
};
use serde::Deserialize;
use wstime_protocol::{ClientId, InvalidClientId};

use crate::{connection, state::AppState};

/// The largest frame a client may send. Clients have nothing to say beyond pings, so a
/// small limit keeps a misbehaving peer from making the server buffer much.
pub const MAX_FRAME_BYTES: usize = 4 * 1024;

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
}

impl ResponseError for UpgradeError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::InvalidId(_) => StatusCode::BAD_REQUEST,
            Self::Full | Self::Draining => StatusCode::SERVICE_UNAVAILABLE,
            Self::Handshake(error) => error.as_response_error().status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if matches!(self, Self::Full | Self::Draining) {
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

/// Answers an upgrade on `/` or `/ws`.
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
    let (response, session, messages) =
        actix_ws::handle(&req, body).map_err(UpgradeError::Handshake)?;
    tracing::info!("Client connected with ID: {client_id}");

    let messages = messages.max_frame_size(MAX_FRAME_BYTES);
    let state = state.into_inner();
    let task = connection::run(session, messages, client_id, (*state).clone(), slot);
    actix_web::rt::spawn(state.connections.track_future(task));
    Ok(response)
}
