//! The real `lessonlens-server` in a temp dir: starting, killing and restarting it, its admin CLI,
//! signing in, and enrolling devices with it.

use crate::{bin, run_with_stdin};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// The first column of every row `sql` returns.
pub fn column<T: rusqlite::types::FromSql>(
    db: &rusqlite::Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Vec<T> {
    db.prepare(sql)
        .unwrap()
        .query_map(params, |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// A running `lessonlens-server` in its own temp dir, killed on drop.
pub struct Server {
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// The device API's port (mutual TLS).
    pub device_port: u16,
    child: Option<Child>,
}

/// A device enrolled with a [`Server`] by the real `lessonlens-capture enroll`.
#[derive(Clone, Debug)]
pub struct Device {
    pub name: String,
    /// Its key, certificate and the school CA.
    pub identity: PathBuf,
}

/// The port at the end of `line` (`... https://127.0.0.1:PORT`).
fn port_of(line: &str) -> u16 {
    line.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected line {line:?}"))
}

/// Starts the server on the config in `dir`; returns the process and the ports it listens on
/// (web, device API).
fn spawn_server(dir: &Path) -> (Child, u16, u16) {
    let mut child = Command::new(bin("lessonlens-server"))
        .arg("--config")
        .arg(dir.join("server.toml"))
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = || lines.next().expect("server printed nothing").unwrap();
    let (port, device_port) = (port_of(&next()), port_of(&next()));
    // Keep reading stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, port, device_port)
}

impl Server {
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("server.toml")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn ca_file(&self) -> PathBuf {
        self.data_dir().join("tls/ca.pem")
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The device API (mutual TLS).
    pub fn device_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.device_port)
    }

    /// Creates the config, then starts the server and waits for its address.
    pub fn start(web_dir: &Path) -> Server {
        Server::start_with(web_dir, "")
    }

    /// Like [`Server::start`], with `extra` appended to the config file.
    pub fn start_with(web_dir: &Path, extra: &str) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let secrets = dir.path().join("secrets");
        std::fs::create_dir(&secrets).unwrap();
        std::fs::write(
            dir.path().join("server.toml"),
            format!(
                "listen = \"127.0.0.1:0\"\ndevice_listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nmaster_key_file = \"{}\"\nweb_dir = \"{}\"\n{extra}",
                dir.path().join("data").display(),
                secrets.join("master.key").display(),
                web_dir.display()
            ),
        )
        .unwrap();
        let (child, port, device_port) = spawn_server(dir.path());
        Server {
            dir,
            port,
            device_port,
            child: Some(child),
        }
    }

    /// The server process's id (for benchmarks that read its CPU time and memory).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server running").id()
    }

    /// Kills the server (SIGKILL), as a power cut or crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port and files.
    pub fn restart(&mut self) {
        self.kill();
        let config = self.config_path();
        let text = std::fs::read_to_string(&config).unwrap();
        // The device line first: once it names its port, only the web line still says 0.
        let text = text
            .replace(
                "device_listen = \"127.0.0.1:0\"",
                &format!("device_listen = \"127.0.0.1:{}\"", self.device_port),
            )
            .replace(
                "listen = \"127.0.0.1:0\"",
                &format!("listen = \"127.0.0.1:{}\"", self.port),
            );
        std::fs::write(&config, text).unwrap();
        let (child, port, device_port) = spawn_server(self.dir.path());
        assert_eq!((port, device_port), (self.port, self.device_port));
        self.child = Some(child);
    }

    /// How many segment rows recording `rec` has (init, media, end marker, poster) and whether
    /// its manifest said it stopped cleanly.
    pub fn segments_and_clean_stop(&self, rec: &str) -> (u64, bool) {
        self.db()
            .query_row(
                "SELECT (SELECT COUNT(*) FROM segments WHERE recording_id = ?1), clean_stop FROM recordings WHERE id = ?1",
                [rec],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)),
            )
            .unwrap()
    }

    /// The server's metadata database, read-only, to check what was committed.
    pub fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open_with_flags(
            self.data_dir().join("lessonlens.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap()
    }

    /// Runs a `lessonlens-server` admin command against this server's files.
    pub fn cli(&self, args: &[&str], stdin: &str) -> std::process::Output {
        run_with_stdin("lessonlens-server", &self.config_path(), args, stdin)
    }

    /// Runs an admin command that must succeed; returns what it printed.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args, "");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// GETs `path` from the web API as the session `cookie`; the JSON answer (panics otherwise).
    pub fn get_json(&self, path: &str, cookie: &str) -> serde_json::Value {
        self.get(path, cookie).into_json().unwrap()
    }

    /// GETs `path` as the person whose session `cookie` is, as text; fails the test on an error.
    pub fn get_text(&self, path: &str, cookie: &str) -> String {
        self.get(path, cookie).into_string().unwrap()
    }

    fn get(&self, path: &str, cookie: &str) -> ureq::Response {
        self.agent()
            .get(&format!("{}{path}", self.url()))
            .set("cookie", cookie)
            .call()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// `method path` on the web listener as the person with session `cookie`, with a JSON body if
    /// given: the status and the JSON answer (null if it is not JSON).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        cookie: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let req = self
            .agent()
            .request(method, &format!("{}{path}", self.url()))
            .set("cookie", cookie);
        let res = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        match res {
            Ok(r) => (r.status(), r.into_json().unwrap_or(serde_json::Value::Null)),
            Err(ureq::Error::Status(code, r)) => {
                (code, r.into_json().unwrap_or(serde_json::Value::Null))
            }
            Err(e) => panic!("{method} {path}: {e}"),
        }
    }

    pub fn add_user(&self, username: &str, password: &str, role: &str) {
        let out = self.cli(
            &[
                "user",
                "add",
                username,
                "--display-name",
                username,
                "--role",
                role,
            ],
            &format!("{password}\n"),
        );
        assert!(
            out.status.success(),
            "user add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Makes a one-time enrollment code for device `name` (admin CLI); returns the code and the
    /// CA fingerprint printed with it.
    pub fn enrollment_code(&self, name: &str) -> (String, String) {
        let out = self.cli(&["device", "enroll", name], "");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "device enroll: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let after = |prefix: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(prefix))
                .unwrap_or_else(|| panic!("no {prefix:?} in {text}"))
                .trim()
                .to_string()
        };
        (
            after(&format!("enrollment code for {name}: ")),
            after("school CA fingerprint (SHA-256) "),
        )
    }

    /// The school CA's SHA-256 fingerprint, computed from its certificate file.
    pub fn ca_fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let pem = std::fs::read(self.ca_file()).unwrap();
        let der = rustls_pemfile::certs(&mut pem.as_slice())
            .next()
            .unwrap()
            .unwrap();
        hex::encode_upper(Sha256::digest(&der))
    }

    /// Runs `lessonlens-capture enroll` for a device with identity folder under this server's
    /// temp dir; returns the command's output.
    pub fn run_enroll(&self, name: &str, code: &str, fingerprint: &str) -> std::process::Output {
        let home = self.dir.path().join("devices").join(name);
        std::fs::create_dir_all(&home).unwrap();
        let config = self.capture_config(
            &home,
            &Device {
                name: name.into(),
                identity: home.join("identity"),
            },
            "",
        );
        run_with_stdin(
            "lessonlens-capture",
            &config,
            &["enroll", "--url", &self.url(), "--ca-sha256", fingerprint],
            &format!("{code}\n"),
        )
    }

    /// Enrols device `name` as an admin and the device itself would: a code from the admin CLI,
    /// then `lessonlens-capture enroll`, which makes the key and gets the certificate.
    pub fn add_device(&self, name: &str) -> Device {
        let (code, fingerprint) = self.enrollment_code(name);
        let out = self.run_enroll(name, &code, &fingerprint);
        assert!(
            out.status.success(),
            "capture enroll: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Device {
            name: name.into(),
            identity: self.dir.path().join("devices").join(name).join("identity"),
        }
    }

    /// An HTTPS agent for the device API that presents `device`'s certificate.
    pub fn device_agent(&self, device: &Device) -> ureq::Agent {
        let pem = std::fs::read(device.identity.join("identity.pem")).unwrap();
        let key = rustls_pemfile::private_key(&mut pem.as_slice())
            .unwrap()
            .unwrap();
        let chain = rustls_pemfile::certs(&mut pem.as_slice())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        self.agent_presenting(chain, key)
    }

    /// An HTTPS agent that trusts this server's CA and presents `chain` (signed with `key`).
    pub fn agent_presenting(
        &self,
        chain: Vec<rustls::pki_types::CertificateDer<'static>>,
        key: rustls::pki_types::PrivateKeyDer<'static>,
    ) -> ureq::Agent {
        agent_with(self.client_tls().with_client_auth_cert(chain, key).unwrap())
    }

    fn client_tls(
        &self,
    ) -> rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert> {
        let pem = std::fs::read(self.ca_file()).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pemfile::certs(&mut pem.as_slice()) {
            roots.add(c.unwrap()).unwrap();
        }
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
    }

    /// A TLS client config that trusts this server's CA only, for raw connections.
    pub fn tls_config(&self) -> Arc<rustls::ClientConfig> {
        Arc::new(self.client_tls().with_no_client_auth())
    }

    /// TLS settings that trust this server's CA and present `device`'s certificate, for a
    /// connection made by hand.
    pub fn device_tls(&self, device: &Device) -> Arc<rustls::ClientConfig> {
        let pem = std::fs::read(device.identity.join("identity.pem")).unwrap();
        let key = rustls_pemfile::private_key(&mut pem.as_slice())
            .unwrap()
            .unwrap();
        let chain = rustls_pemfile::certs(&mut pem.as_slice())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        Arc::new(self.client_tls().with_client_auth_cert(chain, key).unwrap())
    }

    /// The school's unassigned key, as `device` fetches it (what it seals to while offline).
    pub fn unassigned_key(&self, device: &Device) -> lessonlens_proto::PublicKey {
        self.key_at(&self.device_agent(device), "unassigned-key")
    }

    /// The public key the device API answers at `path` (under `/api/device/v1/`).
    fn key_at(&self, agent: &ureq::Agent, path: &str) -> lessonlens_proto::PublicKey {
        let key: lessonlens_proto::wire::TeacherKey = agent
            .get(&format!("{}/api/device/v1/{path}", self.device_url()))
            .call()
            .unwrap()
            .into_json()
            .unwrap();
        lessonlens_proto::PublicKey::from_hex(&key.public_key).unwrap()
    }

    /// The device listener's port.
    pub fn device_port(&self) -> u16 {
        self.device_port
    }

    /// The web listener's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// An HTTPS agent that trusts this server's CA only.
    pub fn agent(&self) -> ureq::Agent {
        agent_with(self.client_tls().with_no_client_auth())
    }

    /// A teacher's public key, fetched as a device would (`agent` from [`Server::device_agent`]).
    pub fn teacher_key(&self, agent: &ureq::Agent, username: &str) -> lessonlens_proto::PublicKey {
        self.key_at(agent, &format!("teachers/{username}/key"))
    }

    /// Signs in as `username` and sets their device code on their Account page's API (admins
    /// cannot); returns the HTTP status.
    pub fn set_device_code(&self, username: &str, code: &str) -> u16 {
        let agent = self.agent();
        let cookie = self.login(&agent, username, &format!("{username}-password"));
        match agent
            .put(&format!("{}/api/me/device-code", self.url()))
            .set("cookie", &cookie)
            .send_json(
                serde_json::json!({ "code": code, "password": format!("{username}-password") }),
            ) {
            Ok(r) => r.status(),
            Err(ureq::Error::Status(code, _)) => code,
            Err(e) => panic!("setting a device code: {e}"),
        }
    }

    /// Signs in and returns the session cookie header value.
    pub fn login(&self, agent: &ureq::Agent, username: &str, password: &str) -> String {
        let res = agent
            .post(&format!("{}/api/login", self.url()))
            .send_json(serde_json::json!({"username": username, "password": password}))
            .expect("login");
        let cookie = res
            .header("set-cookie")
            .expect("session cookie")
            .to_string();
        for attr in ["HttpOnly", "Secure", "SameSite=Strict"] {
            assert!(cookie.contains(attr), "cookie lacks {attr}: {cookie}");
        }
        cookie.split(';').next().unwrap().to_string()
    }
}

fn agent_with(tls: rustls::ClientConfig) -> ureq::Agent {
    ureq::AgentBuilder::new()
        .tls_config(Arc::new(tls))
        .timeout(Duration::from_secs(30))
        .build()
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}
