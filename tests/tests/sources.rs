//! A camera or microphone that disappears mid-lesson: the recording ends, what was recorded is
//! kept and uploaded, the failure is reported (status and the server's device list), and the
//! service keeps running and records again once the device is back.
//!
//! The camera and microphone are other processes (`gst-launch-1.0 ... ! shmsink`) that the capture
//! service reads through `shmsrc`; killing one is as abrupt as pulling a USB cable.

use lessonlens_e2e::{bin, capture_json, share, wait_for, KillOnDrop, Server};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Records until a few segments are spooled, then kills `device`; returns the recording id, how
/// long it had been recording when the device went, and how many of its segments were spooled.
fn record_until_gone(config: &Path, device: &mut KillOnDrop) -> (String, f64, u64) {
    let before = capture_json(config, &["status"], "")["segments_spooled"]
        .as_u64()
        .unwrap();
    let started = Instant::now();
    let rec = capture_json(config, &["record", "start", "--teacher", "alice"], "")["recording"]
        .as_str()
        .unwrap()
        .to_string();
    let spooled = wait_for(config, "recording", Duration::from_secs(30), |s| {
        s["segments_spooled"].as_u64().unwrap() >= before + 4
    })["segments_spooled"]
        .as_u64()
        .unwrap();
    let recorded_for = started.elapsed().as_secs_f64();
    device.0.kill().unwrap();
    device.0.wait().unwrap();
    (rec, recorded_for, spooled - before)
}

#[test]
fn a_camera_or_microphone_that_disappears_ends_the_recording_and_keeps_it() {
    let server = Server::start(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../web"));
    server.add_user("alice", "alice-password", "teacher");
    server.add_user("ada", "ada-password", "admin");
    let enrolled = server.add_device("room-1");
    let device = tempfile::tempdir().unwrap();
    let (cam, mic) = (
        device.path().join("cam.sock"),
        device.path().join("mic.sock"),
    );
    let mut camera = share("camera", &cam);
    let mut microphone = share("microphone", &mic);
    let (mut service, config, _) = server.capture_service(
        device.path(),
        &enrolled,
        &format!(
            "[video]\nsource = \"shm\"\ndevice = \"{}\"\nwidth = 320\nheight = 180\nbitrate_kbps = 500\n\
             [audio]\nsource = \"shm\"\ndevice = \"{}\"\n",
            cam.display(),
            mic.display()
        ),
    );

    // The camera goes mid-lesson.
    let (first, recorded_for, spooled_at_loss) = record_until_gone(&config, &mut camera);
    let status = wait_for(
        &config,
        "the recording did not end",
        Duration::from_secs(30),
        |s| s["state"] == "idle",
    );
    let why = status["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        status["last_recording"]["recording"],
        first.as_str(),
        "{status}"
    );
    assert!(
        why.contains("The camera stopped delivering")
            && why.contains("everything recorded until then is kept"),
        "{why}"
    );
    // The server's device list says so at once (not at the next minute's report), without a teacher.
    let ada = server.login(&server.agent(), "ada", "ada-password");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let report = server.get_json("/api/admin/devices", &ada)[0]["report"].clone();
        if report["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("camera stopped delivering"))
        {
            assert_eq!(report["state"], "idle");
            assert!(!report.to_string().contains("alice"), "{report}");
            break;
        }
        assert!(Instant::now() < deadline, "the device list shows {report}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // Everything spooled reaches the server and plays; the lesson is marked incomplete because
    // it was cut short, and holds the media up to the moment the camera went (give or take the
    // segment in flight).
    let spooled = wait_for(
        &config,
        "uploads did not finish",
        Duration::from_secs(30),
        |s| s["bytes_waiting"] == 0 && s["segments_uploaded"] == s["segments_spooled"],
    )["segments_spooled"]
        .as_u64()
        .unwrap();
    let alice = server.login(&server.agent(), "alice", "alice-password");
    let deadline = Instant::now() + Duration::from_secs(20);
    let detail = loop {
        let d = server.get_json(&format!("/api/recordings/{first}"), &alice);
        if d["status"] != "recording" {
            break d;
        }
        assert!(Instant::now() < deadline, "no manifest arrived: {d}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(detail["status"], "incomplete", "{detail}");
    assert_eq!(detail["missing"], serde_json::json!([]), "{detail}");
    let stored: i64 = server
        .db()
        .query_row(
            "SELECT COUNT(*) FROM segments WHERE recording_id = ?1",
            [&first],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        stored as u64, spooled,
        "init, poster, talk time and every media segment"
    );
    // The muxer always holds the start of the next fragment; it was flushed, not dropped.
    assert!(
        stored as u64 > spooled_at_loss,
        "the fragment in flight when the camera went was lost ({stored} stored, {spooled_at_loss} spooled before)"
    );
    let media = detail["duration_seconds"].as_f64().unwrap();
    assert!(
        media >= recorded_for - 2.0 - 1.0,
        "recorded {media} s of {recorded_for} s"
    );
    let playlist = server.get_text(&format!("/api/recordings/{first}/playlist.m3u8"), &alice);
    assert_eq!(
        playlist.matches("#EXTINF").count() as u64,
        spooled - 3,
        "{playlist}"
    );

    // The service is still running: with the camera back, it records again, and a microphone
    // that goes is handled the same way.
    assert!(
        service.0.try_wait().unwrap().is_none(),
        "the service exited"
    );
    let _camera = share("camera", &cam);
    let (second, _, _) = record_until_gone(&config, &mut microphone);
    let status = wait_for(
        &config,
        "the second recording did not end",
        Duration::from_secs(30),
        |s| s["state"] == "idle" && s["last_recording"]["recording"] == second.as_str(),
    );
    assert!(
        status["last_error"]
            .as_str()
            .unwrap()
            .contains("The microphone stopped delivering"),
        "{status}"
    );
    wait_for(
        &config,
        "uploads did not finish",
        Duration::from_secs(30),
        |s| s["bytes_waiting"] == 0 && s["segments_uploaded"] == s["segments_spooled"],
    );
    assert!(
        service.0.try_wait().unwrap().is_none(),
        "the service exited"
    );

    // A start while the microphone is gone is refused with the reason; no empty lesson is left
    // behind in the spool or on the server.
    let refused = Command::new(bin("lessonlens-capture"))
        .arg("--config")
        .arg(&config)
        .args(["record", "start", "--teacher", "alice"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(
        why.contains("the microphone cannot be opened") && why.contains("Nothing was recorded"),
        "{why}"
    );
    assert_eq!(capture_json(&config, &["status"], "")["state"], "idle");
    std::thread::sleep(Duration::from_secs(2)); // an upload round
    let lessons: i64 = server
        .db()
        .query_row("SELECT COUNT(*) FROM recordings", [], |r| r.get(0))
        .unwrap();
    assert_eq!(lessons, 2, "only the two lessons that recorded something");
    let spooled: Vec<_> = std::fs::read_dir(device.path().join("spool"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| !n.to_string_lossy().starts_with('.'))
        .collect();
    assert!(spooled.is_empty(), "the spool holds {spooled:?}");
}
