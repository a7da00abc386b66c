//! The capture service and its control surface: start, refuse a second start, status, metrics,
//! stop (the lesson is kept and uploaded), and a clean exit on SIGTERM.

use lessonlens_e2e::{bin, capture_json, run_with_stdin, Server};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn cli(config: &Path, args: &[&str]) -> Output {
    Command::new(bin("lessonlens-capture"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap()
}

fn cli_stdin(config: &Path, args: &[&str], stdin: &str) -> Output {
    run_with_stdin("lessonlens-capture", config, args, stdin)
}

#[test]
fn the_service_records_on_command_and_reports_what_it_does() {
    let server = Server::start(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../web"));
    server.add_user("alice", "alice-password", "teacher");
    let enrolled = server.add_device("room-1");
    let device = tempfile::tempdir().unwrap();
    let (mut daemon, config, port) = server.capture_service(
        device.path(),
        &enrolled,
        "[video]\nwidth = 320\nheight = 180\nbitrate_kbps = 500\n",
    );

    assert_eq!(capture_json(&config, &["status"], "")["state"], "idle");
    let unknown = cli(&config, &["record", "start", "--teacher", "nobody"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no key for teacher"));

    // The teacher identifies with their device code; a wrong one is refused.
    assert_eq!(server.set_device_code("alice", "2468"), 200);
    let wrong = cli_stdin(&config, &["record", "start", "--code"], "1357\n");
    assert!(!wrong.status.success());
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("no teacher has that code"),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
    assert_eq!(capture_json(&config, &["status"], "")["state"], "idle");
    let started = capture_json(&config, &["record", "start", "--code"], "2468\n");
    let rec = started["recording"].as_str().unwrap().to_string();
    let second = cli(&config, &["record", "start", "--teacher", "alice"]);
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("already running"));

    // Wait (with a deadline, not a fixed sleep) until a few segments are spooled.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let s = capture_json(&config, &["status"], "");
        if s["segments_spooled"].as_u64().unwrap() >= 3 {
            break s;
        }
        assert!(Instant::now() < deadline, "nothing spooled: {s}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(status["state"], "recording");
    assert_eq!(status["teacher"], "alice");
    assert_eq!(status["recording"], rec.as_str());
    assert!(status["elapsed_seconds"].as_u64().unwrap() >= 2);
    // The probe picks the best working encoder; without a GPU that is x264enc.
    assert!(
        status["video_encoder"]
            .as_str()
            .unwrap()
            .ends_with("264enc"),
        "{status}"
    );
    assert_eq!(status["last_error"], serde_json::Value::Null);
    let metrics = ureq::get(&format!("http://127.0.0.1:{port}/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(metrics.contains("lessonlens_recording 1"), "{metrics}");
    // A request addressed to another name (DNS rebinding from a web page) is refused.
    match ureq::get(&format!("http://127.0.0.1:{port}/v1/status"))
        .set("host", "evil.example")
        .call()
    {
        Err(ureq::Error::Status(403, _)) => {}
        other => panic!("expected 403 for a foreign Host, got {other:?}"),
    }

    // The device tells the server at once, so the admin's device list shows it (no teacher).
    server.add_user("ada", "ada-password", "admin");
    let ada = server.login(&server.agent(), "ada", "ada-password");
    let reported = |want: &dyn Fn(&serde_json::Value) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let list = server.get_json("/api/admin/devices", &ada);
            let report = list[0]["report"].clone();
            if want(&report) {
                return report;
            }
            assert!(Instant::now() < deadline, "the device list shows {list}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    reported(&|r| r["state"] == "recording");

    // Privacy pause: nothing is recorded until resume, and the pause shows in the playlist.
    capture_json(&config, &["record", "pause"], "");
    reported(&|r| r["state"] == "paused");
    let paused = capture_json(&config, &["status"], "");
    assert_eq!(paused["state"], "paused", "{paused}");
    assert!(
        !cli(&config, &["record", "pause"]).status.success(),
        "already paused"
    );
    std::thread::sleep(Duration::from_millis(1500)); // the last fragment before the pause is flushed
    let before = capture_json(&config, &["status"], "")["segments_spooled"]
        .as_u64()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let after = capture_json(&config, &["status"], "")["segments_spooled"]
        .as_u64()
        .unwrap();
    assert_eq!(
        before, after,
        "nothing may be recorded during a privacy pause"
    );
    capture_json(&config, &["record", "resume"], "");
    let deadline = Instant::now() + Duration::from_secs(30);
    while capture_json(&config, &["status"], "")["segments_spooled"]
        .as_u64()
        .unwrap()
        < after + 3
    {
        assert!(Instant::now() < deadline, "recording did not resume");
        std::thread::sleep(Duration::from_millis(200));
    }
    let stopped = capture_json(&config, &["record", "stop"], "");
    assert_eq!(stopped["recording"], rec.as_str());
    let segments = stopped["segments"].as_u64().unwrap();
    assert!(segments >= 2);
    assert!(
        !cli(&config, &["record", "stop"]).status.success(),
        "nothing left to stop"
    );

    // Everything the service spooled is uploaded, and the server has the whole lesson.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = capture_json(&config, &["status"], "");
        if s["state"] == "idle"
            && s["bytes_waiting"].as_u64().unwrap() == 0
            && s["segments_uploaded"] == s["segments_spooled"]
        {
            assert_eq!(s["server_reachable"], true);
            break;
        }
        assert!(Instant::now() < deadline, "uploads did not finish: {s}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Every segment's receipt was timed from the moment its media was complete.
    let metrics = ureq::get(&format!("http://127.0.0.1:{port}/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {metrics}"))
    };
    let timed = value("lessonlens_receipt_latency_seconds_count ");
    assert_eq!(timed as u64, segments + 5, "{metrics}");
    let mean = value("lessonlens_receipt_latency_seconds_sum ") / timed;
    assert!(mean > 0.0 && mean < 10.0, "{metrics}");
    let report = reported(&|r| r["state"] == "idle");
    assert!(report["last_upload_at"].as_i64().unwrap() > 0, "{report}");
    assert!(report["video_encoder"]
        .as_str()
        .unwrap()
        .ends_with("264enc"));
    assert!(
        !report.to_string().contains("alice"),
        "no teacher in reports"
    );
    let (n, clean) = server.segments_and_clean_stop(&rec);
    assert_eq!(
        n,
        segments + 5,
        "init, media, the init made on resume, the end marker, the poster frame (one, though two pipelines ran) and the talk time"
    );
    assert!(clean);
    let alice = server.login(&server.agent(), "alice", "alice-password");
    let playlist = server.get_text(&format!("/api/recordings/{rec}/playlist.m3u8"), &alice);
    assert_eq!(
        playlist
            .matches("#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"segments/")
            .count(),
        1,
        "{playlist}"
    );
    // A lesson with a privacy pause downloads as one MP4 per part, and says so when asked for
    // one file.
    let download = |query: &str| {
        server
            .agent()
            .get(&format!(
                "{}/api/recordings/{rec}/download.mp4{query}",
                server.url()
            ))
            .set("cookie", &alice)
            .call()
            .map_err(Box::new)
    };
    match download("").map_err(|e| *e) {
        Err(ureq::Error::Status(409, r)) => {
            let text = r.into_string().unwrap();
            assert!(text.contains("downloads as 2 files"), "{text}");
        }
        other => panic!("expected 409, got {other:?}"),
    }
    let detail: serde_json::Value = server
        .agent()
        .get(&format!("{}/api/recordings/{rec}", server.url()))
        .set("cookie", &alice)
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(detail["download_parts"], 2, "{detail}");
    for part in [1, 2] {
        let res = download(&format!("?part={part}")).unwrap();
        assert!(res
            .header("content-disposition")
            .unwrap()
            .contains(&format!("-part{part}.mp4")));
        let mut mp4 = Vec::new();
        std::io::Read::read_to_end(&mut res.into_reader(), &mut mp4).unwrap();
        // Each part is a file of its own: it starts with its own init segment.
        assert_eq!(&mp4[4..8], b"ftyp", "part {part}");
        assert!(
            mp4.windows(4).filter(|w| w == b"moof").count() >= 1,
            "part {part} has media"
        );
    }
    assert!(matches!(
        download("?part=3").map_err(|e| *e),
        Err(ureq::Error::Status(400, _))
    ));
    // The player plays on across the pause (a new init segment after a discontinuity).
    let media: i64 = server
        .db()
        .query_row(
            "SELECT SUM(duration_us) FROM segments WHERE recording_id = ?1",
            [&rec],
            |r| r.get(0),
        )
        .unwrap();
    server.watch_in_browser(
        "alice",
        "alice-password",
        &rec,
        media as f64 / 1e6 - 1.0,
        "paused",
    );

    // SIGTERM ends the service cleanly.
    let t = Instant::now();
    Command::new("kill")
        .arg("-TERM")
        .arg(daemon.id().to_string())
        .status()
        .unwrap();
    let status = daemon.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(t.elapsed() < Duration::from_secs(15));
}

/// Issue 14.1: `doctor` checks the elements, the camera and microphone, the spool's disk, the
/// server and the clock, and says what to change; the service runs the same checks at start and
/// shows them in `status`.
#[test]
fn doctor_says_what_is_wrong_and_the_service_reports_its_checks() {
    let server = Server::start(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../web"));
    let enrolled = server.add_device("room-1");
    let device = tempfile::tempdir().unwrap();

    // A microphone that is not there: doctor names it and what to check, and fails.
    let broken = tempfile::tempdir().unwrap();
    let config = server.capture_config(
        broken.path(),
        &enrolled,
        "[audio]\nsource = \"alsa\"\ndevice = \"hw:97\"\n",
    );
    let out = cli(&config, &["doctor"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{text}");
    let line = |name: &str| {
        text.lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .unwrap_or_else(|| panic!("no {name} line: {text}"))
            .to_string()
    };
    assert!(line("microphone").starts_with("FAIL"), "{text}");
    assert!(line("microphone").contains("audio.device"), "{text}");
    for ok in ["elements", "camera", "spool", "server", "clock"] {
        assert!(line(ok).starts_with("ok"), "{text}");
    }

    // The same checks in the service's status, all passing with test sources.
    let (_daemon, config, _) = server.capture_service(
        device.path(),
        &enrolled,
        "[video]\nwidth = 320\nheight = 180\nbitrate_kbps = 500\n",
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let checks = loop {
        let s = capture_json(&config, &["status"], "");
        if s["checks"].as_array().is_some_and(|c| !c.is_empty()) {
            break s["checks"].clone();
        }
        assert!(Instant::now() < deadline, "no checks in status: {s}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let names: Vec<&str> = checks
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "elements",
            "camera",
            "microphone",
            "spool",
            "server",
            "clock"
        ]
    );
    assert!(
        checks.as_array().unwrap().iter().all(|c| c["ok"] == true),
        "{checks}"
    );
}
