//! The school CA and the server certificate. On first start the server makes a CA and a server
//! certificate signed by it; devices and browsers pin the CA, whose SHA-256 fingerprint is printed
//! at every start. The CA also issues the devices' short-lived client certificates (see
//! [`SchoolCa::issue`]).
//!
//! The CA's private key rests only sealed under a key derived from the master key
//! (`ca.key.sealed`, see [`TlsSeal`]): a copy of `data_dir` cannot sign as the school. A plain
//! `ca.key` from an older version is sealed at the next start and removed. A CA made by this
//! version is name-constrained ([`name_constraints`]) to the names a school's own network uses and
//! to the hostnames configured when it was made, because staff are asked to trust it in their
//! browsers: even with its key, nobody could pass off another website as genuine. The web and
//! device listeners share it (devices pin one CA; a second would be one more thing to trust).
//!
//! The server certificate lasts [`SERVER_CERT_DAYS`]. It is renewed (new key, same CA) at start
//! and by the running server (see `http::run`) once less than [`RENEW_BEFORE_DAYS`] are left, or
//! when `hostnames` no longer match it; browsers and devices trust the CA, so nobody notices.

use crate::store::vault::{write_secret_file, TlsSeal};
use anyhow::Context;
use rand_core::RngCore;
use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, KeyPair, KeyUsagePurpose, NameConstraints,
    SerialNumber,
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

/// The school CA, to issue device and server certificates. Its key is read from `ca.key.sealed`
/// and unsealed for each certificate it signs and dropped right after, rather than held for the
/// life of the process. Neither rcgen's nor ring's key types wipe their memory when dropped, so this is a
/// smaller window, not a wipe: freed copies stay in the heap until their memory is reused.
pub struct SchoolCa {
    dir: std::path::PathBuf,
    /// The CA certificate (PEM), handed to devices at enrollment.
    pub pem: String,
    /// SHA-256 of the CA certificate (DER), colon-separated hex, as browsers show it.
    pub fingerprint: String,
    seal: TlsSeal,
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
    /// key stops the server at start rather than at the first enrollment. A plain `ca.key` (from
    /// before keys were sealed) is sealed and removed.
    pub fn load(dir: &Path, seal: TlsSeal) -> anyhow::Result<SchoolCa> {
        let plain = dir.join("ca.key");
        if plain.exists() {
            let pem = zeroize::Zeroizing::new(std::fs::read(&plain)?);
            let sealed = dir.join(CA_KEY);
            let _ = std::fs::remove_file(&sealed);
            write_secret_file(&sealed, &seal.seal(CA_KEY, &pem))?;
            std::fs::File::open(dir)?.sync_all()?;
            std::fs::remove_file(&plain)?;
            std::fs::File::open(dir)?.sync_all()?;
            tracing::info!("sealed the school CA's key under the master key (ca.key.sealed)");
        }
        let pem = read_text(&dir.join("ca.pem"))?;
        let der = rustls_pemfile::certs(&mut pem.as_bytes())
            .next()
            .context("ca.pem holds no certificate")??;
        let ca = SchoolCa {
            dir: dir.to_path_buf(),
            fingerprint: fingerprint(&der),
            pem,
            seal,
        };
        ca.signer()?;
        Ok(ca)
    }

