//! A certificate for loopback, made at start: a private CA and a leaf for `localhost` and
//! `127.0.0.1` signed by it, written into a directory of their own, for an instance
//! (`TLS_CERT`, `TLS_KEY`) or HAProxy (one file with both) to serve, and for clients to
//! trust: a client trusts the CA, Chromium the leaf's key (`--ignore-certificate-errors-
//! spki-list`, for that browser only).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use base64::Engine as _;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use sha2::Digest as _;

/// The files, removed with the directory when dropped.
pub struct LoopbackCertificate {
    dir: tempfile::TempDir,
    /// The SHA-256 of the leaf's public key (its SubjectPublicKeyInfo), in base64.
    pub spki_sha256: String,
}

impl LoopbackCertificate {
    /// Makes a CA and a leaf, valid now, and writes them.
    pub fn generate() -> anyhow::Result<Self> {
        let ca_key = KeyPair::generate().context("a CA key")?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "wstime test CA");
        let ca = ca_params.self_signed(&ca_key).context("the CA certificate")?;

        let key = KeyPair::generate().context("a server key")?;
        let mut params = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])?;
        params.distinguished_name.push(DnType::CommonName, "localhost");
        let leaf = params.signed_by(&key, &ca, &ca_key).context("the server certificate")?;

        let dir = tempfile::tempdir().context("a directory for the certificate")?;
        let write = |name: &str, text: &str| {
            std::fs::write(dir.path().join(name), text).with_context(|| format!("write {name}"))
        };
        write("ca.pem", &ca.pem())?;
        write("cert.pem", &leaf.pem())?;
        write("key.pem", &key.serialize_pem())?;
        write("haproxy.pem", &format!("{}{}", leaf.pem(), key.serialize_pem()))?;
        let digest = sha2::Sha256::digest(key.public_key_der());
        let spki_sha256 = base64::engine::general_purpose::STANDARD.encode(digest);
        Ok(Self { dir, spki_sha256 })
    }

    /// The directory the files are in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The CA's certificate (PEM), for clients to trust.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The leaf's certificate chain (PEM): `TLS_CERT`.
    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    /// The leaf's private key (PEM): `TLS_KEY`.
    pub fn key(&self) -> PathBuf {
        self.dir.path().join("key.pem")
    }

    /// Certificate and key in one file, as HAProxy's `crt` takes them.
    pub fn haproxy_pem(&self) -> PathBuf {
        self.dir.path().join("haproxy.pem")
    }
}
