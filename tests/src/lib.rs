//! Helpers for the end-to-end tests: locating the built binaries, starting a real server in a temp
//! dir, and the structural scanner that proves no plaintext media rests on disk.
//!
//! The binaries are built by `cargo build --workspace --bins` (README's test command does it).

pub mod media;
pub mod seaweed;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The web app's folder in the source tree.
pub fn web_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../web")
}

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

/// Runs `lessonlens-capture record once` for `teacher` for `seconds`, allowing 60 s to upload,
/// and returns its JSON report; fails the test if the capture fails.
pub fn record_once(config: &Path, teacher: &str, seconds: &str) -> serde_json::Value {
    let out = Command::new(bin("lessonlens-capture"))
        .arg("--config")
        .arg(config)
        .args([
            "record",
            "once",
            "--teacher",
            teacher,
            "--seconds",
            seconds,
            "--drain-seconds",
            "60",
        ])
        .output()
        .unwrap();
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "capture failed: {logs}");
    assert!(
        logs.contains("recording started") && !logs.contains('\x1b'),
        "logs to a pipe (or journald) are plain text: {logs:?}"
    );
    assert!(
        !logs.contains("CRITICAL"),
        "GStreamer reported a critical problem: {logs}"
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Path of a workspace binary next to the test executable (`target/<profile>/NAME`).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
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

    /// Writes a capture config for `device` of this server in `device_dir`; returns its path.
    /// It has `demo_mode` on (tests start recordings by username) unless `extra` sets it.
    pub fn capture_config(&self, device_dir: &Path, device: &Device, extra: &str) -> PathBuf {
        let path = device_dir.join("capture.toml");
        let demo = if extra.contains("demo_mode") {
            ""
        } else {
            "demo_mode = true\n"
        };
        std::fs::write(
            &path,
            format!(
                "server_url = \"{}\"\nidentity_dir = \"{}\"\nspool_dir = \"{}\"\n{demo}{extra}",
                self.device_url(),
                device.identity.display(),
                device_dir.join("spool").display()
            ),
        )
        .unwrap();
        path
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

    /// Starts the capture service (`lessonlens-capture run`) for `device` in `device_dir`, with its
    /// control API on a free loopback port and `extra` config; waits until it listens. Returns the
    /// process, its config and the control port.
    pub fn capture_service(
        &self,
        device_dir: &Path,
        device: &Device,
        extra: &str,
    ) -> (KillOnDrop, PathBuf, u16) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = self.capture_config(
            device_dir,
            device,
            &format!("control_addr = \"127.0.0.1:{port}\"\n{extra}"),
        );
        let mut service = KillOnDrop(
            Command::new(bin("lessonlens-capture"))
                .arg("--config")
                .arg(&config)
                .arg("run")
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let first = BufReader::new(service.0.stdout.take().unwrap())
            .lines()
            .next()
            .expect("the capture service printed nothing")
            .unwrap();
        assert!(first.contains(&format!("127.0.0.1:{port}")), "{first}");
        (service, config, port)
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
        let key: lessonlens_proto::wire::TeacherKey = agent
            .get(&format!(
                "{}/api/device/v1/teachers/{username}/key",
                self.device_url()
            ))
            .call()
            .unwrap()
            .into_json()
            .unwrap();
        lessonlens_proto::PublicKey::from_hex(&key.public_key).unwrap()
    }

    /// Runs `web/tests/watch.mjs`: in Debian's Chromium, `user` signs in, opens `recording` and
    /// plays it past `play_to` seconds. Returns the screenshot folder, `target/screenshots/<shots>`.
    pub fn watch_in_browser(
        &self,
        user: &str,
        password: &str,
        recording: &str,
        play_to: f64,
        shots: &str,
    ) -> PathBuf {
        self.browser_script(
            "watch.mjs",
            shots,
            &[
                ("LL_USER", user),
                ("LL_PASSWORD", password),
                ("LL_RECORDING", recording),
                ("LL_PLAY_TO", &play_to.to_string()),
            ],
        )
        .1
    }

    /// Runs `web/tests/SCRIPT` in node against this server, with `vars` on top of LL_URL,
    /// LL_SERVER_CERT and LL_SCREENSHOTS (`target/screenshots/SHOTS`). Fails the test if the script
    /// fails; returns its standard output and the screenshot folder.
    pub fn browser_script(
        &self,
        script: &str,
        shots: &str,
        vars: &[(&str, &str)],
    ) -> (String, PathBuf) {
        let web = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../web/tests")
            .join(script);
        let dir = bin("lessonlens-server")
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .join("screenshots")
            .join(shots);
        let out = Command::new("node")
            .arg(web)
            .env("LL_URL", format!("{}/", self.url()))
            .env("LL_SERVER_CERT", self.data_dir().join("tls/server.pem"))
            .env("LL_SCREENSHOTS", &dir)
            .envs(vars.iter().copied())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "browser check {script} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (String::from_utf8_lossy(&out.stdout).into_owned(), dir)
    }

    /// Uploads a small synthetic recording for `teacher` as `device`: the init segment, `media`
    /// media segments and a clean-stop manifest. Returns the recording id and the sealed segments
    /// as sent.
    pub fn upload_recording(
        &self,
        device: &Device,
        teacher: &str,
        media: u32,
    ) -> (lessonlens_proto::RecordingId, Vec<Vec<u8>>) {
        let pk = self.teacher_key(&self.device_agent(device), teacher);
        let rec = new_recording_id();
        (rec, self.upload_sealed(device, &pk, rec, media, None))
    }

    /// Uploads recording `rec` sealed to `pk` (a teacher's key, or the unassigned one with the
    /// offline `claim`) as `device`: the init segment, `media` media segments of 1000 bytes and a
    /// clean-stop manifest. Returns the sealed segments as sent.
    pub fn upload_sealed(
        &self,
        device: &Device,
        pk: &lessonlens_proto::PublicKey,
        rec: lessonlens_proto::RecordingId,
        media: u32,
        claim: Option<String>,
    ) -> Vec<Vec<u8>> {
        use lessonlens_proto::manifest::MANIFEST_VERSION;
        use lessonlens_proto::wire::SHA256_HEADER;
        use lessonlens_proto::{Manifest, ManifestSegment};
        use sha2::{Digest, Sha256};
        let agent = self.device_agent(device);
        let base = self.device_url();
        let segments: Vec<Vec<u8>> = (0..=media)
            .map(|index| sealed_segment(pk, rec, index, 7, 1000))
            .collect();
        for (index, body) in segments.iter().enumerate() {
            agent
                .put(&format!(
                    "{base}/api/device/v1/recordings/{rec}/segments/{index}"
                ))
                .set(SHA256_HEADER, &hex::encode(Sha256::digest(body)))
                .send_bytes(body)
                .expect("segment upload");
        }
        let manifest = Manifest {
            version: MANIFEST_VERSION,
            recording: rec,
            recipient: pk.fingerprint(),
            started_at: 0,
            segments: segments
                .iter()
                .enumerate()
                .map(|(i, b)| ManifestSegment {
                    index: i as u32,
                    sha256: hex::encode(Sha256::digest(b)),
                    start_us: 0,
                    duration_us: if i == 0 { 0 } else { 2_000_000 },
                })
                .collect(),
            clean_stop: true,
            claim,
        };
        agent
            .put(&format!("{base}/api/device/v1/recordings/{rec}/manifest"))
            .send_bytes(&manifest.to_json())
            .expect("manifest upload");
        segments
    }

    /// Uploads a poster frame for `rec` (sealed to `teacher`) as `device` does.
    pub fn upload_poster(
        &self,
        device: &Device,
        teacher: &str,
        rec: lessonlens_proto::RecordingId,
    ) {
        use sha2::{Digest, Sha256};
        let agent = self.device_agent(device);
        let pk = self.teacher_key(&agent, teacher);
        let index = lessonlens_proto::POSTER_INDEX;
        let body = sealed_segment(&pk, rec, index, 0xd8, 500);
        agent
            .put(&format!(
                "{}/api/device/v1/recordings/{rec}/segments/{index}",
                self.device_url()
            ))
            .set(
                lessonlens_proto::wire::SHA256_HEADER,
                &hex::encode(Sha256::digest(&body)),
            )
            .send_bytes(&body)
            .expect("poster upload");
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

/// Runs workspace binary `name --config CONFIG ARGS`, feeding it `stdin`.
pub fn run_with_stdin(
    name: &str,
    config: &Path,
    args: &[&str],
    stdin: &str,
) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(bin(name))
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Runs `lessonlens-capture --config CONFIG ARGS` with `stdin`, and returns the JSON it printed;
/// fails the test if the command failed.
pub fn capture_json(config: &Path, args: &[&str], stdin: &str) -> serde_json::Value {
    let out = run_with_stdin("lessonlens-capture", config, args, stdin);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A child process killed when dropped, so a failing test leaves no daemon running.
pub struct KillOnDrop(pub Child);

/// Starts a process that shares raw video or audio on `socket`, as a camera service would.
pub fn share(what: &str, socket: &Path) -> KillOnDrop {
    let _ = std::fs::remove_file(socket);
    let desc = media::shared_source(what, socket);
    let child = Command::new("gst-launch-1.0")
        .arg("-q")
        .args(desc.split(' '))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("gst-launch-1.0 (gstreamer1.0-tools) is installed by scripts/setup.sh");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        assert!(
            Instant::now() < deadline,
            "the {what} did not start sharing"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    KillOnDrop(child)
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for KillOnDrop {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

/// A `lessonlens-capture` process that has started recording.
pub struct Capture {
    pub child: Child,
    /// The recording id it logged.
    pub recording: String,
    /// When it logged "capturing" (its pipeline is playing): crash-loss bounds count from here.
    pub capturing_at: Instant,
    /// Everything it logged after that, collected in the background.
    pub log: Arc<Mutex<String>>,
}

/// Starts `lessonlens-capture --config CONFIG ARGS` and returns once its pipeline is capturing.
/// stdout is piped for the caller; stderr is read here.
pub fn start_capture(config: &Path, args: &[&str]) -> Capture {
    let mut child = Command::new(bin("lessonlens-capture"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut recording = None;
    let mut seen = String::new();
    loop {
        let line = match lines.next() {
            Some(Ok(l)) => l,
            _ => panic!("capture exited before capturing:\n{seen}"),
        };
        seen.push_str(&line);
        seen.push('\n');
        if let Some(rest) = line
            .split("recording=")
            .nth(1)
            .filter(|_| line.contains("recording started"))
        {
            recording = rest.split_whitespace().next().map(str::to_string);
        }
        if line.contains("capturing") {
            break;
        }
    }
    let capturing_at = Instant::now();
    let log = Arc::new(Mutex::new(String::new()));
    let sink = log.clone();
    std::thread::spawn(move || {
        for l in lines.map_while(Result::ok) {
            let mut s = sink.lock().unwrap();
            s.push_str(&l);
            s.push('\n');
        }
    });
    Capture {
        child,
        recording: recording.expect("capture logged no recording id"),
        capturing_at,
        log,
    }
}

/// Waits until `dir` (recursively) holds at least `n` `.seg` files, or panics after `timeout`.
pub fn wait_for_segments(dir: &Path, n: usize, timeout: Duration) {
    fn count(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .map(|e| {
                        let p = e.path();
                        if p.is_dir() {
                            count(&p)
                        } else {
                            usize::from(p.extension().is_some_and(|x| x == "seg"))
                        }
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    let start = Instant::now();
    while count(dir) < n {
        assert!(
            start.elapsed() < timeout,
            "fewer than {n} segments in {} after {timeout:?}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A fresh random recording id, as a device makes one.
pub fn new_recording_id() -> lessonlens_proto::RecordingId {
    use rand_core::TryRngCore;
    let mut id = [0u8; 16];
    rand_core::OsRng.try_fill_bytes(&mut id).unwrap();
    lessonlens_proto::RecordingId::from_random_bytes(id)
}

/// A sealed segment of `len` bytes of `fill`, 2 s long (0 s for the init segment), as a device
/// would upload it.
pub fn sealed_segment(
    pk: &lessonlens_proto::PublicKey,
    recording: lessonlens_proto::RecordingId,
    index: u32,
    fill: u8,
    len: usize,
) -> Vec<u8> {
    use lessonlens_proto::envelope::{seal, Label, SealParams, DEFAULT_CHUNK_SIZE};
    use rand_core::TryRngCore;
    let params = SealParams {
        label: Label { recording, index },
        final_segment: false,
        start_us: 0,
        duration_us: if index == 0 || index == lessonlens_proto::POSTER_INDEX {
            0
        } else {
            2_000_000
        },
        chunk_size: DEFAULT_CHUNK_SIZE,
    };
    seal(
        &params,
        pk,
        &vec![fill; len],
        &mut rand_core::OsRng.unwrap_err(),
    )
    .unwrap()
}

const BRANDS: [&[u8; 4]; 8] = [
    b"isom", b"iso5", b"iso6", b"mp41", b"mp42", b"cmfc", b"dash", b"avc1",
];

/// Looks for plaintext media structurally (see DESIGN.md, "Testing the promises"): an `ftyp` box
/// with a plausible size and a known major brand, a `moof` whose first child is `mfhd`, an `mdat`
/// whose size fits in the file, or an H.264 start code followed by an SPS NAL header and a known
/// profile. Returns the offset and what was found.
pub fn find_plaintext_media(bytes: &[u8]) -> Option<(usize, &'static str)> {
    let be32 = |o: usize| u32::from_be_bytes(bytes[o..o + 4].try_into().unwrap()) as usize;
    for i in 0..bytes.len().saturating_sub(8) {
        match &bytes[i..i + 4] {
            b"ftyp" if i >= 4 => {
                let size = be32(i - 4);
                if (8..=1024).contains(&size) && BRANDS.iter().any(|b| &bytes[i + 4..i + 8] == *b) {
                    return Some((i - 4, "ftyp box"));
                }
            }
            b"moof" if i >= 4 && i + 12 <= bytes.len() && &bytes[i + 8..i + 12] == b"mfhd" => {
                return Some((i - 4, "moof box"));
            }
            b"mdat" if i >= 4 => {
                let size = be32(i - 4);
                // Together with the neighbouring checks this keeps random ciphertext from matching.
                if size >= 16 && i - 4 + size == bytes.len() && i >= 12 {
                    return Some((i - 4, "mdat box"));
                }
            }
            // A JPEG (the poster frame): start of image, then a JFIF/Exif segment or the
            // quantisation tables jpegenc writes first.
            [0xff, 0xd8, 0xff, m] if matches!(m, 0xe0 | 0xe1 | 0xdb) && bytes.len() > i + 8 => {
                let len = u16::from_be_bytes([bytes[i + 4], bytes[i + 5]]) as usize;
                if (4..=1024).contains(&len) {
                    return Some((i, "JPEG image"));
                }
            }
            [0, 0, 0, 1] => {
                let nal = bytes[i + 4];
                if nal & 0x80 == 0
                    && nal & 0x1f == 7
                    && [66, 77, 88, 100, 110, 122, 244].contains(&bytes[i + 5])
                {
                    return Some((i, "H.264 SPS"));
                }
            }
            _ => {}
        }
    }
    None
}

/// Scans every file under `dir`; returns the first plaintext media found, with its path.
pub fn scan_tree(dir: &Path) -> Option<String> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return None;
    };
    for e in rd.flatten() {
        let path = e.path();
        if path.is_dir() {
            if let Some(hit) = scan_tree(&path) {
                return Some(hit);
            }
        } else if let Ok(bytes) = std::fs::read(&path) {
            if let Some((off, what)) = find_plaintext_media(&bytes) {
                return Some(format!("{what} at offset {off} of {}", path.display()));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scanner_finds_planted_boxes_and_ignores_noise() {
        // Pseudo-random noise (xorshift) stands in for ciphertext.
        let mut x: u64 = 0x9e3779b97f4a7c15;
        let mut noise: Vec<u8> = (0..1 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert_eq!(find_plaintext_media(&noise), None);
        let mut with_ftyp = noise.clone();
        with_ftyp[5000..5016].copy_from_slice(b"\0\0\0\x18ftypiso6\0\0\0\0");
        assert_eq!(find_plaintext_media(&with_ftyp), Some((5000, "ftyp box")));
        noise[700..716].copy_from_slice(b"\0\0\x01\0moof\0\0\0\x10mfhd");
        assert_eq!(find_plaintext_media(&noise), Some((700, "moof box")));
    }
}
