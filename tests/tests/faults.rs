//! Faults the device must survive without losing a lesson silently (issue 3's acceptance, on the
//! spine as it stands): the server going away for most of a recording, and the capture process
//! being killed with SIGKILL at random moments.

use lessonlens_e2e::{bin, Server};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SMALL_VIDEO: &str = "[video]\nwidth = 320\nheight = 180\nbitrate_kbps = 500\n";

fn web_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../web")
}

/// (index, sha256) of every segment the server committed for a recording, checking on the way
/// that each blob still hashes to what its row says.
fn stored(server: &Server, rec: &str) -> BTreeMap<u32, String> {
    let db = server.db();
    let mut stmt = db
        .prepare("SELECT idx, sha256 FROM segments WHERE recording_id = ?1")
        .unwrap();
    let rows: BTreeMap<u32, String> = stmt
        .query_map([rec], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for (idx, sha) in &rows {
        let blob =
            std::fs::read(server.data_dir().join("blobs").join(&sha[..2]).join(sha)).unwrap();
        assert_eq!(
            &hex::encode(Sha256::digest(&blob)),
            sha,
            "segment {idx} of {rec} is corrupt on the server"
        );
    }
    rows
}

fn media_seconds(server: &Server, rec: &str) -> f64 {
    let us: i64 = server
        .db()
        .query_row(
            "SELECT COALESCE(SUM(duration_us), 0) FROM segments WHERE recording_id = ?1",
            [rec],
            |r| r.get(0),
        )
        .unwrap();
    us as f64 / 1e6
}

#[test]
fn a_server_outage_mid_lesson_loses_nothing() {
    let mut server = Server::start(&web_dir());
    server.add_user("alice", "alice-password", "teacher");
    let token = server.add_device("room-1");
    let device = tempfile::tempdir().unwrap();
    let config = server.capture_config(device.path(), &token, SMALL_VIDEO);
    let capture = Command::new(bin("lessonlens-capture"))
        .arg("--config")
        .arg(&config)
        .args([
            "record",
            "once",
            "--teacher",
            "alice",
            "--seconds",
            "12",
            "--drain-seconds",
            "120",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    server.kill();
    // Most of the lesson is recorded with the server gone; the spool keeps it.
    std::thread::sleep(Duration::from_secs(8));
    let waiting = std::fs::read_dir(device.path().join("spool"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .flat_map(|d| std::fs::read_dir(d.path()).unwrap().flatten())
        .filter(|f| f.file_name().to_string_lossy().ends_with(".seg"))
        .count();
    assert!(
        waiting >= 2,
        "segments should wait in the spool during the outage, found {waiting}"
    );
    server.restart();
    let out = capture.wait_with_output().unwrap();
    assert!(out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["uploaded"].as_bool().unwrap(), "{report}");
    let rec = report["recording"].as_str().unwrap();
    let rows = stored(&server, rec);
    let media = report["segments"].as_u64().unwrap() as u32;
    // init (0), every media segment, and the end marker: all present, each once.
    assert_eq!(
        rows.keys().copied().collect::<Vec<_>>(),
        (0..=media + 1).collect::<Vec<_>>()
    );
    let status: String = server
        .db()
        .query_row(
            "SELECT clean_stop FROM recordings WHERE id = ?1",
            [rec],
            |r| r.get::<_, bool>(0),
        )
        .map(|c| c.to_string())
        .unwrap();
    assert_eq!(status, "true");
    assert!((media_seconds(&server, rec) - 12.0).abs() < 0.5);
}

/// A tiny deterministic generator: the seed is printed so a failure can be replayed with
/// `LESSONLENS_CRASH_SEED=<seed>`.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn killing_the_capture_at_random_moments_loses_at_most_the_segment_in_flight() {
    let seed = std::env::var("LESSONLENS_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("crash test seed: {seed} (replay with LESSONLENS_CRASH_SEED={seed})");
    let mut rng = XorShift(seed);
    let mut server = Server::start(&web_dir());
    server.add_user("alice", "alice-password", "teacher");
    let token = server.add_device("room-1");
    let device = tempfile::tempdir().unwrap();
    let spool = device.path().join("spool");
    let config = server.capture_config(device.path(), &token, SMALL_VIDEO);

    // recording id -> (seconds it ran before the kill, segments in the spool right after the kill)
    let mut crashed: BTreeMap<String, (f64, BTreeMap<u32, String>)> = BTreeMap::new();
    for round in 0..20 {
        let mut child = Command::new(bin("lessonlens-capture"))
            .arg("--config")
            .arg(&config)
            .args(["record", "once", "--teacher", "alice", "--seconds", "60"])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let rec = loop {
            let line = lines
                .next()
                .expect("capture exited before recording")
                .unwrap();
            if line.contains("recording started") {
                let id = line
                    .split("recording=")
                    .nth(1)
                    .unwrap()
                    .split_whitespace()
                    .next()
                    .unwrap();
                break id
                    .trim_matches(|c: char| !c.is_ascii_hexdigit() && c != '-')
                    .to_string();
            }
        };
        let started = Instant::now();
        std::thread::spawn(move || lines.for_each(drop));
        // In odd rounds the server is away too, so segments wait in the spool when the kill comes.
        let offline = round % 2 == 1;
        if offline {
            server.kill();
        }
        let wait_ms = 500 + rng.next() % 4500;
        std::thread::sleep(Duration::from_millis(wait_ms));
        child.kill().unwrap();
        let ran = started.elapsed().as_secs_f64();
        child.wait().unwrap();
        if offline {
            server.restart();
        }
        let mut spooled = BTreeMap::new();
        if let Ok(rd) = std::fs::read_dir(spool.join(&rec)) {
            for f in rd.flatten() {
                let name = f.file_name().to_string_lossy().to_string();
                if let Some(idx) = name.strip_suffix(".seg").and_then(|n| n.parse().ok()) {
                    spooled.insert(
                        idx,
                        hex::encode(Sha256::digest(std::fs::read(f.path()).unwrap())),
                    );
                }
            }
        }
        eprintln!(
            "round {round}: killed {rec} after {ran:.2} s with {} segment(s) waiting",
            spooled.len()
        );
        crashed.insert(rec, (ran, spooled));
    }

    // The next start (here: drain) closes every crashed recording as incomplete and uploads it.
    let out = Command::new(bin("lessonlens-capture"))
        .arg("--config")
        .arg(&config)
        .args(["drain", "--drain-seconds", "60"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "drain failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left: Vec<_> = std::fs::read_dir(&spool)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != ".lock")
        .collect();
    assert!(left.is_empty(), "spool not drained: {left:?}");

    let waited: usize = crashed.values().map(|(_, s)| s.len()).sum();
    assert!(
        waited >= 5,
        "the offline rounds should have left segments in the spool, found {waited}"
    );
    for (rec, (ran, spooled)) in &crashed {
        let rows = stored(&server, rec);
        for (idx, sha) in spooled {
            assert_eq!(
                rows.get(idx),
                Some(sha),
                "spooled segment {idx} of {rec} did not reach the server intact"
            );
        }
        let manifest: Option<String> = server
            .db()
            .query_row(
                "SELECT manifest FROM recordings WHERE id = ?1",
                [rec],
                |r| r.get(0),
            )
            .unwrap_or(None);
        if !rows.is_empty() {
            let m = manifest.unwrap_or_else(|| panic!("{rec} has segments but no manifest"));
            assert!(
                m.contains("\"clean_stop\": false"),
                "{rec} must be marked as cut short"
            );
        }
        // At most the segment being recorded (2 s) is lost, plus pipeline start-up.
        let lost = ran - media_seconds(&server, rec);
        assert!(
            lost <= 3.0,
            "{rec}: ran {ran:.2} s but only {:.2} s reached the server",
            ran - lost
        );
    }
}

#[test]
fn a_full_spool_refuses_to_start_and_keeps_what_it_holds() {
    let mut server = Server::start(&web_dir());
    server.add_user("alice", "alice-password", "teacher");
    let token = server.add_device("room-1");
    let device = tempfile::tempdir().unwrap();
    let spool = device.path().join("spool");
    let config = server.capture_config(device.path(), &token, SMALL_VIDEO);
    // Record offline for a while so segments wait in the spool, then crash.
    let mut child = Command::new(bin("lessonlens-capture"))
        .arg("--config")
        .arg(&config)
        .args(["record", "once", "--teacher", "alice", "--seconds", "60"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    server.kill();
    std::thread::sleep(Duration::from_secs(5));
    child.kill().unwrap();
    child.wait().unwrap();
    let snapshot = |dir: &Path| -> BTreeMap<String, String> {
        walk(dir)
            .into_iter()
            .map(|p| {
                (
                    p.display().to_string(),
                    hex::encode(Sha256::digest(std::fs::read(&p).unwrap())),
                )
            })
            .collect()
    };
    let before = snapshot(&spool);
    assert!(
        before.keys().any(|k| k.ends_with(".seg")),
        "segments should be waiting: {before:?}"
    );

    // A budget too small for another lesson: start is refused with the documented message.
    server.restart();
    let tight = server.capture_config(
        device.path(),
        &token,
        &format!("spool_budget_mb = 5\nreserve_minutes = 10\n{SMALL_VIDEO}"),
    );
    let out = Command::new(bin("lessonlens-capture"))
        .arg("--config")
        .arg(&tight)
        .args(["record", "once", "--teacher", "alice", "--seconds", "5"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot start recording: spool budget full")
            && err.contains("Nothing was deleted"),
        "{err}"
    );
    // Nothing in the spool was changed or removed (closing the crashed recording with its
    // manifest is the only addition allowed).
    let after = snapshot(&spool);
    for (path, sha) in &before {
        assert_eq!(after.get(path), Some(sha), "a refused start changed {path}");
    }

    // What was waiting still reaches the server.
    let out = Command::new(bin("lessonlens-capture"))
        .arg("--config")
        .arg(&tight)
        .args(["drain", "--drain-seconds", "60"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (path, sha) in before.iter().filter(|(p, _)| p.ends_with(".seg")) {
        let n: i64 = server
            .db()
            .query_row(
                "SELECT COUNT(*) FROM segments WHERE sha256 = ?1",
                [sha],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1, "{path} did not reach the server");
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.file_name().is_some_and(|n| n != ".lock") {
            out.push(p);
        }
    }
    out
}

#[test]
fn reaching_the_budget_offline_ends_the_recording_and_keeps_it() {
    let mut server = Server::start(&web_dir());
    server.add_user("alice", "alice-password", "teacher");
    let token = server.add_device("room-1");
    let device = tempfile::tempdir().unwrap();
    let config = server.capture_config(
        device.path(),
        &token,
        "spool_budget_mb = 2\nreserve_minutes = 0\n[video]\nwidth = 640\nheight = 360\nbitrate_kbps = 4000\n",
    );
    let child = Command::new(bin("lessonlens-capture"))
        .arg("--config")
        .arg(&config)
        .args([
            "record",
            "once",
            "--teacher",
            "alice",
            "--seconds",
            "60",
            "--drain-seconds",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    server.kill();
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "the budget should have ended the recording early"
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("spool budget reached"));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!report["uploaded"].as_bool().unwrap());
    server.restart();
    let out = Command::new(bin("lessonlens-capture"))
        .arg("--config")
        .arg(&config)
        .args(["drain", "--drain-seconds", "60"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rec = report["recording"].as_str().unwrap();
    let media = report["segments"].as_u64().unwrap() as u32;
    assert!(media >= 1);
    assert_eq!(
        stored(&server, rec).len() as u32,
        media + 2,
        "init, every segment and the end marker arrive"
    );
}
