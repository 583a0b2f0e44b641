//! How an accepted TCP connection becomes an HTTP one: `TCP_NODELAY`, the client's address
//! (from a trusted proxy's PROXY header, see [`crate::client_addr`]), then TLS when the
//! instance has a certificate (`TLS_CERT`, `TLS_KEY`). What comes out is a stream for
//! actix-http, and the WebSocket code above it is the same over either: it only asks for
//! `AsyncRead + AsyncWrite`.

use std::{io, net::SocketAddr, path::Path, sync::Arc, time::Duration};

use actix_http::{error::DispatchError, Protocol};
use actix_service::{fn_service, ServiceFactory};
use rustls_pki_types::{pem::PemObject as _, CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
use tokio_rustls::{server::TlsStream, TlsAcceptor};

use crate::client_addr::{self, TrustedProxies};

/// How long a client has to finish its TLS handshake.
const TLS_HANDSHAKE_LIMIT: Duration = Duration::from_secs(5);

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

/// The TLS settings of an instance that serves HTTPS and WSS itself: HTTP/1.1 only.
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
        .with_safe_default_protocol_versions()
        .map_err(|error| TlsSetupError::Mismatch(error.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|error| TlsSetupError::Mismatch(error.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts plain TCP connections for actix-http.
pub fn plain(
    trusted: TrustedProxies,
) -> impl ServiceFactory<
    TcpStream,
    Config = (),
    Response = (TcpStream, Protocol, Option<SocketAddr>),
    Error = DispatchError,
    InitError = (),
> {
    fn_service(move |mut stream: TcpStream| {
        let trusted = trusted.clone();
        async move {
            let client = prepare(&mut stream, &trusted).await.map_err(DispatchError::Io)?;
            Ok((stream, Protocol::Http1, Some(client)))
        }
    })
}

/// Accepts TLS connections for actix-http, with `config`.
pub fn tls(
    trusted: TrustedProxies,
    config: Arc<rustls::ServerConfig>,
) -> impl ServiceFactory<
    TcpStream,
    Config = (),
    Response = (TlsStream<TcpStream>, Protocol, Option<SocketAddr>),
    Error = DispatchError,
    InitError = (),
> {
    let acceptor = TlsAcceptor::from(config);
    fn_service(move |mut stream: TcpStream| {
        let (trusted, acceptor) = (trusted.clone(), acceptor.clone());
        async move {
            let client = prepare(&mut stream, &trusted).await.map_err(DispatchError::Io)?;
            let handshake = tokio::time::timeout(TLS_HANDSHAKE_LIMIT, acceptor.accept(stream));
            let stream = handshake
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake too slow"))
                .and_then(|accepted| accepted)
                .map_err(DispatchError::Io)?;
            Ok((stream, Protocol::Http1, Some(client)))
        }
    })
}

/// What every connection gets before its protocol: `TCP_NODELAY` (a tick is a whole
/// message; Nagle's algorithm could only hold one back behind the client's delayed
/// acknowledgement of the last), and its client's address.
async fn prepare(stream: &mut TcpStream, trusted: &TrustedProxies) -> io::Result<SocketAddr> {
    stream.set_nodelay(true)?;
    let peer = stream.peer_addr()?;
    client_addr::accept(stream, peer, trusted).await
}
