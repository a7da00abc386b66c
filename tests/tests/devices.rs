//! Devices and mutual TLS (issue 4): enrollment with a one-time code that pins the school CA, the
//! device API refusing every certificate it should (none, a foreign CA's, an expired one, a
//! revoked device's), and renewal.

use lessonlens_e2e::{column, web_dir, Device, Server};
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// GET a teacher's key on the device API with `agent`: the status, or 0 if the TLS handshake
/// failed, with the error text.
fn fetch_key(server: &Server, agent: &ureq::Agent) -> (u16, String) {
    match agent
        .get(&format!(
            "{}/api/device/v1/teachers/alice/key",
            server.device_url()
        ))
        .call()
    {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
        Err(e) => (0, e.to_string()),
    }
}

/// A client certificate for `key`, valid from `not_before` to `not_after` (Unix seconds), signed
/// by `issuer` with `issuer_key`.
fn client_cert(
    key: &KeyPair,
    issuer: &rcgen::Certificate,
    issuer_key: &KeyPair,
    not_before: i64,
    not_after: i64,
) -> CertificateDer<'static> {
    let at = |t| time::OffsetDateTime::from_unix_timestamp(t).unwrap();
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, "room-x");
    p.not_before = at(not_before);
    p.not_after = at(not_after);
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p.signed_by(key, issuer, issuer_key).unwrap().der().clone()
}

fn key_der(key: &KeyPair) -> PrivateKeyDer<'static> {
    PrivatePkcs8KeyDer::from(key.serialize_der()).into()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn a_device_enrols_once_with_a_code_that_pins_the_school_ca() {
    let server = Server::start(&web_dir());
    let (code, fingerprint) = server.enrollment_code("room-12");

    // A fingerprint that is not the school CA's: the device refuses to talk to the server at
    // all, so the code is not spent.
    let wrong = "AB:".repeat(31) + "AB";
    let out = server.run_enroll("room-12", &code, &wrong);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not match the fingerprint"), "{err}");

    // A request that is not a valid CSR is refused with what to do, and the code survives it.
    let garbled = server
        .agent()
        .post(&format!("{}/api/enroll", server.url()))
        .send_json(serde_json::json!({"code": code, "csr": "not a certificate request"}));
    match garbled {
        Err(ureq::Error::Status(400, r)) => {
            let body = r.into_string().unwrap();
            assert!(body.contains("certificate signing request"), "{body}");
        }
        other => panic!("expected 400, got {other:?}"),
    }

    let out = server.run_enroll("room-12", &code, &fingerprint);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("enrolled as room-12"));
    let device = Device {
        name: "room-12".into(),
        identity: server.dir.path().join("devices/room-12/identity"),
    };
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&device.identity), 0o700);
    assert_eq!(mode(&device.identity.join("identity.pem")), 0o600);
    // The server keeps only each certificate's hash; the key never left the device.
    let db = server.db();
    let hashes: Vec<Vec<u8>> = column(&db, "SELECT sha256 FROM device_certs", []);
    assert_eq!(hashes.len(), 1);
    assert_eq!(hashes[0].len(), 32);

    // The code was used up.
    let again = server.run_enroll("room-13", &code, &fingerprint);
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("wrong, used or expired"), "{err}");

    // The enrolled device reaches the device API.
    server.add_user("alice", "alice-password", "teacher");
    assert_eq!(fetch_key(&server, &server.device_agent(&device)).0, 200);

    // An admin can make a code on the web too; the device enrols with it the same way.
    let agent = server.agent();
    let ada = {
        server.add_user("ada", "ada-password", "admin");
        server.login(&agent, "ada", "ada-password")
    };
    let made: serde_json::Value = agent
        .post(&format!("{}/api/admin/devices", server.url()))
        .set("cookie", &ada)
        .send_json(serde_json::json!({"name": "room-14"}))
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(made["ca_sha256"], fingerprint.as_str());
    // A name that is not one is refused.
    let bad = agent
        .post(&format!("{}/api/admin/devices", server.url()))
        .set("cookie", &ada)
        .send_json(serde_json::json!({"name": "room 12; drop"}));
    assert!(matches!(bad, Err(ureq::Error::Status(400, _))), "{bad:?}");
    let out = server.run_enroll("room-14", made["code"].as_str().unwrap(), &fingerprint);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = server.get_json("/api/admin/devices", &ada);
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["room-12", "room-14"]);
}

