//! The school CA and the server certificate. On first start the server makes a CA (its key never
//! leaves `data_dir/tls`, mode 0600) and a server certificate signed by it; devices and browsers
//! pin the CA, whose SHA-256 fingerprint is printed at every start. The CA also issues the
//! devices' short-lived client certificates (see [`SchoolCa::issue`]).
//!
//! The server certificate lasts [`SERVER_CERT_DAYS`]. It is renewed (new key, same CA) at start
//! and by the running server (see `app::run`) once less than [`RENEW_BEFORE_DAYS`] are left, or
//! when `hostnames` no longer match it; browsers and devices trust the CA, so nobody notices.

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

/// The school CA, to issue device and server certificates. Its key is read from `ca.key` for
/// each certificate it signs and dropped right after, rather than held for the life of the
/// process. Neither rcgen's nor ring's key types wipe their memory when dropped, so this is a
/// smaller window, not a wipe: freed copies stay in the heap until their memory is reused.
pub struct SchoolCa {
    dir: std::path::PathBuf,
    /// The CA certificate (PEM), handed to devices at enrollment.
    pub pem: String,
    /// SHA-256 of the CA certificate (DER), colon-separated hex, as browsers show it.
    pub fingerprint: String,
}

/// How long a server certificate lasts, in days.
pub const SERVER_CERT_DAYS: i64 = 397;
/// A server certificate with fewer days than this left is renewed.
pub const RENEW_BEFORE_DAYS: i64 = 30;

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
    #[error("cannot load the school CA to sign the device certificate: {0:#}")]
    CaKey(anyhow::Error),
}

impl SchoolCa {
    /// The CA in `dir` (made by [`load_or_create`]). Its key is checked once here, so a broken
    /// `ca.key` stops the server at start rather than at the first enrollment.
    pub fn load(dir: &Path) -> anyhow::Result<SchoolCa> {
        let pem = read_text(&dir.join("ca.pem"))?;
        let der = rustls_pemfile::certs(&mut pem.as_bytes())
            .next()
            .context("ca.pem holds no certificate")??;
        let ca = SchoolCa {
            dir: dir.to_path_buf(),
            fingerprint: fingerprint(&der),
            pem,
        };
        ca.signer()?;
        Ok(ca)
    }

    /// The CA's certificate and key, for one signature.
    fn signer(&self) -> anyhow::Result<(rcgen::Certificate, KeyPair)> {
        let key_pem = zeroize::Zeroizing::new(read_text(&self.dir.join("ca.key"))?);
        let key = KeyPair::from_pem(&key_pem).context("ca.key holds no usable key")?;
        // Rebuilt from its own parameters and key: the same subject and key, so what it signs
        // chains to the CA certificate on disk.
        let cert = CertificateParams::from_ca_cert_pem(&self.pem)
            .context("ca.pem is not a CA certificate")?
            .self_signed(&key)?;
        Ok((cert, key))
    }

    /// A new key and server certificate for `hostnames`, valid from `now` for
    /// [`SERVER_CERT_DAYS`], as PEM (key, then the certificate followed by the CA's).
    fn issue_server(
        &self,
        hostnames: &[String],
        now: i64,
    ) -> anyhow::Result<(zeroize::Zeroizing<String>, String)> {
        let (cert, key) = self.signer()?;
        // The chain carries the CA certificate as it is on disk (the one devices pinned).
        server_cert(&cert, &key, &self.pem, hostnames, now)
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
        let (ca_cert, ca_key) = self.signer().map_err(IssueError::CaKey)?;
        let cert = csr.signed_by(&ca_cert, &ca_key).map_err(IssueError::Sign)?;
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

fn create(dir: &Path, hostnames: &[String], now: i64) -> anyhow::Result<()> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "lessonlens school CA");
    ca.distinguished_name = dn;
    ca.not_after = rcgen::date_time_ymd(2046, 1, 1);
    let ca_cert = ca.self_signed(&ca_key)?;

    let (server_key, server_pem) = server_cert(&ca_cert, &ca_key, &ca_cert.pem(), hostnames, now)?;

