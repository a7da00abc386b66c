//! The device's identity: its own key pair and the client certificate the school CA issued for
//! it, kept in `identity_dir` (`identity.pem`: key and certificate, mode 0600; `ca.pem`: the
//! school CA). Enrollment makes the key here, sends only a certificate request, and trusts the
//! server only if its CA matches the fingerprint the admin gave with the code. Renewal makes a
//! fresh key each time.

use crate::spool::write_durable;
use anyhow::{bail, Context};
use lessonlens_proto::wire::{DeviceCertificate, EnrollRequest, ErrorBody};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

pub const IDENTITY_FILE: &str = "identity.pem";
const CA_FILE: &str = "ca.pem";

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// What the device needs to talk to the device API.
pub struct Identity {
    roots: rustls::RootCertStore,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    /// The certificate's validity (Unix seconds).
    pub not_before: i64,
    pub not_after: i64,
    /// The device's name as the admin enrolled it (the certificate's common name).
    pub name: String,
}

impl Identity {
    pub fn load(dir: &Path) -> anyhow::Result<Identity> {
        let path = dir.join(IDENTITY_FILE);
        if !path.exists() {
            bail!(
                "this device is not enrolled ({} is missing): ask an admin for an enrollment code and run `lessonlens-capture enroll`",
                path.display()
            );
        }
        let pem = Zeroizing::new(
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?,
        );
        let key = rustls_pemfile::private_key(&mut pem.as_slice())?
            .with_context(|| format!("{} holds no private key", path.display()))?;
        let chain = rustls_pemfile::certs(&mut pem.as_slice()).collect::<Result<Vec<_>, _>>()?;
        let cert = chain
            .first()
            .with_context(|| format!("{} holds no certificate", path.display()))?;
        let (not_before, not_after, name) = validity(cert)?;
        let ca_path = dir.join(CA_FILE);
        let ca = std::fs::read(&ca_path)
            .with_context(|| format!("cannot read the school CA {}", ca_path.display()))?;
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pemfile::certs(&mut ca.as_slice()) {
            roots.add(c.context("the school CA file is not valid PEM")?)?;
        }
        if roots.is_empty() {
            bail!("{} holds no certificate", ca_path.display());
        }
        Ok(Identity {
            roots,
            chain,
            key,
            not_before,
            not_after,
            name,
        })
    }

    /// The TLS settings of every request: trust only the school CA, present this device's
    /// certificate.
    fn tls(&self) -> anyhow::Result<Arc<rustls::ClientConfig>> {
        Ok(Arc::new(
            rustls::ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()?
                .with_root_certificates(self.roots.clone())
                .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
                .context("the device's key does not match its certificate")?,
        ))
    }

    /// An HTTPS agent that trusts only the school CA and presents this device's certificate.
    pub fn agent(&self) -> anyhow::Result<ureq::Agent> {
        Ok(agent(self.tls()?))
    }

    /// An agent for the channel: one request that lasts as long as the connection, so no overall
    /// time limit; the server sends a keep-alive every 15 s, so 45 s of silence means it is gone.
    pub fn channel_agent(&self) -> anyhow::Result<ureq::Agent> {
        Ok(ureq::AgentBuilder::new()
            .tls_config(self.tls()?)
            .timeout_connect(Duration::from_secs(5))
            .timeout_read(Duration::from_secs(45))
            .build())
    }

    /// Renewal is due once half the certificate's life has passed.
    pub fn renewal_due(&self, now: i64) -> bool {
        renewal_due(self.not_before, self.not_after, now)
    }
}

fn agent(tls: Arc<rustls::ClientConfig>) -> ureq::Agent {
    ureq::AgentBuilder::new()
        .tls_config(tls)
        .timeout_connect(Duration::from_secs(5))
        .timeout(Duration::from_secs(60))
        // Each concurrent upload keeps its connection (`upload_concurrency` is at most 8).
        .max_idle_connections_per_host(8)
        .build()
}

pub fn renewal_due(not_before: i64, not_after: i64, now: i64) -> bool {
    now >= not_before + (not_after - not_before) / 2
}

/// The certificate's validity (Unix seconds) and common name.
fn validity(cert: &CertificateDer<'_>) -> anyhow::Result<(i64, i64, String)> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert)
        .map_err(|e| anyhow::anyhow!("the device certificate does not parse: {e}"))?;
    let v = parsed.validity();
    let name = parsed
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or("")
        .to_string();
    Ok((v.not_before.timestamp(), v.not_after.timestamp(), name))
}

/// A fresh key pair and a certificate request for it. The request names nothing: the server
/// decides what the certificate says.
fn new_key_and_csr() -> anyhow::Result<(Zeroizing<String>, String)> {
    let key = rcgen::KeyPair::generate()?;
    let csr = rcgen::CertificateParams::default().serialize_request(&key)?;
    Ok((Zeroizing::new(key.serialize_pem()), csr.pem()?))
}

/// Stores a freshly issued certificate with its key, replacing the previous identity in one
/// rename, so a crash leaves either the old identity or the new one.
fn store(dir: &Path, key_pem: &str, issued: &DeviceCertificate) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    write_durable(dir, CA_FILE, issued.ca_certificate.as_bytes())?;
    let both = Zeroizing::new(format!("{key_pem}{}", issued.certificate));
    write_durable(dir, IDENTITY_FILE, both.as_bytes())?;
    Ok(())
}

