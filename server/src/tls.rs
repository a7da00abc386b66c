//! The school CA and the server certificate. On first start the server makes a CA (its key never
//! leaves `data_dir/tls`, mode 0600) and a server certificate signed by it; devices and browsers
//! pin the CA, whose SHA-256 fingerprint is printed at every start. The CA also issues the
//! devices' short-lived client certificates (see [`SchoolCa::issue`]).

use crate::vault::write_secret_file;
use anyhow::Context;
use rand_core::RngCore;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SerialNumber,
};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;

pub struct Tls {
    /// The web listener: server authentication only.
    pub server_config: Arc<rustls::ServerConfig>,
    /// The device listener: mutual TLS, a client certificate from the school CA required.
    pub device_config: Arc<rustls::ServerConfig>,
}

/// The school CA, loaded to issue device certificates.
pub struct SchoolCa {
    cert: rcgen::Certificate,
    key: KeyPair,
    /// The CA certificate (PEM), handed to devices at enrollment.
    pub pem: String,
    /// SHA-256 of the CA certificate (DER), colon-separated hex, as browsers show it.
    pub fingerprint: String,
}

/// A device certificate just issued.
pub struct Issued {
    pub pem: String,
    /// SHA-256 of the certificate (DER): how the device API recognises it.
    pub sha256: [u8; 32],
    pub not_after: i64,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    #[error("the certificate signing request is not a valid, self-signed PEM CSR ({0}); the device makes it with its own key")]
    BadCsr(rcgen::Error),
    #[error("cannot sign the device certificate: {0}")]
    Sign(rcgen::Error),
}

impl SchoolCa {
    /// The CA in `dir` (made by [`load_or_create`]).
    pub fn load(dir: &Path) -> anyhow::Result<SchoolCa> {
        let pem = read_text(&dir.join("ca.pem"))?;
        let key_pem = zeroize::Zeroizing::new(read_text(&dir.join("ca.key"))?);
        let key = KeyPair::from_pem(&key_pem).context("ca.key holds no usable key")?;
        let der = rustls_pemfile::certs(&mut pem.as_bytes())
            .next()
            .context("ca.pem holds no certificate")??;
        // Rebuilt from its own parameters and key: the same subject and key, so what it signs
        // chains to the CA certificate on disk.
        let cert = CertificateParams::from_ca_cert_pem(&pem)
            .context("ca.pem is not a CA certificate")?
            .self_signed(&key)?;
        Ok(SchoolCa {
            cert,
            key,
            fingerprint: fingerprint(&der),
            pem,
        })
    }

    /// Signs a device's certificate request. Only the request's key is used: the certificate
    /// names `device`, is good for client authentication only, and lasts `days` from `now`.
    pub fn issue(
        &self,
        csr_pem: &str,
        device: &str,
        now: i64,
        days: u32,
    ) -> Result<Issued, IssueError> {
        let mut csr = rcgen::CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(IssueError::BadCsr)?;
        let not_after = now + i64::from(days) * 86_400;
        let at = |t: i64| {
            time::OffsetDateTime::from_unix_timestamp(t).expect("a timestamp within range")
        };
        let mut serial = [0u8; 16];
        rand_core::TryRngCore::unwrap_err(rand_core::OsRng).fill_bytes(&mut serial);
        serial[0] &= 0x7f;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, device);
        // A little slack for a device clock that runs behind.
        params.not_before = at(now - 300);
        params.not_after = at(not_after);
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        csr.params = params;
        let cert = csr
            .signed_by(&self.cert, &self.key)
            .map_err(IssueError::Sign)?;
        Ok(Issued {
            sha256: Sha256::digest(cert.der()).into(),
            pem: cert.pem(),
            not_after,
        })
    }
}

fn read_text(p: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))
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
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut web = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain.clone(), key.clone_key())
        .context("server certificate and key do not match")?;
    web.alpn_protocols = vec![b"http/1.1".to_vec()];

    // Devices: a certificate chaining to the school CA, within its dates, or no handshake at all.
    // Revocation is checked on every request (see `app::DeviceAuth`), so it takes effect at once.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_der)?;
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()?;
    let mut device = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    device.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Tls {
        server_config: Arc::new(web),
        device_config: Arc::new(device),
    })
}
