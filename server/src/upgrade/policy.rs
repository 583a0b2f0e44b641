//! Who may connect, beyond a well-formed handshake: the page's origin, the client's real
//! address and its share of the instance. One per instance, shared by every worker.

use std::{net::IpAddr, sync::Arc};

use actix_http::{header, HttpMessage as _, Request};
use tokio::time::Instant;

use super::{
    origin::AllowedOrigins,
    refusal::{shown_origin, Refusal},
};
use crate::{
    client_addr::{self, TrustedProxies},
    client_limits::{ClientLimits, ClientSlot, OverLimit},
};

/// The admission policy.
#[derive(Debug)]
pub struct Policy {
    pub origins: AllowedOrigins,
    pub trusted_proxies: TrustedProxies,
    pub client_limits: Arc<ClientLimits>,
}

impl Policy {
    /// Whether the page that sent `request` (its `Origin`) may connect here.
    pub fn check_origin(&self, request: &Request) -> Result<(), Refusal> {
        let headers = request.headers();
        let origin = headers.get(header::ORIGIN).and_then(|value| value.to_str().ok());
        let peer = request.peer_addr();
        let forwarded_host = peer
            .filter(|peer| self.trusted_proxies.trusts(peer.ip()))
            .and_then(|_| headers.get("x-forwarded-host"));
        let host = forwarded_host.or_else(|| headers.get(header::HOST));
        let host = host.and_then(|value| value.to_str().ok());
        match self.origins.allows(origin, host) {
            true => Ok(()),
            false => Err(Refusal::OriginNotAllowed(shown_origin(origin.unwrap_or_default()))),
        }
    }

    /// The client's address: the connection's (already the one a trusted proxy's PROXY
    /// header named), or what a trusted proxy's `X-Forwarded-For` says.
    pub fn client(&self, request: &Request) -> Option<IpAddr> {
        let peer = request.peer_addr()?.ip();
        Some(client_addr::forwarded_for(peer, request.headers(), &self.trusted_proxies))
    }

    /// Admits one more socket from `client`, within its limits.
    pub fn admit_client(&self, client: Option<IpAddr>) -> Result<Option<ClientSlot>, Refusal> {
        let Some(client) = client else { return Ok(None) };
        match self.client_limits.admit(client, Instant::now()) {
            Ok(slot) => Ok(Some(slot)),
            Err(OverLimit::TooMany) => Err(Refusal::ClientLimit),
            Err(OverLimit::TooFast(wait)) => Err(Refusal::RateLimited(wait)),
        }
    }
}