    write_secret_file(&dir.join("ca.key"), ca_key.serialize_pem().as_bytes())?;
    write_secret_file(&dir.join("server.key"), server_key.as_bytes())?;
    write_public(&dir.join("server.pem"), &server_pem)?;
    write_public(&dir.join("ca.pem"), &ca_cert.pem())?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

fn server_cert(
    ca_cert: &rcgen::Certificate,
    ca_key: &KeyPair,
    ca_pem: &str,
    hostnames: &[String],
    now: i64,
) -> anyhow::Result<(zeroize::Zeroizing<String>, String)> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(hostnames.to_vec())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "lessonlens server");
    params.not_before = time::OffsetDateTime::from_unix_timestamp(now - 3600)?;
    params.not_after = time::OffsetDateTime::from_unix_timestamp(now + SERVER_CERT_DAYS * 86_400)?;
    let cert = params.signed_by(&key, ca_cert, ca_key)?;
    Ok((
        zeroize::Zeroizing::new(key.serialize_pem()),
        format!("{}{ca_pem}", cert.pem()),
    ))
}

/// Why the server certificate in `dir` must be renewed at `now`, if it must.
fn renewal_reason(dir: &Path, hostnames: &[String], now: i64) -> anyhow::Result<Option<String>> {
    let current = CertificateParams::from_ca_cert_pem(&read_text(&dir.join("server.pem"))?)
        .context("server.pem holds no readable certificate")?;
    let left = current.not_after.unix_timestamp() - now;
    if left < RENEW_BEFORE_DAYS * 86_400 {
        return Ok(Some(format!("it ends in {} day(s)", left.max(0) / 86_400)));
    }
    let wanted = CertificateParams::new(hostnames.to_vec())?.subject_alt_names;
    let named = &current.subject_alt_names;
    if wanted.len() != named.len() || !wanted.iter().all(|n| named.contains(n)) {
        return Ok(Some("the configured hostnames changed".into()));
    }
    Ok(None)
}

/// Issues a new server key and certificate from the school CA in `dir` if the current one ends
/// within [`RENEW_BEFORE_DAYS`] of `now` or does not name exactly `hostnames`. Returns whether
/// it did. Both files are written beside the old ones, then renamed into place; a crash in
/// between is finished by [`finish_renewal`].
pub fn renew_if_due(dir: &Path, hostnames: &[String], now: i64) -> anyhow::Result<bool> {
    finish_renewal(dir)?;
    let Some(reason) = renewal_reason(dir, hostnames, now)? else {
        return Ok(false);
    };
    let (key, pem) = SchoolCa::load(dir)?.issue_server(hostnames, now)?;
    for name in ["server.key.tmp", "server.pem.tmp"] {
        let _ = std::fs::remove_file(dir.join(name));
    }
    write_secret_file(&dir.join("server.key.tmp"), key.as_bytes())?;
    std::fs::rename(dir.join("server.key.tmp"), dir.join("server.key.new"))?;
    write_public(&dir.join("server.pem.tmp"), &pem)?;
    // From here on the new pair is complete on disk: `server.pem.new` is the commit point.
    std::fs::rename(dir.join("server.pem.tmp"), dir.join("server.pem.new"))?;
    std::fs::File::open(dir)?.sync_all()?;
    finish_renewal(dir)?;
    tracing::info!(%reason, days = SERVER_CERT_DAYS, "renewed the server certificate");
    Ok(true)
}

/// Moves a complete new key and certificate (`*.new`) into place; removes an incomplete one.
fn finish_renewal(dir: &Path) -> anyhow::Result<()> {
    let (key_new, pem_new) = (dir.join("server.key.new"), dir.join("server.pem.new"));
    if pem_new.exists() {
        if key_new.exists() {
            std::fs::rename(&key_new, dir.join("server.key"))?;
        }
        std::fs::rename(&pem_new, dir.join("server.pem"))?;
        std::fs::File::open(dir)?.sync_all()?;
    } else {
        for name in ["server.key.new", "server.key.tmp", "server.pem.tmp"] {
            let _ = std::fs::remove_file(dir.join(name));
        }
    }
    Ok(())
}