fn refused(e: ureq::Error) -> anyhow::Error {
    match e {
        ureq::Error::Status(status, resp) => {
            let msg = resp
                .into_json::<ErrorBody>()
                .map(|b| b.error)
                .unwrap_or_else(|_| "no explanation given".into());
            anyhow::anyhow!("the server refused ({status}): {msg}")
        }
        ureq::Error::Transport(t) => anyhow::anyhow!("the server cannot be reached: {t}"),
    }
}

/// Parses a CA fingerprint as the server prints it (hex, colons optional).
pub fn parse_fingerprint(text: &str) -> anyhow::Result<[u8; 32]> {
    let hex_digits: String = text.chars().filter(|c| *c != ':').collect();
    let bytes = hex::decode(hex_digits.trim())
        .ok()
        .filter(|b| b.len() == 32)
        .context("the CA fingerprint is 32 bytes of hex (as `lessonlens-server device enroll` prints it)")?;
    Ok(bytes.try_into().expect("32 bytes"))
}

/// Enrols this device with the server at `url` (its web address) using an admin's one-time
/// `code`; trusts the server only if its CA's SHA-256 is `ca_sha256`. Returns the device name.
pub fn enroll(dir: &Path, url: &str, code: &str, ca_sha256: [u8; 32]) -> anyhow::Result<String> {
    if !url.starts_with("https://") {
        bail!("the server address must start with https://");
    }
    let tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedCa { pin: ca_sha256 }))
        .with_no_client_auth();
    let (key_pem, csr) = new_key_and_csr()?;
    let issued: DeviceCertificate = agent(Arc::new(tls))
        .post(&format!("{}/api/enroll", url.trim_end_matches('/')))
        .send_json(EnrollRequest {
            code: code.to_string(),
            csr,
        })
        .map_err(refused)?
        .into_json()?;
    // What the server hands back must be the CA that was pinned.
    let ca = rustls_pemfile::certs(&mut issued.ca_certificate.as_bytes())
        .next()
        .context("the server sent no CA certificate")??;
    if Sha256::digest(&ca).as_slice() != ca_sha256 {
        bail!("the server sent a CA certificate other than the one the fingerprint names");
    }
    store(dir, &key_pem, &issued)?;
    Ok(issued.device)
}

/// Renews the certificate through the device API at `base` with `agent` (which presents the
/// current one); returns the new expiry.
pub fn renew(dir: &Path, agent: &ureq::Agent, base: &str) -> anyhow::Result<i64> {
    let (key_pem, csr) = new_key_and_csr()?;
    let issued: DeviceCertificate = agent
        .post(&format!("{base}/api/device/v1/renew"))
        .send_json(lessonlens_proto::wire::RenewRequest { csr })
        .map_err(refused)?
        .into_json()?;
    store(dir, &key_pem, &issued)?;
    Ok(issued.not_after)
}

const UNASSIGNED_FILE: &str = "unassigned.pub";

/// Keeps the school's unassigned public key (hex), to seal to while the server is unreachable.
pub fn save_unassigned(dir: &Path, pk: &lessonlens_proto::PublicKey) -> anyhow::Result<()> {
    if load_unassigned(dir).as_ref() != Some(pk) {
        write_durable(dir, UNASSIGNED_FILE, pk.to_hex().as_bytes())?;
    }
    Ok(())
}

/// The school's unassigned public key, if the device has fetched it once.
pub fn load_unassigned(dir: &Path) -> Option<lessonlens_proto::PublicKey> {
    let hex = std::fs::read_to_string(dir.join(UNASSIGNED_FILE)).ok()?;
    lessonlens_proto::PublicKey::from_hex(hex.trim()).ok()
}

/// Trusts a server whose chain includes the CA with the pinned SHA-256, and verifies the server
/// certificate against that CA as usual (name, dates, signature).
#[derive(Debug)]
struct PinnedCa {
    pin: [u8; 32],
}

impl ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ca = intermediates
            .iter()
            .find(|c| Sha256::digest(c).as_slice() == self.pin)
            .ok_or_else(|| {
                rustls::Error::General(
                    "the server's CA does not match the fingerprint given with the enrollment code"
                        .into(),
                )
            })?;
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(ca.clone().into_owned())
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?
            .verify_server_cert(end_entity, &[], server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_due_at_half_life() {
        let day = 86_400;
        assert!(!renewal_due(0, 14 * day, 7 * day - 1));
        assert!(renewal_due(0, 14 * day, 7 * day));
        assert!(renewal_due(0, 14 * day, 20 * day), "expired: still try");
    }

    #[test]
    fn fingerprints_parse_with_or_without_colons() {
        let hex = "AB".repeat(32);
        let colons = vec!["ab"; 32].join(":");
        assert_eq!(parse_fingerprint(&hex).unwrap(), [0xab; 32]);
        assert_eq!(parse_fingerprint(&colons).unwrap(), [0xab; 32]);
        assert!(parse_fingerprint("abcd").is_err());
    }

    #[test]
    fn a_new_key_makes_a_csr_the_server_can_read() {
        let (key, csr) = new_key_and_csr().unwrap();
        assert!(key.contains("PRIVATE KEY"));
        rcgen::CertificateSigningRequestParams::from_pem(&csr).unwrap();
    }
}