    /// The CA's certificate and key, for one signature.
    fn signer(&self) -> anyhow::Result<(rcgen::Certificate, KeyPair)> {
        let sealed = std::fs::read(self.dir.join(CA_KEY))
            .with_context(|| format!("cannot read {}", self.dir.join(CA_KEY).display()))?;
        let key_pem = self.seal.open(CA_KEY, &sealed)?;
        let key =
            KeyPair::from_pem(std::str::from_utf8(&key_pem).context("ca.key.sealed holds no PEM")?)
                .context("ca.key.sealed holds no usable key")?;
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

/// The sealed keys' file names (see [`TlsSeal`]).
const CA_KEY: &str = "ca.key.sealed";
const SERVER_KEY: &str = "server.key";

/// DNS names and addresses a school's own network uses: never a public website's.
const PRIVATE_NAMES: [&str; 5] = ["localhost", "internal", "lan", "local", "home.arpa"];
const PRIVATE_NETWORKS: [&str; 6] = [
    "127.0.0.0/8",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "::1/128",
    "fc00::/7",
];

/// What a new school CA may sign: [`PRIVATE_NAMES`] and [`PRIVATE_NETWORKS`], and the hostnames
/// configured when it is made (a school's own public name, if it has one).
fn name_constraints(hostnames: &[String]) -> anyhow::Result<NameConstraints> {
    let mut permitted: Vec<GeneralSubtree> = PRIVATE_NAMES
        .iter()
        .map(|n| GeneralSubtree::DnsName(n.to_string()))
        .collect();
    for net in PRIVATE_NETWORKS {
        permitted.push(GeneralSubtree::IpAddress(
            net.parse::<CidrSubnet>()
                .map_err(|_| anyhow::anyhow!("bad network {net}"))?,
        ));
    }
    for h in hostnames {
        if permits(&permitted, h) {
            continue;
        }
        permitted.push(match h.parse::<std::net::IpAddr>() {
            Ok(ip) => GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(
                ip,
                if ip.is_ipv4() { 32 } else { 128 },
            )),
            Err(_) => GeneralSubtree::DnsName(h.to_ascii_lowercase()),
        });
    }
    Ok(NameConstraints {
        permitted_subtrees: permitted,
        excluded_subtrees: Vec::new(),
    })
}

/// Whether `name` (a DNS name or an address) falls in one of `permitted`.
fn permits(permitted: &[GeneralSubtree], name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    let ip = name.parse::<std::net::IpAddr>().ok();
    permitted.iter().any(|s| match (s, ip) {
        (GeneralSubtree::DnsName(d), None) => {
            let d = d.trim_start_matches('.').to_ascii_lowercase();
            name == d || name.ends_with(&format!(".{d}"))
        }
        (GeneralSubtree::IpAddress(net), Some(ip)) => in_subnet(net, ip),
        _ => false,
    })
}

fn in_subnet(net: &CidrSubnet, ip: std::net::IpAddr) -> bool {
    let masked = |a: &[u8], m: &[u8]| a.iter().zip(m).map(|(a, m)| a & m).collect::<Vec<_>>();
    match (net, ip) {
        (CidrSubnet::V4(a, m), std::net::IpAddr::V4(ip)) => masked(&ip.octets(), m) == masked(a, m),
        (CidrSubnet::V6(a, m), std::net::IpAddr::V6(ip)) => masked(&ip.octets(), m) == masked(a, m),
        _ => false,
    }
}

/// Refuses hostnames the school CA in `ca_pem` may not sign (a CA from before name constraints
/// may sign any).
fn check_signable(ca_pem: &str, hostnames: &[String]) -> anyhow::Result<()> {
    let Some(nc) = CertificateParams::from_ca_cert_pem(ca_pem)
        .context("ca.pem is not a CA certificate")?
        .name_constraints
    else {
        return Ok(());
    };
    let outside: Vec<&str> = hostnames
        .iter()
        .filter(|h| !permits(&nc.permitted_subtrees, h))
        .map(String::as_str)
        .collect();
    if !outside.is_empty() {
        anyhow::bail!(
            "the school CA may not sign {outside:?}: it is limited to the school's own network names \
             (localhost, *.internal, *.lan, *.local, *.home.arpa, private addresses) and the hostnames \
             configured when it was made. Use such a name, or move data_dir/tls aside to make a new CA \
             (staff trust it again and every device enrols again)"
        );
    }
    Ok(())
}

fn create(dir: &Path, hostnames: &[String], now: i64, seal: &TlsSeal) -> anyhow::Result<()> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.name_constraints = Some(name_constraints(hostnames)?);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "lessonlens school CA");
    ca.distinguished_name = dn;
    ca.not_after = rcgen::date_time_ymd(2046, 1, 1);
    let ca_cert = ca.self_signed(&ca_key)?;

    let (server_key, server_pem) = server_cert(&ca_cert, &ca_key, &ca_cert.pem(), hostnames, now)?;

    let ca_key_pem = zeroize::Zeroizing::new(ca_key.serialize_pem());
    write_secret_file(&dir.join(CA_KEY), &seal.seal(CA_KEY, ca_key_pem.as_bytes()))?;
    write_secret_file(
        &dir.join(SERVER_KEY),
        &seal.seal(SERVER_KEY, server_key.as_bytes()),
    )?;
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

