//! How an accepted TCP connection becomes an HTTP one: `TCP_NODELAY`, the client's address
//! (from a trusted proxy's PROXY header, see [`crate::client_addr`]), the client's place in
//! the instance's pending pool, then TLS when the instance has a certificate (`TLS_CERT`,
//! `TLS_KEY`). What comes out is a [`Stream`] for actix-http, and the WebSocket code above
//! it is the same over either: it only asks for `AsyncRead + AsyncWrite`.
//!
//! The pending pool is every connection in its HTTP phase (a handshake, a page load, a
//! health check): actix-server takes at most `MAX_PENDING_HANDSHAKES` of them at once and
//! leaves the rest in the listen backlog. One client (an address, or an IPv6 /64 within its
//! /48) holds at most its share, `MAX_PENDING_HANDSHAKES_PER_CLIENT`: beyond it, its new
//! connections are closed at once (a plain one told so with a 429), so that half-sent
//! requests from one address cannot hold every place while the health check and other
//! clients' handshakes wait. A trusted proxy that names no client (no PROXY header, or its
//! own health check) is not counted: it has limits of its own, and it carries everyone.

use std::{
    io,
    net::SocketAddr,
    path::Path,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use actix_http::{error::DispatchError, Protocol};
use actix_service::{fn_service, ServiceFactory};
use rustls_pki_types::{pem::PemObject as _, CertificateDer, PrivateKeyDer};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    time::Instant,
};

use crate::{
    client_addr::{self, TrustedProxies},
    client_limits::{ClientLimits, PendingSlot},
    log_throttle::LogThrottle,
    metrics::Metrics,
    tls_stream::TlsStream,
};

/// How long a client has to finish its TLS handshake.
const TLS_HANDSHAKE_LIMIT: Duration = Duration::from_secs(5);

/// What a plain connection over its client's share is told before it is closed.
const OVER_SHARE: &[u8] = b"HTTP/1.1 429 Too Many Requests\r\ncontent-type: text/plain; \
    charset=utf-8\r\ncontent-length: 59\r\nretry-after: 1\r\nconnection: close\r\n\r\n\
    too many requests in progress from your address; try again\n";

/// Why the instance's certificate could not be used. Names the setting, never the key.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("TLS_CERT {path}: {reason}")]
    Certificate { path: String, reason: String },
    #[error("TLS_KEY {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("TLS_CERT and TLS_KEY do not go together: {0}")]
    Mismatch(String),
}