/// Creates the CA and server certificate if missing, renews the server certificate if due (see
/// [`renew_if_due`]), then loads them.
pub fn load_or_create(dir: &Path, hostnames: &[String], now: i64) -> anyhow::Result<Tls> {
    if !dir.exists() {
        // Make everything in a staging folder and rename it into place, so a crash during first
        // start never leaves half a CA behind.
        let staging = dir.with_extension("new");
        if staging.exists() {
            std::fs::remove_dir_all(&staging)?;
        }
        std::fs::create_dir_all(&staging)
            .with_context(|| format!("cannot create {}", staging.display()))?;
        create(&staging, hostnames, now)?;
        std::fs::rename(&staging, dir)?;
        if let Some(parent) = dir.parent() {
            std::fs::File::open(parent)?.sync_all()?;
        }
        tracing::info!(
            "created the school CA and server certificate in {}",
            dir.display()
        );
    }
    renew_if_due(dir, hostnames, now)?;
    load(dir)
}

/// Loads the TLS settings of both listeners from `dir`.
pub fn load(dir: &Path) -> anyhow::Result<Tls> {
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

#[cfg(test)]
mod renewal_tests {
    use super::*;

    const DAY: i64 = 86_400;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn not_after(dir: &Path) -> i64 {
        CertificateParams::from_ca_cert_pem(&read_text(&dir.join("server.pem")).unwrap())
            .unwrap()
            .not_after
            .unix_timestamp()
    }

    #[test]
    fn the_server_certificate_is_renewed_when_due_or_renamed_and_a_crash_is_finished() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("tls");
        let hosts = names(&["localhost", "127.0.0.1"]);
        let now = 1_800_000_000;
        load_or_create(&dir, &hosts, now).unwrap();
        let first = not_after(&dir);
        assert_eq!(first, now + SERVER_CERT_DAYS * DAY);
        let ca = read_text(&dir.join("ca.pem")).unwrap();

        // Not yet due, same names: left alone.
        assert!(!renew_if_due(&dir, &hosts, now + 300 * DAY).unwrap());
        assert_eq!(not_after(&dir), first);

        // Within 30 days of its end: a new certificate from the same CA, with a new key that
        // matches it (load would refuse a mismatched pair).
        let key_before = read_text(&dir.join("server.key")).unwrap();
        let later = now + (SERVER_CERT_DAYS - 20) * DAY;
        assert!(renew_if_due(&dir, &hosts, later).unwrap());
        assert_eq!(not_after(&dir), later + SERVER_CERT_DAYS * DAY);
        assert_ne!(read_text(&dir.join("server.key")).unwrap(), key_before);
        assert_eq!(read_text(&dir.join("ca.pem")).unwrap(), ca);
        assert!(read_text(&dir.join("server.pem")).unwrap().ends_with(&ca));
        load(&dir).unwrap();

        // A hostname added to the config: renewed at once.
        let more = names(&["localhost", "127.0.0.1", "lessonlens.school.internal"]);
        assert!(renew_if_due(&dir, &more, later + DAY).unwrap());
        assert!(!renew_if_due(&dir, &more, later + DAY).unwrap());

        // A crash after both new files were complete but before they were renamed: the next
        // start finishes the job, and the pair matches.
        let (key, pem) = SchoolCa::load(&dir)
            .unwrap()
            .issue_server(&more, later + 2 * DAY)
            .unwrap();
        write_secret_file(&dir.join("server.key.new"), key.as_bytes()).unwrap();
        write_public(&dir.join("server.pem.new"), &pem).unwrap();
        load_or_create(&dir, &more, later + 2 * DAY).unwrap();
        assert_eq!(not_after(&dir), later + 2 * DAY + SERVER_CERT_DAYS * DAY);
        assert!(!dir.join("server.pem.new").exists() && !dir.join("server.key.new").exists());

        // A crash before the certificate was complete: the half-made pair is thrown away.
        write_secret_file(&dir.join("server.key.new"), b"half").unwrap();
        load_or_create(&dir, &more, later + 2 * DAY).unwrap();
        assert!(!dir.join("server.key.new").exists());
    }
}
