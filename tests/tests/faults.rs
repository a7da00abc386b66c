//! Faults the device must survive without losing a lesson silently (issue 3's acceptance): the
//! server going away for most of a recording, the capture process killed with SIGKILL at random
//! moments, and a spool budget that runs out.

use lessonlens_e2e::{bin, start_capture, wait_for_segments, web_dir, Server};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const SMALL_VIDEO: &str = "[video]\nwidth = 320\nheight = 180\nbitrate_kbps = 500\n";

/// (index, sha256) of every segment the server committed for a recording, checking on the way
/// that each blob still hashes to what its row says.
/// The segments of `rec` on the server (init, media, end marker, talk time, poster frame), each checked
/// against its hash.
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

/// A server with teacher alice and device room-1, and that device's folder and capture config.
struct Classroom {
    server: Server,
    enrolled: lessonlens_e2e::Device,
    device: tempfile::TempDir,
    config: std::path::PathBuf,
}

fn classroom(capture_extra: &str) -> Classroom {
    let server = Server::start(&web_dir());
    server.add_user("alice", "alice-password", "teacher");
    let enrolled = server.add_device("room-1");
    let device = tempfile::tempdir().unwrap();
    let config = server.capture_config(device.path(), &enrolled, capture_extra);
    Classroom {
        server,
        enrolled,
        device,
        config,
    }
}

fn drain(config: &Path) {
    let out = Command::new(bin("lessonlens-capture"))
        .arg("--config")
        .arg(config)
        .args(["drain", "--drain-seconds", "60"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "drain failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn spool_entries(spool: &Path) -> Vec<std::ffi::OsString> {
    std::fs::read_dir(spool)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != ".lock")
        .collect()
}

#[test]
fn a_server_outage_mid_lesson_loses_nothing() {
    let Classroom {
        mut server,
        device,
        config,
        ..
    } = classroom(SMALL_VIDEO);
    let capture = start_capture(
        &config,
        &[
            "record",
            "once",
            "--teacher",
            "alice",
            "--seconds",
            "12",
            "--drain-seconds",
            "120",
        ],
    );
    std::thread::sleep(Duration::from_millis(2500));
    server.kill();
    // Most of the lesson is recorded with the server gone; the spool keeps it.
    wait_for_segments(&device.path().join("spool"), 3, Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(3));
    server.restart();
    let out = capture.child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", capture.log.lock().unwrap());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["uploaded"].as_bool().unwrap(), "{report}");
    let rec = report["recording"].as_str().unwrap();
    let rows = stored(&server, rec);
    let media = report["segments"].as_u64().unwrap() as u32;
    // init (0), every media segment, the end marker, the talk time and the poster frame: all
    // present, each once.
    assert_eq!(
        rows.keys().copied().collect::<Vec<_>>(),
        (0..=media + 1)
            .chain([lessonlens_proto::TALK_INDEX, lessonlens_proto::POSTER_INDEX])
            .collect::<Vec<_>>()
    );
    let clean: bool = server
        .db()
        .query_row(
            "SELECT clean_stop FROM recordings WHERE id = ?1",
            [rec],
            |r| r.get(0),
        )
        .unwrap();
    assert!(clean);
    assert!((media_seconds(&server, rec) - 12.0).abs() < 0.5);
    assert!(spool_entries(&device.path().join("spool")).is_empty());
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
    let Classroom {
        mut server,
        device,
        config,
        ..
    } = classroom(SMALL_VIDEO);
    let spool = device.path().join("spool");

    // recording id -> (seconds it captured before the kill, segments in the spool right after)
    let mut crashed: BTreeMap<String, (f64, BTreeMap<u32, String>)> = BTreeMap::new();
    for round in 0..20 {
        let mut capture = start_capture(
            &config,
            &["record", "once", "--teacher", "alice", "--seconds", "60"],
        );
        // In odd rounds the server is away too, so segments wait in the spool when the kill comes.
        let offline = round % 2 == 1;
        if offline {
            server.kill();
        }
        std::thread::sleep(Duration::from_millis(500 + rng.next() % 4500));
        capture.child.kill().unwrap();
        let ran = capture.capturing_at.elapsed().as_secs_f64();
        capture.child.wait().unwrap();
        if offline {
            server.restart();
        }
        let rec = capture.recording;
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
    drain(&config);
    assert!(spool_entries(&spool).is_empty(), "spool not drained");
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
            let m: serde_json::Value = serde_json::from_str(&m).unwrap();
            assert_eq!(m["clean_stop"], false, "{rec} must be marked as cut short");
        }
        // At most the segment being recorded (2 s) is lost, with half a second for scheduling.
        let lost = ran - media_seconds(&server, rec);
        assert!(
            lost <= 2.5,
            "{rec}: captured {ran:.2} s but only {:.2} s reached the server",
            ran - lost
        );
    }
}

#[test]
fn a_full_spool_refuses_to_start_and_keeps_what_it_holds() {
    let Classroom {
        mut server,
        enrolled,
        device,
        config,
    } = classroom(SMALL_VIDEO);
    let spool = device.path().join("spool");
    // Record offline for a while so segments wait in the spool, then crash.
    let mut capture = start_capture(
        &config,
        &["record", "once", "--teacher", "alice", "--seconds", "60"],
    );
    server.kill();
    wait_for_segments(&spool, 3, Duration::from_secs(20));
    capture.child.kill().unwrap();
    capture.child.wait().unwrap();
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

    // A budget too small for another lesson: start is refused with the documented message.
    server.restart();
    let tight = server.capture_config(
        device.path(),
        &enrolled,
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
    drain(&tight);
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

#[test]
fn reaching_the_budget_offline_ends_the_recording_and_keeps_it() {
    // 2 MB of budget at ~4 Mbit/s fills in a few seconds with the server away.
    const TIGHT: &str = "spool_budget_mb = 2\nreserve_minutes = 0\n\
                         [video]\nwidth = 640\nheight = 360\nbitrate_kbps = 4000\n";
    let Classroom {
        mut server,
        device: _device,
        config,
        ..
    } = classroom(TIGHT);
    let capture = start_capture(
        &config,
        &[
            "record",
            "once",
            "--teacher",
            "alice",
            "--seconds",
            "60",
            "--drain-seconds",
            "1",
        ],
    );
    server.kill();
    let out = capture.child.wait_with_output().unwrap();
    let log = capture.log.lock().unwrap().clone();
    assert!(out.status.success(), "{log}");
    assert!(log.contains("spool budget reached"), "{log}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!report["uploaded"].as_bool().unwrap());
    assert!(
        report["media_seconds"].as_f64().unwrap() < 50.0,
        "the budget should have ended the recording early"
    );
    server.restart();
    drain(&config);
    let rec = report["recording"].as_str().unwrap();
    let media = report["segments"].as_u64().unwrap() as u32;
    assert!(media >= 1);
    assert_eq!(
        stored(&server, rec).len() as u32,
        media + 4,
        "init, every segment, the end marker, the poster frame and the talk time arrive"
    );
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
