//! Throw-away TLS material for loopback: a certificate authority made for one run and a
//! server certificate it signs, as PEM files in a directory removed when they are dropped,
//! for an instance (`TLS_CERT`, `TLS_KEY`), HAProxy (one file with both) or a Redis to
//! serve. What a client trusts is exactly this CA (or, for Chromium, exactly the server's
//! key: `--ignore-certificate-errors-spki-list`), never the system's roots nor "no check".

use std::path::PathBuf;

use anyhow::Context as _;
use base64::Engine as _;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use sha2::Digest as _;
use tempfile::TempDir;

/// A CA and a certificate it signed, on disk.
pub struct Certificates {
    /// The CA's certificate (what a client is told to trust).
    pub ca: PathBuf,
    /// The server's certificate and its private key.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Certificate and key in one file, as HAProxy's `crt` takes them.
    pub haproxy_pem: PathBuf,
    /// The SHA-256 of the server key's SubjectPublicKeyInfo, in base64: what Chromium's
    /// `--ignore-certificate-errors-spki-list` takes.
    pub spki_sha256: String,
    _dir: TempDir,
}

impl Certificates {
    /// A server certificate for `localhost` and `127.0.0.1`.
    pub fn loopback() -> anyhow::Result<Self> {
        Self::generate(&["localhost", "127.0.0.1"])
    }

    /// A new CA, and a server certificate it signs for `names`: host names, or IP addresses
    /// (`127.0.0.1`), which become IP address names as TLS clients expect.
    pub fn generate(names: &[&str]) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("a directory for the certificates")?;
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "wstime throw-away test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = ca_params.self_signed(&ca_key)?;

        let key = KeyPair::generate()?;
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let mut params = CertificateParams::new(names)?;
        params.distinguished_name.push(DnType::CommonName, "wstime test server");
        let cert = params.signed_by(&key, &ca, &ca_key)?;

        let write = |name: &str, pem: String| -> anyhow::Result<PathBuf> {
            let path = dir.path().join(name);
            std::fs::write(&path, pem)
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(path)
        };
        let digest = sha2::Sha256::digest(key.public_key_der());
        Ok(Self {
            ca: write("ca.pem", ca.pem())?,
            cert: write("server.pem", cert.pem())?,
            key: write("server-key.pem", key.serialize_pem())?,
            haproxy_pem: write("haproxy.pem", format!("{}{}", cert.pem(), key.serialize_pem()))?,
            spki_sha256: base64::engine::general_purpose::STANDARD.encode(digest),
            _dir: dir,
        })
    }
}
