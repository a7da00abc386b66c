//! Starting, pausing and stopping lessons from the web (issue 16): the real server and two real
//! capture services (test sources), each holding its channel to the server.

use lessonlens_e2e::{column, wait_for, Server};
use std::path::Path;
use std::time::{Duration, Instant};

const VIDEO: &str = "[video]\nwidth = 320\nheight = 180\nbitrate_kbps = 400\n";

/// The rooms as `cookie`'s person sees them, by name.
fn rooms(server: &Server, cookie: &str) -> serde_json::Value {
    let (status, list) = server.call("GET", "/api/rooms", cookie, None);
    assert_eq!(status, 200, "{list}");
    let mut by_name = serde_json::Map::new();
    for room in list.as_array().unwrap() {
        by_name.insert(room["name"].as_str().unwrap().into(), room.clone());
    }
    by_name.into()
}

fn wait_rooms(server: &Server, cookie: &str, what: &str, ok: impl Fn(&serde_json::Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = rooms(server, cookie);
        if ok(&r) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: rooms are {r}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_teacher_starts_pauses_resumes_and_stops_a_lesson_from_the_web() {
    let server = Server::start(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../web"));
    for (user, role) in [
        ("alice", "teacher"),
        ("bob", "teacher"),
        ("carol", "coach"),
        ("ada", "admin"),
    ] {
        server.add_user(user, &format!("{user}-password"), role);
    }
    let (room1, room2) = (server.add_device("room-1"), server.add_device("room-2"));
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_s1, c1, _) = server.capture_service(d1.path(), &room1, VIDEO);
    let (s2, c2, _) = server.capture_service(d2.path(), &room2, VIDEO);
    let agent = server.agent();
    let login = |who: &str| server.login(&agent, who, &format!("{who}-password"));
    let (alice, bob, carol, ada) = (login("alice"), login("bob"), login("carol"), login("ada"));
    let post = |cookie: &str, path: &str| server.call("POST", path, cookie, None);

    wait_rooms(&server, &alice, "both rooms connected", |r| {
        r["room-1"]["state"] == "idle" && r["room-2"]["state"] == "idle"
    });
    // Coaches do not see the rooms; neither a coach nor an admin can start a lesson.
    assert_eq!(server.call("GET", "/api/rooms", &carol, None).0, 403);
    assert_eq!(post(&carol, "/api/rooms/room-1/start").0, 403);
    assert_eq!(post(&ada, "/api/rooms/room-1/start").0, 403);

    // Alice starts a lesson in room 1: sealed to her key, and the device says who started it.
    let (status, started) = post(&alice, "/api/rooms/room-1/start");
    assert_eq!(status, 200, "{started}");
    let rec = started["recording"].as_str().unwrap().to_string();
    let s = wait_for(&c1, "room 1 records", Duration::from_secs(30), |s| {
        s["state"] == "recording"
    });
    assert_eq!(s["recording"], rec.as_str());
    assert_eq!(s["teacher"], "alice");
    assert_eq!(s["started_by"], "alice", "{s}");
    assert_eq!(capture_state(&c2), "idle", "room 2 is untouched");
    // Bob sees only that room 1 is busy; the admin sees whose lesson it is.
    wait_rooms(&server, &ada, "the admin sees alice recording", |r| {
        r["room-1"]["state"] == "recording" && r["room-1"]["teacher"] == "alice"
    });
    let seen_by_bob = rooms(&server, &bob);
    assert_eq!(seen_by_bob["room-1"]["state"], "busy", "{seen_by_bob}");
    assert_eq!(seen_by_bob["room-1"]["teacher"], serde_json::Value::Null);
    assert_eq!(rooms(&server, &alice)["room-1"]["yours"], true);
    // Another teacher can neither pause nor stop it.
    assert_eq!(post(&bob, "/api/rooms/room-1/pause").0, 403);
    assert_eq!(post(&bob, "/api/rooms/room-1/stop").0, 403);

    // Alice pauses and resumes it, then stops it.
    assert_eq!(post(&alice, "/api/rooms/room-1/pause").0, 200);
    wait_for(&c1, "paused", Duration::from_secs(10), |s| {
        s["state"] == "paused"
    });
    let (status, body) = post(&alice, "/api/rooms/room-1/pause");
    assert_eq!(status, 409, "pausing twice: {body}");
    assert!(
        body["error"].as_str().unwrap().contains("already paused"),
        "{body}"
    );
    assert_eq!(post(&alice, "/api/rooms/room-1/resume").0, 200);
    wait_for(&c1, "recording again", Duration::from_secs(20), |s| {
        s["state"] == "recording"
    });
    assert_eq!(post(&alice, "/api/rooms/room-1/stop").0, 200);
    wait_for(&c1, "uploaded", Duration::from_secs(60), |s| {
        s["state"] == "idle" && s["bytes_waiting"] == 0 && s["recordings_waiting"] == 0
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while !server.segments_and_clean_stop(&rec).1 {
        assert!(Instant::now() < deadline, "the manifest did not arrive");
        std::thread::sleep(Duration::from_millis(200));
    }
    // It plays: a finished playlist with the pause as a discontinuity.
    let playlist = server.get_text(&format!("/api/recordings/{rec}/playlist.m3u8"), &alice);
    assert!(playlist.contains("#EXT-X-ENDLIST"), "{playlist}");
    assert!(playlist.contains("#EXT-X-DISCONTINUITY"), "{playlist}");

    // An admin can stop any lesson (a safeguarding need).
    assert_eq!(post(&alice, "/api/rooms/room-1/start").0, 200);
    wait_for(&c1, "recording", Duration::from_secs(30), |s| {
        s["state"] == "recording"
    });
    wait_rooms(&server, &ada, "the server knows whose lesson it is", |r| {
        r["room-1"]["teacher"] == "alice"
    });
    assert_eq!(post(&ada, "/api/rooms/room-1/stop").0, 200);
    // The room's screen says who stopped it.
    wait_for(&c1, "stopped by the admin", Duration::from_secs(20), |s| {
        s["state"] != "recording"
            && s["notice"]
                .as_str()
                .is_some_and(|n| n.contains("Stopped from the web by ada"))
    });
    wait_for(&c1, "idle", Duration::from_secs(20), |s| {
        s["state"] == "idle"
    });

    // Every command is in the audit log, those refused too (the admin's start, bob's pause and
    // stop; the coach, who may not see the rooms at all, is refused before any room is named).
    let actions: Vec<String> = column(
        &server.db(),
        "SELECT action FROM audit WHERE action LIKE 'remote-%' ORDER BY id",
        [],
    );
    assert_eq!(
        actions,
        [
            "remote-start-refused",
            "remote-start",
            "remote-pause-refused",
            "remote-stop-refused",
            "remote-pause",
            "remote-pause-failed",
            "remote-resume",
            "remote-stop",
            "remote-start",
            "remote-stop"
        ]
    );

    // A room whose device is off: the page says so, and a start fails at once with the reason.
    drop(s2);
    wait_rooms(&server, &alice, "room 2 offline", |r| {
        r["room-2"]["state"] == "offline"
    });
    let t0 = Instant::now();
    let (status, body) = post(&alice, "/api/rooms/room-2/start");
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("not connected"),
        "{body}"
    );
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
}

fn capture_state(config: &Path) -> String {
    lessonlens_e2e::capture_json(config, &["status"], "")["state"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The same from the web app in Chromium: Rooms, Record, Pause, Resume, Stop; the room's own
/// screen says who started it; the other room stays free, and the lesson is there afterwards.
#[test]
fn the_rooms_page_records_a_lesson_in_chromium() {
    let server = Server::start(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../web"));
    server.add_user("alice", "alice-password", "teacher");
    let (room1, room2) = (server.add_device("room-1"), server.add_device("room-2"));
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_s1, c1, port) = server.capture_service(d1.path(), &room1, VIDEO);
    let (_s2, c2, _) = server.capture_service(d2.path(), &room2, VIDEO);
    let alice = server.login(&server.agent(), "alice", "alice-password");
    wait_rooms(&server, &alice, "both rooms connected", |r| {
        r["room-1"]["state"] == "idle" && r["room-2"]["state"] == "idle"
    });
    let (out, _) = server.browser_script(
        "rooms.mjs",
        "rooms",
        &[
            ("LL_USER", "alice:alice-password"),
            ("LL_ROOM", "room-1"),
            ("LL_OTHER", "room-2"),
            ("LL_DEVICE", &format!("http://127.0.0.1:{port}/")),
        ],
    );
    assert!(out.contains("\"recorded\":true"), "{out}");
    let s = wait_for(&c1, "uploaded", Duration::from_secs(60), |s| {
        s["bytes_waiting"] == 0 && s["recordings_waiting"] == 0
    });
    assert_eq!(s["state"], "idle");
    let recorded: Vec<String> = column(&server.db(), "SELECT r.id FROM recordings r JOIN users u ON u.id = r.owner_id WHERE u.username = 'alice'", []);
    assert_eq!(recorded.len(), 1, "one lesson, alice's");
    assert_eq!(capture_state(&c2), "idle");
}
