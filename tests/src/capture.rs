//! The real `lessonlens-capture`: its config for a test server, the service, one-off recordings,
//! and the processes that play a camera or microphone over `shm`.

use crate::server::{Device, Server};
use crate::{bin, media, run_with_stdin, KillOnDrop};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

impl Server {
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
}

/// Polls the capture service's `status` until `ok` holds, for at most `within`; fails the test
/// with `what` and the last status otherwise. Returns the status that passed.
pub fn wait_for(
    config: &Path,
    what: &str,
    within: Duration,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + within;
    loop {
        let s = capture_json(config, &["status"], "");
        if ok(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "{what}: status is {s}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Writes one key press (down, report, up, report) into a record button's FIFO (it stands in
/// for the input device, as this machine has no /dev/uinput), with the kernel's timestamps
/// `at_ms` and `at_ms + held_ms`.
pub fn press_button(fifo: &mut std::fs::File, key: u16, at_ms: i64, held_ms: i64) {
    use lessonlens_capture::button::RawEvent;
    use std::io::Write;
    let ev = |ms: i64, kind: u16, code: u16, value: i32| {
        RawEvent {
            time_us: ms * 1000,
            kind,
            code,
            value,
        }
        .encode()
    };
    let mut bytes = Vec::new();
    for e in [
        ev(at_ms, 1, key, 1),
        ev(at_ms, 0, 0, 0),
        ev(at_ms + held_ms, 1, key, 0),
        ev(at_ms + held_ms, 0, 0, 0),
    ] {
        bytes.extend_from_slice(&e);
    }
    fifo.write_all(&bytes).unwrap();
    fifo.flush().unwrap();
}

/// A named pipe at `dir/button` that a capture service reads as its record button (see
/// [`press_button`]).
pub fn button_fifo(dir: &Path) -> PathBuf {
    let path = dir.join("button");
    assert!(Command::new("mkfifo")
        .arg(&path)
        .status()
        .expect("mkfifo")
        .success());
    path
}
