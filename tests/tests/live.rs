//! Watching a lesson while it is recorded, its privacy pause on the finished lesson's timeline,
//! and a session that ends under an open page: `web/tests/live.mjs` in Chromium, while the real
//! capture service records (this test starts, pauses, resumes and stops it).

use lessonlens_e2e::{capture_json, Server};
use std::path::Path;
use std::time::{Duration, Instant};

fn wait_file(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "the browser never wrote {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_coach_follows_a_lesson_live_and_sees_its_pause_afterwards() {
    let server = Server::start(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../web"));
    server.add_user("alice", "alice-password", "teacher");
    server.add_user("carol", "carol-password", "coach");
    let enrolled = server.add_device("room-3");
    let device = tempfile::tempdir().unwrap();
    let (_service, config, _) = server.capture_service(
        device.path(),
        &enrolled,
        "[video]\nwidth = 320\nheight = 180\nbitrate_kbps = 400\n",
    );
    let rec = capture_json(&config, &["record", "start", "--teacher", "alice"], "")["recording"]
        .as_str()
        .unwrap()
        .to_string();
    // The lesson reaches the server as it is recorded; the teacher shares it with the coach.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n: i64 = server
            .db()
            .query_row(
                "SELECT COUNT(*) FROM segments WHERE recording_id = ?1",
                [&rec],
                |r| r.get(0),
            )
            .unwrap_or(0);
        if n >= 3 {
            break;
        }
        assert!(Instant::now() < deadline, "no segments reached the server");
        std::thread::sleep(Duration::from_millis(200));
    }
    let alice = server.login(&server.agent(), "alice", "alice-password");
    server
        .agent()
        .post(&format!("{}/api/recordings/{rec}/shares", server.url()))
        .set("cookie", &alice)
        .send_json(serde_json::json!({ "username": "carol" }))
        .unwrap();

    let signals = tempfile::tempdir().unwrap();
    let teacher = std::thread::scope(|s| {
        let teacher = s.spawn(|| {
            // Once the coach is following: a privacy pause, then more lesson, then stop.
            wait_file(&signals.path().join("following"));
            capture_json(&config, &["record", "pause"], "");
            std::thread::sleep(Duration::from_secs(3));
            capture_json(&config, &["record", "resume"], "");
            std::thread::sleep(Duration::from_secs(6));
            let stopped = capture_json(&config, &["record", "stop"], "");
            wait_file(&signals.path().join("expire"));
            // The coach's session expires while their page is open: its end is moved to the past,
            // which the server checks on every request.
            let db = rusqlite::Connection::open(server.data_dir().join("lessonlens.db")).unwrap();
            db.busy_timeout(Duration::from_secs(10)).unwrap();
            let ended = db
                .execute(
                    "UPDATE sessions SET expires_at = 0 WHERE user_id = (SELECT id FROM users WHERE username = 'carol')",
                    [],
                )
                .unwrap();
            assert!(ended >= 1);
            std::fs::write(signals.path().join("expired"), "").unwrap();
            stopped
        });
        let (stdout, shots) = server.browser_script(
            "live.mjs",
            "live",
            &[
                ("LL_RECORDING", &rec),
                ("LL_COACH", "carol:carol-password"),
                ("LL_SIGNALS", &signals.path().display().to_string()),
            ],
        );
        let result: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
        assert_eq!(result["status"], "complete", "{result}");
        assert!(shots.join("live.png").exists());
        teacher.join().unwrap()
    });
    assert_eq!(teacher["recording"], rec.as_str());
}