/// When the server certificate now on disk ends (Unix seconds).
pub fn server_cert_ends(ca: &SchoolCa) -> anyhow::Result<i64> {
    let current = CertificateParams::from_ca_cert_pem(&read_text(&ca.dir.join("server.pem"))?)
        .context("server.pem holds no readable certificate")?;
    Ok(current.not_after.unix_timestamp())
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
pub fn renew_if_due(ca: &SchoolCa, hostnames: &[String], now: i64) -> anyhow::Result<bool> {
    let dir = ca.dir.as_path();
    finish_renewal(dir)?;
    let Some(reason) = renewal_reason(dir, hostnames, now)? else {
        return Ok(false);
    };
    check_signable(&ca.pem, hostnames)?;
    let (key, pem) = ca.issue_server(hostnames, now)?;
    for name in ["server.key.tmp", "server.pem.tmp"] {
        let _ = std::fs::remove_file(dir.join(name));
    }
    write_secret_file(
        &dir.join("server.key.tmp"),
        &ca.seal.seal(SERVER_KEY, key.as_bytes()),
    )?;
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
/// [`renew_if_due`]), then loads them, and the CA.
pub fn load_or_create(
    dir: &Path,
    hostnames: &[String],
    now: i64,
    seal: TlsSeal,
) -> anyhow::Result<(Tls, SchoolCa)> {
    if !dir.exists() {
        // Make everything in a staging folder and rename it into place, so a crash during first
        // start never leaves half a CA behind.
        let staging = dir.with_extension("new");
        if staging.exists() {
            std::fs::remove_dir_all(&staging)?;
        }
        std::fs::create_dir_all(&staging)
            .with_context(|| format!("cannot create {}", staging.display()))?;
        create(&staging, hostnames, now, &seal)?;
        std::fs::rename(&staging, dir)?;
        if let Some(parent) = dir.parent() {
            std::fs::File::open(parent)?.sync_all()?;
        }
        tracing::info!(
            "created the school CA and server certificate in {}",
            dir.display()
        );
    }
    let ca = SchoolCa::load(dir, seal)?;
    renew_if_due(&ca, hostnames, now)?;
    Ok((load(&ca)?, ca))
}

/// Loads the TLS settings of both listeners from the CA's folder. A server key left in plain PEM
/// by an older version is sealed first.
pub fn load(ca: &SchoolCa) -> anyhow::Result<Tls> {
    let dir = ca.dir.as_path();
    let key_path = dir.join(SERVER_KEY);
    let stored = zeroize::Zeroizing::new(
        std::fs::read(&key_path).with_context(|| format!("cannot read {}", key_path.display()))?,
    );
    let key_pem = if stored.starts_with(b"-----BEGIN") {
        let tmp = dir.join("server.key.tmp");
        let _ = std::fs::remove_file(&tmp);
        write_secret_file(&tmp, &ca.seal.seal(SERVER_KEY, &stored))?;
        std::fs::rename(&tmp, &key_path)?;
        std::fs::File::open(dir)?.sync_all()?;
        tracing::info!("sealed the server's TLS key under the master key");
        zeroize::Zeroizing::new(stored.to_vec())
    } else {
        ca.seal.open(SERVER_KEY, &stored)?
    };
    let (ca_pem, cert_pem) = (dir.join("ca.pem"), dir.join("server.pem"));
    let read = |p: &Path| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()));
    let ca_der = rustls_pemfile::certs(&mut read(&ca_pem)?.as_slice())
        .next()
        .context("ca.pem holds no certificate")??;
    let chain =
        rustls_pemfile::certs(&mut read(&cert_pem)?.as_slice()).collect::<Result<Vec<_>, _>>()?;
    let key =
        rustls_pemfile::private_key(&mut key_pem.as_slice())?.context("server.key holds no key")?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut web = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain.clone(), key.clone_key())
        .context("server certificate and key do not match")?;
    web.alpn_protocols = vec![b"http/1.1".to_vec()];

    // Devices: a certificate chaining to the school CA, within its dates, or no handshake at all.
    // Revocation is checked on every request (see `http::state::DeviceAuth`), so it takes effect at once.
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

    fn seal(tmp: &Path) -> TlsSeal {
        crate::store::vault::MasterKey::load_or_create(&tmp.join("master.key"))
            .unwrap()
            .tls_seal()
    }

    #[test]
    fn the_server_certificate_is_renewed_when_due_or_renamed_and_a_crash_is_finished() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("tls");
        let hosts = names(&["localhost", "127.0.0.1"]);
        let now = 1_800_000_000;
        let (_, ca_) = load_or_create(&dir, &hosts, now, seal(tmp.path())).unwrap();
        let ca_ = &ca_;
        let first = not_after(&dir);
        assert_eq!(first, now + SERVER_CERT_DAYS * DAY);
        let ca = read_text(&dir.join("ca.pem")).unwrap();

        // Not yet due, same names: left alone.
        assert!(!renew_if_due(ca_, &hosts, now + 300 * DAY).unwrap());
        assert_eq!(not_after(&dir), first);

        // Within 30 days of its end: a new certificate from the same CA, with a new key that
        // matches it (load would refuse a mismatched pair).
        let key_before = std::fs::read(dir.join("server.key")).unwrap();
        let later = now + (SERVER_CERT_DAYS - 20) * DAY;
        assert!(renew_if_due(ca_, &hosts, later).unwrap());
        assert_eq!(not_after(&dir), later + SERVER_CERT_DAYS * DAY);
        assert_ne!(std::fs::read(dir.join("server.key")).unwrap(), key_before);
        assert_eq!(read_text(&dir.join("ca.pem")).unwrap(), ca);
        assert!(read_text(&dir.join("server.pem")).unwrap().ends_with(&ca));
        load(ca_).unwrap();

        // A hostname added to the config: renewed at once.
        let more = names(&["localhost", "127.0.0.1", "lessonlens.school.internal"]);
        assert!(renew_if_due(ca_, &more, later + DAY).unwrap());
        assert!(!renew_if_due(ca_, &more, later + DAY).unwrap());

        // A crash after both new files were complete but before they were renamed: the next
        // start finishes the job, and the pair matches.
        let (key, pem) = ca_.issue_server(&more, later + 2 * DAY).unwrap();
        write_secret_file(&dir.join("server.key.new"), key.as_bytes()).unwrap();
        write_public(&dir.join("server.pem.new"), &pem).unwrap();
        load_or_create(&dir, &more, later + 2 * DAY, seal(tmp.path())).unwrap();
        assert_eq!(not_after(&dir), later + 2 * DAY + SERVER_CERT_DAYS * DAY);
        assert!(!dir.join("server.pem.new").exists() && !dir.join("server.key.new").exists());

        // A crash before the certificate was complete: the half-made pair is thrown away.
        write_secret_file(&dir.join("server.key.new"), b"half").unwrap();
        load_or_create(&dir, &more, later + 2 * DAY, seal(tmp.path())).unwrap();
        assert!(!dir.join("server.key.new").exists());
    }

    /// Issue 14.5: the CA key rests sealed under the master key (a plain one from before is
    /// sealed at start), and a new CA may sign only the school's own names.
    #[test]
    fn the_ca_key_is_sealed_and_the_ca_is_name_constrained() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("tls");
        let hosts = names(&["localhost", "127.0.0.1", "lessonlens.school.example"]);
        let now = 1_800_000_000;
        let (_, ca) = load_or_create(&dir, &hosts, now, seal(tmp.path())).unwrap();
        assert!(!dir.join("ca.key").exists());
        let sealed = std::fs::read(dir.join("ca.key.sealed")).unwrap();
        assert!(!String::from_utf8_lossy(&sealed).contains("PRIVATE KEY"));
        let server_key = std::fs::read(dir.join("server.key")).unwrap();
        assert!(!String::from_utf8_lossy(&server_key).contains("PRIVATE KEY"));
        // Another master key opens nothing.
        let other = tempfile::tempdir().unwrap();
        assert!(SchoolCa::load(&dir, seal(other.path())).is_err());

        // A plain key left by an older version is sealed and removed.
        let key_pem = seal(tmp.path()).open(CA_KEY, &sealed).unwrap();
        std::fs::remove_file(dir.join("ca.key.sealed")).unwrap();
        write_secret_file(&dir.join("ca.key"), &key_pem).unwrap();
        let again = SchoolCa::load(&dir, seal(tmp.path())).unwrap();
        assert!(!dir.join("ca.key").exists() && dir.join("ca.key.sealed").exists());
        assert_eq!(again.fingerprint, ca.fingerprint);

        // The constraint: the school's names, private addresses, the names it was made for.
        let nc = CertificateParams::from_ca_cert_pem(&ca.pem)
            .unwrap()
            .name_constraints
            .expect("name constraints");
        for ok in [
            "localhost",
            "lessonlens.internal",
            "a.b.lan",
            "lessonlens.school.example",
            "10.1.2.3",
            "192.168.0.9",
            "::1",
        ] {
            assert!(permits(&nc.permitted_subtrees, ok), "{ok}");
        }
        for no in [
            "www.google.com",
            "school.example",
            "8.8.8.8",
            "2001:db8::1",
            "evil-localhost",
        ] {
            assert!(!permits(&nc.permitted_subtrees, no), "{no}");
        }
        let err = renew_if_due(&ca, &names(&["www.bank.example"]), now + DAY)
            .unwrap_err()
            .to_string();
        assert!(err.contains("may not sign"), "{err}");
    }
}
