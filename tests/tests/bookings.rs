//! Booked lessons (issue 16): a teacher books a room a few seconds ahead; when the slot begins
//! the room's device does not record by itself but asks for a tap or its button, records sealed
//! to the booked teacher, and stops at the slot's end; a slot nobody starts is "not recorded";
//! and a booked lesson records while the server is out of reach, and uploads when it is back.

use lessonlens_e2e::{column, press_button, wait_for, web_dir, Server};
use std::time::{Duration, Instant};

const VIDEO: &str = "[video]\nwidth = 320\nheight = 180\nbitrate_kbps = 400\n";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn book(server: &Server, cookie: &str, room: &str, from: i64, to: i64) -> i64 {
    let (status, body) = server.call(
        "POST",
        "/api/bookings",
        cookie,
        Some(serde_json::json!({"room": room, "starts_at": from, "ends_at": to})),
    );
    assert_eq!(status, 200, "{body}");
    body["booked"][0].as_i64().unwrap()
}

/// How booking `id` went, as its teacher's list says (none while its device has not said).
fn outcome(server: &Server, cookie: &str, id: i64) -> serde_json::Value {
    let (_, list) = server.call("GET", "/api/bookings", cookie, None);
    list.as_array()
        .unwrap()
        .iter()
        .find(|b| b["id"] == id)
        .map(|b| b["outcome"].clone())
        .unwrap_or(serde_json::Value::Null)
}

/// Whose recording `rec` is (its owner's username).
fn owner(server: &Server, rec: &str) -> Vec<String> {
    column(
        &server.db(),
        "SELECT u.username FROM recordings r JOIN users u ON u.id = r.owner_id WHERE r.id = ?1",
        [rec],
    )
}