/// The TLS settings of an instance that serves HTTPS and WSS itself: TLS 1.3 and HTTP/1.1
/// only, and rustls hands the traffic keys over after the handshake (see
/// [`crate::tls_stream`], which makes the records from then on).
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsSetupError> {
    let shown = |path: &Path| path.display().to_string();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|error| TlsSetupError::Certificate {
            path: shown(cert),
            reason: error.to_string(),
        })?;
    if chain.is_empty() {
        let reason = "no certificate in the file".to_owned();
        return Err(TlsSetupError::Certificate { path: shown(cert), reason });
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|error| TlsSetupError::Key { path: shown(key), reason: error.to_string() })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|error| TlsSetupError::Mismatch(error.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|error| TlsSetupError::Mismatch(error.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.enable_secret_extraction = true;
    Ok(Arc::new(config))
}

/// What every connection is met with, shared by every worker.
pub struct Doorway {
    /// Whose PROXY headers are read.
    trusted: TrustedProxies,
    /// Each client's share of the pending pool.
    limits: Arc<ClientLimits>,
    /// Where turned-away connections are counted.
    metrics: Arc<Metrics>,
    /// When a turned-away connection was last logged.
    logged: Mutex<LogThrottle>,
}

/// A connection in its HTTP phase: the stream, and its client's place in the pending pool,
/// held until the connection ends or becomes a WebSocket ([`Stream::upgraded`]).
pub struct Stream<S> {
    inner: S,
    _pending: Option<PendingSlot>,
}

impl<S> Stream<S> {
    /// The stream of a connection that has left HTTP (its `101` is on its way): its place
    /// in the pending pool is given back.
    pub fn upgraded(self) -> S {
        self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Stream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Stream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Accepts plain TCP connections for actix-http.
pub fn plain(
    doorway: Arc<Doorway>,
) -> impl ServiceFactory<
    TcpStream,
    Config = (),
    Response = (Stream<TcpStream>, Protocol, Option<SocketAddr>),
    Error = DispatchError,
    InitError = (),
> {
    fn_service(move |mut stream: TcpStream| {
        let doorway = Arc::clone(&doorway);
        async move {
            let (client, pending) = doorway.meet(&mut stream, true).await?;
            Ok((Stream { inner: stream, _pending: pending }, Protocol::Http1, Some(client)))
        }
    })
}

/// Accepts TLS connections for actix-http, with `config`.
pub fn tls(
    doorway: Arc<Doorway>,
    config: Arc<rustls::ServerConfig>,
) -> impl ServiceFactory<
    TcpStream,
    Config = (),
    Response = (Stream<TlsStream>, Protocol, Option<SocketAddr>),
    Error = DispatchError,
    InitError = (),
> {
    fn_service(move |mut stream: TcpStream| {
        let (doorway, config) = (Arc::clone(&doorway), Arc::clone(&config));
        async move {
            // Counted before the TLS handshake: it is the costliest part of a connection.
            let (client, pending) = doorway.meet(&mut stream, false).await?;
            let handshake =
                tokio::time::timeout(TLS_HANDSHAKE_LIMIT, TlsStream::accept(stream, config));
            let stream = handshake
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake too slow"))
                .and_then(|accepted| accepted)
                .map_err(DispatchError::Io)?;
            Ok((Stream { inner: stream, _pending: pending }, Protocol::Http1, Some(client)))
        }
    })
}

impl Doorway {
    /// Connections read `trusted` proxies' headers, take their places under `limits`, and
    /// are counted in `metrics` when turned away.
    pub fn new(trusted: TrustedProxies, limits: Arc<ClientLimits>, metrics: Arc<Metrics>) -> Self {
        Self { trusted, limits, metrics, logged: Mutex::default() }
    }

    /// What every connection gets before its protocol: `TCP_NODELAY` (a tick is a whole
    /// message; Nagle's algorithm could only hold one back behind the client's delayed
    /// acknowledgement of the last), its client's address, and its client's place in the
    /// pending pool, or an error that closes it (`plain`: told why first).
    async fn meet(
        &self,
        stream: &mut TcpStream,
        plain: bool,
    ) -> Result<(SocketAddr, Option<PendingSlot>), DispatchError> {
        stream.set_nodelay(true).map_err(DispatchError::Io)?;
        let peer = stream.peer_addr().map_err(DispatchError::Io)?;
        let client =
            client_addr::accept(stream, peer, &self.trusted).await.map_err(DispatchError::Io)?;
        let named_by_proxy = client != peer || !self.trusted.trusts(peer.ip());
        if !named_by_proxy {
            return Ok((client, None));
        }
        match self.limits.admit_pending(client.ip()) {
            Some(slot) => Ok((client, Some(slot))),
            None => {
                self.turned_away(client);
                if plain {
                    // No waiting on a client that holds its share already. What has come of
                    // its request is read first (closing with unread bytes sends a reset,
                    // which can discard the answer), then what the socket takes of the 429.
                    let mut scratch = [0u8; 4096];
                    while matches!(stream.try_read(&mut scratch), Ok(read) if read > 0) {}
                    let _ = stream.try_write(OVER_SHARE);
                }
                let over = "the client holds its share of the pending pool";
                Err(DispatchError::Io(io::Error::other(over)))
            }
        }
    }

    /// Counts (and, once a minute, logs) a connection turned away for its client's share.
    fn turned_away(&self, client: SocketAddr) {
        self.metrics.pending_refused();
        let mut logged = self.logged.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(unlogged) = logged.turn(Instant::now()) {
            tracing::info!(
                client = %client.ip(),
                "a client holds its share of the pending pool (MAX_PENDING_HANDSHAKES_PER_CLIENT): \
                 its new connections are closed at once ({unlogged} more since the last such line)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_429_says_its_length() {
        let text = std::str::from_utf8(OVER_SHARE).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}\r\n", body.len())), "{text}");
    }
}
