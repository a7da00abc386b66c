//! The school CA and the server certificate. On first start the server makes a CA (its key never
//! leaves `data_dir/tls`, mode 0600) and a server certificate signed by it; devices and browsers
//! pin the CA, whose SHA-256 fingerprint is printed at every start.

use crate::vault::write_secret_file;
use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;

pub struct Tls {
    pub server_config: Arc<rustls::ServerConfig>,
    /// SHA-256 of the CA certificate (DER), colon-separated hex, as browsers show it.
    pub ca_fingerprint: String,
}

fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn write_public(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut f = std::fs::File::create(path)?;
    std::io::Write::write_all(&mut f, text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

fn create(dir: &Path, hostnames: &[String]) -> anyhow::Result<()> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "lessonlens school CA");
    ca.distinguished_name = dn;
    ca.not_after = rcgen::date_time_ymd(2046, 1, 1);
    let ca_cert = ca.self_signed(&ca_key)?;

    let server_key = KeyPair::generate()?;
    let mut params = CertificateParams::new(hostnames.to_vec())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "lessonlens server");
    params.not_after = rcgen::date_time_ymd(2028, 1, 1);
    let server_cert = params.signed_by(&server_key, &ca_cert, &ca_key)?;

    write_secret_file(&dir.join("ca.key"), ca_key.serialize_pem().as_bytes())?;
    write_secret_file(
        &dir.join("server.key"),
        server_key.serialize_pem().as_bytes(),
    )?;
    write_public(
        &dir.join("server.pem"),
        &format!("{}{}", server_cert.pem(), ca_cert.pem()),
    )?;
    write_public(&dir.join("ca.pem"), &ca_cert.pem())?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// Creates the CA and server certificate if missing, then loads them.
pub fn load_or_create(dir: &Path, hostnames: &[String]) -> anyhow::Result<Tls> {
    if !dir.exists() {
        // Make everything in a staging folder and rename it into place, so a crash during first
        // start never leaves half a CA behind.
        let staging = dir.with_extension("new");
        if staging.exists() {
            std::fs::remove_dir_all(&staging)?;
        }
        std::fs::create_dir_all(&staging)
            .with_context(|| format!("cannot create {}", staging.display()))?;
        create(&staging, hostnames)?;
        std::fs::rename(&staging, dir)?;
        if let Some(parent) = dir.parent() {
            std::fs::File::open(parent)?.sync_all()?;
        }
        tracing::info!(
            "created the school CA and server certificate in {}",
            dir.display()
        );
    }
    let (ca_pem, cert_pem, key_pem) = (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    );
    let read = |p: &Path| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()));
    let ca_der = rustls_pemfile::certs(&mut read(&ca_pem)?.as_slice())
        .next()
        .context("ca.pem holds no certificate")??;
    let chain =
        rustls_pemfile::certs(&mut read(&cert_pem)?.as_slice()).collect::<Result<Vec<_>, _>>()?;
    let key = rustls_pemfile::private_key(&mut read(&key_pem)?.as_slice())?
        .context("server.key holds no key")?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .context("server certificate and key do not match")?;
    let mut config = config;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Tls {
        server_config: Arc::new(config),
        ca_fingerprint: fingerprint(&ca_der),
    })
}