fn wait_outcome(server: &Server, cookie: &str, id: i64, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while outcome(server, cookie, id) != want {
        assert!(
            Instant::now() < deadline,
            "booking {id}: {}",
            outcome(server, cookie, id)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_booked_lesson_starts_with_the_button_and_stops_at_the_slots_end() {
    let server = Server::start(&web_dir());
    server.add_user("alice", "alice-password", "teacher");
    server.add_user("bob", "bob-password", "teacher");
    server.add_user("carol", "carol-password", "coach");
    let room = server.add_device("room-1");
    let dir = tempfile::tempdir().unwrap();
    let fifo_path = lessonlens_e2e::button_fifo(dir.path());
    let (_service, config, _) = server.capture_service(
        dir.path(),
        &room,
        &format!(
            "[button]\ndevice = \"{}\"\nkey = \"KEY_F13\"\nlong_press_ms = 1000\n{VIDEO}",
            fifo_path.display()
        ),
    );
    let mut fifo = std::fs::OpenOptions::new()
        .write(true)
        .open(&fifo_path)
        .unwrap();
    let f13 = lessonlens_capture::config::key_code("KEY_F13").unwrap();
    let agent = server.agent();
    let alice = server.login(&agent, "alice", "alice-password");
    let carol = server.login(&agent, "carol", "carol-password");

    // Bad bookings are refused with the reason; a coach books nothing.
    let (status, _) = server.call(
        "POST",
        "/api/bookings",
        &carol,
        Some(
            serde_json::json!({"room": "room-1", "starts_at": now() + 60, "ends_at": now() + 120}),
        ),
    );
    assert_eq!(status, 403);
    for (from, to, weeks) in [(60, 30, 1), (60, 60 + 5 * 3600, 1), (60, 120, 41)] {
        let (status, body) = server.call(
            "POST",
            "/api/bookings",
            &alice,
            Some(serde_json::json!({"room": "room-1", "starts_at": now() + from, "ends_at": now() + to, "weeks": weeks})),
        );
        assert_eq!(status, 400, "{from} {to} {weeks}: {body}");
    }

    // A slot a few seconds ahead: the device waits for it, then asks; nothing records by itself.
    let t = now();
    let booked = book(&server, &alice, "room-1", t + 3, t + 14);
    let (status, body) = server.call(
        "POST",
        "/api/bookings",
        &alice,
        Some(serde_json::json!({"room": "room-1", "starts_at": t + 10, "ends_at": t + 40})),
    );
    assert_eq!(status, 409, "an overlapping booking: {body}");
    let s = wait_for(&config, "the booked prompt", Duration::from_secs(15), |s| {
        s["booked"]["teacher_name"] == "alice"
    });
    assert_eq!(
        s["state"], "idle",
        "a booked lesson does not start by itself"
    );
    let (_, rooms) = server.call("GET", "/api/rooms", &alice, None);
    assert_eq!(rooms[0]["state"], "booked", "{rooms}");
    // Another teacher cannot take the booked slot from the web.
    let bob = server.login(&agent, "bob", "bob-password");
    let (status, body) = server.call("POST", "/api/rooms/room-1/start", &bob, None);
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("booked for another teacher"),
        "{body}"
    );
    // The button starts it, sealed to the booked teacher, with no code.
    press_button(&mut fifo, f13, 1_000, 100);
    let s = wait_for(
        &config,
        "recording the booked lesson",
        Duration::from_secs(20),
        |s| s["state"] == "recording",
    );
    assert_eq!(s["teacher"], "alice");
    let rec = s["recording"].as_str().unwrap().to_string();
    // Two minutes before the end (the whole slot here) the screen says when it stops.
    let s = wait_for(&config, "the end warning", Duration::from_secs(5), |s| {
        s["notice"]
            .as_str()
            .is_some_and(|n| n.contains("stops then"))
    });
    assert_eq!(s["state"], "recording");
    // Still recording until shortly before the slot's end (the device reckons the server's
    // time to the second); stopped by itself at it, then uploaded.
    loop {
        let s = lessonlens_e2e::capture_json(&config, &["status"], "");
        if now() >= t + 12 {
            break;
        }
        assert_eq!(
            s["state"], "recording",
            "stopped before the slot's end: {s}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    wait_for(
        &config,
        "stopped at the slot's end",
        Duration::from_secs(30),
        |s| s["state"] == "idle" && s["recordings_waiting"] == 0,
    );
    wait_outcome(&server, &alice, booked, "recorded");
    assert_eq!(owner(&server, &rec), ["alice"]);

    // A slot nobody starts is "not recorded", not an error.
    let t = now();
    let missed = book(&server, &alice, "room-1", t + 1, t + 7);
    wait_for(&config, "the second prompt", Duration::from_secs(10), |s| {
        s["booked"]["teacher_name"] == "alice"
    });
    wait_outcome(&server, &alice, missed, "not recorded");
    assert_eq!(
        wait_for(&config, "idle", Duration::from_secs(5), |s| s["booked"]
            .is_null())["state"],
        "idle"
    );
    let recordings: Vec<i64> = column(&server.db(), "SELECT COUNT(*) FROM recordings", []);
    assert_eq!(recordings, [1]);
}

#[test]
fn a_booked_lesson_records_while_the_server_is_out_of_reach() {
    let mut server = Server::start(&web_dir());
    server.add_user("alice", "alice-password", "teacher");
    let room = server.add_device("room-1");
    let dir = tempfile::tempdir().unwrap();
    let (_service, config, port) = server.capture_service(dir.path(), &room, VIDEO);
    let alice = server.login(&server.agent(), "alice", "alice-password");
    let t = now();
    let booked = book(&server, &alice, "room-1", t + 6, t + 26);
    // The device keeps the booking, with alice's key, on disk.
    let kept = room.identity.join("bookings.json");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&kept).is_ok_and(|k| k.contains("alice")) {
        assert!(Instant::now() < deadline, "the booking was not kept");
        std::thread::sleep(Duration::from_millis(100));
    }
    server.kill();
    wait_for(
        &config,
        "the booked prompt offline",
        Duration::from_secs(15),
        |s| s["booked"]["teacher_name"] == "alice",
    );
    // A tap on the screen's Record button starts it, in Chromium, with no code.
    server.browser_script(
        "device.mjs",
        "device-booked",
        &[
            ("LL_DEVICE", &format!("http://127.0.0.1:{port}/")),
            ("LL_STEPS", "booked"),
        ],
    );
    let s = wait_for(&config, "recording offline", Duration::from_secs(20), |s| {
        s["state"] == "recording"
    });
    assert_eq!(
        s["teacher"], "alice",
        "sealed to the booked teacher, not the school's key"
    );
    assert_eq!(s["offline"], false);
    let rec = s["recording"].as_str().unwrap().to_string();
    wait_for(
        &config,
        "stopped at the slot's end",
        Duration::from_secs(30),
        |s| s["state"] == "idle",
    );
    server.restart();
    wait_for(&config, "uploaded", Duration::from_secs(60), |s| {
        s["recordings_waiting"] == 0
    });
    wait_outcome(&server, &alice, booked, "recorded");
    assert_eq!(owner(&server, &rec), ["alice"]);
}