#[test]
fn the_device_api_refuses_every_certificate_it_should() {
    let server = Server::start(&web_dir());
    server.add_user("alice", "alice-password", "teacher");
    let device = server.add_device("room-1");
    let agent = server.device_agent(&device);
    assert_eq!(fetch_key(&server, &agent).0, 200);

    // No certificate: no handshake.
    let (code, err) = fetch_key(&server, &server.agent());
    assert_eq!(code, 0, "{err}");

    // A certificate from another CA.
    let foreign_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "lessonlens school CA");
    let foreign_ca = ca.self_signed(&foreign_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = client_cert(&key, &foreign_ca, &foreign_key, now() - 60, now() + 3600);
    let (code, err) = fetch_key(&server, &server.agent_presenting(vec![cert], key_der(&key)));
    assert_eq!(code, 0, "a foreign CA's certificate: {err}");

    // The school CA's, but expired (as if signed by someone holding the CA key a year ago).
    let tls = server.data_dir().join("tls");
    // The CA key rests sealed under the master key; this test holds both, as a thief would need to.
    let master = lessonlens_server::store::vault::MasterKey::load_or_create(
        &server.dir.path().join("secrets/master.key"),
    )
    .unwrap();
    let pem = master
        .tls_seal()
        .open(
            "ca.key.sealed",
            &std::fs::read(tls.join("ca.key.sealed")).unwrap(),
        )
        .unwrap();
    let school_key = KeyPair::from_pem(std::str::from_utf8(&pem).unwrap()).unwrap();
    let school_ca =
        CertificateParams::from_ca_cert_pem(&std::fs::read_to_string(tls.join("ca.pem")).unwrap())
            .unwrap()
            .self_signed(&school_key)
            .unwrap();
    let old = client_cert(
        &key,
        &school_ca,
        &school_key,
        now() - 86_400 * 30,
        now() - 86_400,
    );
    let (code, err) = fetch_key(&server, &server.agent_presenting(vec![old], key_der(&key)));
    assert_eq!(code, 0, "an expired certificate: {err}");

    // The school CA's and current, but never issued to a device: the handshake succeeds and
    // the request is refused.
    let stray = client_cert(&key, &school_ca, &school_key, now() - 60, now() + 3600);
    let (code, body) = fetch_key(
        &server,
        &server.agent_presenting(vec![stray], key_der(&key)),
    );
    assert_eq!(code, 401, "{body}");

    // Revoked: refused at once, even on the connection the device already holds.
    assert_eq!(fetch_key(&server, &agent).0, 200);
    let out = server.cli(&["device", "revoke", "room-1"], "");
    assert!(out.status.success());
    let (code, body) = fetch_key(&server, &agent);
    assert_eq!(code, 401);
    assert!(body.contains("revoked"), "{body}");
    // And it cannot come back through a new code under the same name.
    let out = server.cli(&["device", "enroll", "room-1"], "");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("revoked"));
}

#[test]
fn a_device_renews_its_certificate_with_a_fresh_key() {
    let server = Server::start(&web_dir());
    server.add_user("alice", "alice-password", "teacher");
    let device = server.add_device("room-1");
    let before = std::fs::read_to_string(device.identity.join("identity.pem")).unwrap();
    let old_agent = server.device_agent(&device);

    let config = server.dir.path().join("devices/room-1/capture.toml");
    let out = std::process::Command::new(lessonlens_e2e::bin("lessonlens-capture"))
        .arg("--config")
        .arg(&config)
        .arg("renew")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = std::fs::read_to_string(device.identity.join("identity.pem")).unwrap();
    let key_of = |pem: &str| {
        pem.split("-----END PRIVATE KEY-----")
            .next()
            .unwrap()
            .to_string()
    };
    assert_ne!(key_of(&before), key_of(&after), "a new key");
    assert_eq!(fetch_key(&server, &server.device_agent(&device)).0, 200);
    // The earlier certificate stays good until it expires (in case the renewal's answer was
    // lost); revoking the device ends both.
    assert_eq!(fetch_key(&server, &old_agent).0, 200);
    assert_eq!(
        column::<i64>(&server.db(), "SELECT COUNT(*) FROM device_certs", [])[0],
        2
    );
    assert!(server
        .cli(&["device", "revoke", "room-1"], "")
        .status
        .success());
    assert_eq!(fetch_key(&server, &old_agent).0, 401);
    assert_eq!(fetch_key(&server, &server.device_agent(&device)).0, 401);
}

/// Issue 14.6: a copied device identity. Once the real device uses its renewed certificate, the
/// copy's renewal is refused, and the admin's device list (in the browser) says that two machines
/// have used the identity.
#[test]
fn a_copied_identity_is_refused_and_shown_to_the_admin() {
    let server = Server::start(&web_dir());
    server.add_user("ada", "ada-password", "admin");
    server.add_user("alice", "alice-password", "teacher");
    let device = server.add_device("room-1");
    let copy = server.dir.path().join("copied-identity");
    copy_dir(&device.identity, &copy);
    let config = server.dir.path().join("devices/room-1/capture.toml");
    let renew = || {
        std::process::Command::new(lessonlens_e2e::bin("lessonlens-capture"))
            .arg("--config")
            .arg(&config)
            .arg("renew")
            .output()
            .unwrap()
    };
    let out = renew();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The real device uses its new certificate: the earlier one is retired.
    assert_eq!(fetch_key(&server, &server.device_agent(&device)).0, 200);

    // The copy (the identity as it was) tries to renew in its turn, from another machine.
    let real = server.dir.path().join("real-identity");
    std::fs::rename(&device.identity, &real).unwrap();
    copy_dir(&copy, &device.identity);
    let out = renew();
    assert!(!out.status.success(), "the copy renewed");
    std::fs::remove_dir_all(&device.identity).unwrap();
    std::fs::rename(&real, &device.identity).unwrap();
    assert_eq!(
        fetch_key(&server, &server.device_agent(&device)).0,
        200,
        "the real device carries on"
    );
    let (out, _) = server.browser_script(
        "admin_devices.mjs",
        "admin-devices",
        &[
            ("LL_USER", "ada:ada-password"),
            ("LL_DEVICE", "room-1"),
            ("LL_EXPECT", "Two machines have used this device's identity"),
        ],
    );
    assert!(
        out.contains("revoke it and enrol the real device again"),
        "{out}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
