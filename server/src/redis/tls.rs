//! TLS to Redis (`rediss://`): the private certificate authority `REDIS_CA_CERT` names, read
//! once at start-up, and the crypto that rustls uses.
//!
//! Without `REDIS_CA_CERT`, a `rediss://` Redis's certificate is checked against the
//! system's trusted roots (a managed Redis with a public certificate); with it, against that
//! CA alone (a Redis whose certificate an operator signed). Either way the host name in
//! `REDIS_URL` must be one the certificate names: there is no setting that skips the check.

use std::{fmt, io, path::Path};

use redis::{Client, ConnectionInfo, TlsCertificates};
use rustls::pki_types::{pem::PemObject as _, CertificateDer};

/// One or more CA certificates, PEM, checked to parse.
#[derive(Clone)]
pub struct RedisCa {
    pem: Vec<u8>,
    /// How many certificates the file holds, for the log.
    count: usize,
}

/// Why `REDIS_CA_CERT` cannot be used. The certificates are public: messages may name them.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Unreadable { path: String, source: io::Error },
    #[error("{path} holds no PEM certificate (a -----BEGIN CERTIFICATE----- block)")]
    NoCertificate { path: String },
    #[error("{path} is not a PEM certificate file: {reason}")]
    BadPem { path: String, reason: String },
    #[error("REDIS_URL does not use TLS, so there is no certificate to check: write rediss://")]
    NotTls,
    #[error("the redis crate refused the CA: {0}")]
    Refused(String),
}

impl RedisCa {
    /// Reads and checks the PEM file at `path`.
    pub fn read(path: &Path) -> Result<Self, TlsError> {
        let shown = path.display().to_string();
        let pem = std::fs::read(path)
            .map_err(|source| TlsError::Unreadable { path: shown.clone(), source })?;
        let count = CertificateDer::pem_slice_iter(&pem)
            .try_fold(0, |count, certificate| certificate.map(|_| count + 1))
            .map_err(|error| TlsError::BadPem { path: shown.clone(), reason: error.to_string() })?;
        if count == 0 {
            return Err(TlsError::NoCertificate { path: shown });
        }
        Ok(Self { pem, count })
    }

    /// `info` (a `rediss://` target) with this CA as the only trusted root.
    pub(super) fn client_for(&self, info: ConnectionInfo) -> Result<ConnectionInfo, TlsError> {
        let certificates = TlsCertificates { client_tls: None, root_cert: Some(self.pem.clone()) };
        Client::build_with_tls(info, certificates)
            .map(|client| client.get_connection_info().clone())
            .map_err(|error| TlsError::Refused(error.to_string()))
    }
}

impl fmt::Debug for RedisCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisCa({} certificates)", self.count)
    }
}

/// Makes ring the process's rustls crypto provider, unless one is already chosen. rustls
/// picks one by itself only when exactly one is compiled in; another crate enabling a
/// second (actix-web's TLS may bring aws-lc-rs) would make the first TLS connection to
/// Redis panic. Either provider serves, so an earlier choice is kept.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
