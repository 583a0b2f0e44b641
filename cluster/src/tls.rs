//! Throw-away TLS material for loopback: a certificate authority made for one run and a
//! server certificate it signs, as PEM files in a directory removed when they are dropped.
//! What a test trusts is exactly this CA, never the system's roots nor "no check at all".

use std::path::PathBuf;

use anyhow::Context as _;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use tempfile::TempDir;

/// A CA and a certificate it signed, on disk.
pub struct Certificates {
    /// The CA's certificate (what a client is told to trust).
    pub ca: PathBuf,
    /// The server's certificate and its private key.
    pub cert: PathBuf,
    pub key: PathBuf,
    _dir: TempDir,
}

impl Certificates {
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
        Ok(Self {
            ca: write("ca.pem", ca.pem())?,
            cert: write("server.pem", cert.pem())?,
            key: write("server-key.pem", key.serialize_pem())?,
            _dir: dir,
        })
    }
}
