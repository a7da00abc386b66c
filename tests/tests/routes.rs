//! Route-level checks that need no process: bad input and role checks, against the server's web
//! router in this process (tests/src/inproc.rs), with the same state, middleware and handlers as
//! the real server.

use lessonlens_e2e::InProcess;

/// Issue 14.8: axum's own rejections (a query parameter that does not parse, a body that is not
/// JSON, a method the address does not take) answer with the documented JSON error body, not
/// plain text.
#[test]
fn every_error_is_the_json_error_body() {
    let server = InProcess::start();
    server.add_user("alice", "alice-password", "teacher");
    let alice = server.login("alice", "alice-password");
    let rec = lessonlens_e2e::new_recording_id();
    let cases = [
        (
            "a query parameter that is not a number",
            server.call(
                "GET",
                &format!("/api/recordings/{rec}/download.mp4?part=abc"),
                Some(&alice),
                None,
            ),
        ),
        (
            "a body that is not JSON",
            server.call_raw("POST", "/api/login", "application/json", "{not json"),
        ),
        (
            "a method the address does not take",
            server.call("PUT", "/api/login", None, None),
        ),
    ];
    for (what, answer) in cases {
        assert!(
            (400..500).contains(&answer.status),
            "{what}: {}",
            answer.status
        );
        assert!(
            answer.content_type.starts_with("application/json"),
            "{what}: {} {}",
            answer.status,
            answer.content_type
        );
        assert!(
            answer.body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{what}: {}",
            answer.body
        );
    }
}

#[test]
fn the_audit_log_pages_take_only_bounded_input_and_only_from_admins() {
    let server = InProcess::start();
    server.add_user("ada", "ada-password", "admin");
    server.add_user("cleo", "cleo-password", "coach");
    let ada = server.login("ada", "ada-password");
    let get = |query: &str, cookie: &str| {
        let a = server.call(
            "GET",
            &format!("/api/admin/audit?{query}"),
            Some(cookie),
            None,
        );
        (a.status, a.body)
    };
    let (code, page) = get("page=0&q=login", &ada);
    assert_eq!(code, 200, "{page}");
    assert_eq!(page["page"], 0);
    assert!(page["more"].is_boolean(), "{page}");
    let rows = page["rows"].as_array().unwrap();
    assert!(!rows.is_empty(), "ada's sign-in is in the log: {page}");
    assert!(
        rows.iter().all(|r| r.to_string().contains("login")),
        "{page}"
    );
    let long = format!("q={}", "a".repeat(101));
    for bad in ["page=100001", "page=-1", "page=abc", long.as_str()] {
        let (code, body) = get(bad, &ada);
        assert_eq!(code, 400, "{bad}: {body}");
        assert!(body["error"].is_string(), "{bad}: {body}");
    }
    let cleo = server.login("cleo", "cleo-password");
    assert_eq!(get("page=0", &cleo).0, 403);
}

/// The offline list, which every teacher sees, comes a page at a time and refuses pages out of
/// bounds; coaches and admins do not get it.
#[test]
fn the_offline_list_takes_only_bounded_pages_and_only_from_teachers() {
    let server = InProcess::start();
    server.add_user("tess", "tess-password", "teacher");
    server.add_user("cleo", "cleo-password", "coach");
    let tess = server.login("tess", "tess-password");
    let first = server.call("GET", "/api/unassigned", Some(&tess), None);
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.body["rows"], serde_json::json!([]));
    assert_eq!(first.body["more"], false);
    for bad in ["page=100001", "page=-1", "page=abc"] {
        let a = server.call("GET", &format!("/api/unassigned?{bad}"), Some(&tess), None);
        assert_eq!(a.status, 400, "{bad}: {}", a.body);
    }
    let cleo = server.login("cleo", "cleo-password");
    assert_eq!(
        server
            .call("GET", "/api/unassigned", Some(&cleo), None)
            .status,
        403
    );
    assert_eq!(
        server.call("GET", "/api/unassigned", None, None).status,
        401
    );
}

/// Issue 14.2 (found in review): a coach an admin disabled is not among the members a teacher
/// sees, so a share made meanwhile must not let them in once the admin enables them again: they
/// count as having joined the group then.
#[test]
fn a_coach_enabled_again_does_not_inherit_shares_made_while_disabled() {
    let server = InProcess::start();
    server.add_user("ada", "ada-password", "admin");
    server.add_user("tess", "tess-password", "teacher");
    server.add_user("cleo", "cleo-password", "coach");
    let (ada, tess) = (
        server.login("ada", "ada-password"),
        server.login("tess", "tess-password"),
    );
    let rec = lessonlens_e2e::new_recording_id().to_string();
    {
        let c = server.state.db.lock().unwrap();
        c.execute(
            "INSERT INTO devices (id, name, created_at) VALUES (1, 'room-1', 0)",
            [],
        )
        .unwrap();
        c.execute(
            "INSERT INTO recordings (id, owner_id, device_id, created_at)
             SELECT ?1, id, 1, 0 FROM users WHERE username = 'tess'",
            [&rec],
        )
        .unwrap();
    }
    let made = server.call(
        "POST",
        "/api/admin/groups",
        Some(&ada),
        Some(r#"{"name": "Maths"}"#),
    );
    assert_eq!(made.status, 200, "{}", made.body);
    let group = made.body["id"].as_i64().unwrap();
    let admin_says = |method: &str, path: &str| {
        let a = server.call(method, path, Some(&ada), None);
        assert_eq!(a.status, 200, "{method} {path}: {}", a.body);
    };
    admin_says("PUT", &format!("/api/admin/groups/{group}/members/cleo"));
    admin_says("POST", "/api/admin/users/cleo/disable");
    // The teacher sees nobody in the group, and shares with it as she sees it.
    let groups = server.call("GET", "/api/groups", Some(&tess), None);
    assert_eq!(
        groups.body[0]["members"],
        serde_json::json!([]),
        "{}",
        groups.body
    );
    let share = format!(r#"{{"group": {group}, "members": []}}"#);
    let shared = server.call(
        "POST",
        &format!("/api/recordings/{rec}/group-shares"),
        Some(&tess),
        Some(&share),
    );
    assert_eq!(shared.status, 200, "{}", shared.body);
    admin_says("POST", "/api/admin/users/cleo/enable");
    let cleo = server.login("cleo", "cleo-password");
    assert_eq!(
        server
            .call("GET", &format!("/api/recordings/{rec}"), Some(&cleo), None)
            .status,
        404,
        "a coach the teacher did not see got in"
    );
    // The recording page tells the teacher, who can let her in.
    let detail = server.call("GET", &format!("/api/recordings/{rec}"), Some(&tess), None);
    assert_eq!(
        detail.body["group_shares"][0]["members"][0]["can_watch"], false,
        "{}",
        detail.body
    );
    let again = format!(r#"{{"group": {group}, "members": ["cleo"]}}"#);
    let shared = server.call(
        "POST",
        &format!("/api/recordings/{rec}/group-shares"),
        Some(&tess),
        Some(&again),
    );
    assert_eq!(shared.status, 200, "{}", shared.body);
    assert_eq!(
        server
            .call("GET", &format!("/api/recordings/{rec}"), Some(&cleo), None)
            .status,
        200
    );
}

/// Issue 16: the timetable import previews what it would book and names each bad line by number
/// (a day that is not one, an unknown room or teacher, a clash); applied with the bad lines
/// skipped, it books the good ones every week.
#[test]
fn the_timetable_import_names_bad_lines_and_books_the_good_ones() {
    let server = InProcess::start();
    server.add_user("ada", "ada-password", "admin");
    server.add_user("alice", "alice-password", "teacher");
    server.add_user("cleo", "cleo-password", "coach");
    server
        .state
        .db
        .lock()
        .unwrap()
        .execute(
            "INSERT INTO devices (id, name, created_at) VALUES (1, 'room-1', 0)",
            [],
        )
        .unwrap();
    let ada = server.login("ada", "ada-password");
    let csv = "Room,Day,Start,End,Teacher\n\
               room-1,Tuesday,10:00,11:00,alice\n\
               room-1,Funday,10:00,11:00,alice\n\
               room-9,Tuesday,12:00,13:00,alice\n\
               room-1,Wednesday,09:00,10:00,cleo\n\
               room-1,Tue,10:30,11:30,alice\n";
    let form = |apply: bool, skip: bool| {
        serde_json::json!({"csv": csv, "weeks": 3, "apply": apply, "skip_bad_lines": skip})
            .to_string()
    };
    let preview = server.call(
        "POST",
        "/api/admin/timetable",
        Some(&ada),
        Some(&form(false, false)),
    );
    assert_eq!(preview.status, 200, "{}", preview.body);
    let lines: Vec<i64> = preview.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["line"].as_i64().unwrap())
        .collect();
    assert_eq!(lines, [3, 4, 5, 6], "{}", preview.body);
    assert!(preview.body["errors"][2]["message"]
        .as_str()
        .unwrap()
        .contains("not a teacher"));
    assert!(preview.body["errors"][3]["message"]
        .as_str()
        .unwrap()
        .contains("already booked"));
    assert_eq!(preview.body["lessons"][0]["bookings"], 3);
    assert_eq!(preview.body["applied"], false);
    // Bad lines and no skipping: nothing is booked.
    let refused = server.call(
        "POST",
        "/api/admin/timetable",
        Some(&ada),
        Some(&form(true, false)),
    );
    assert_eq!(refused.status, 422, "{}", refused.body);
    let count = || -> i64 {
        server
            .state
            .db
            .lock()
            .unwrap()
            .query_row("SELECT COUNT(*) FROM bookings", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(count(), 0);
    let applied = server.call(
        "POST",
        "/api/admin/timetable",
        Some(&ada),
        Some(&form(true, true)),
    );
    assert_eq!(applied.body["applied"], true, "{}", applied.body);
    assert_eq!(count(), 3, "Tuesday 10:00 for three weeks");
    // A first day in the past is refused.
    let past = serde_json::json!({"csv": csv, "from": "2020-01-06", "weeks": 1}).to_string();
    assert_eq!(
        server
            .call("POST", "/api/admin/timetable", Some(&ada), Some(&past))
            .status,
        400
    );
    // Teachers cannot import a timetable.
    let alice = server.login("alice", "alice-password");
    assert_eq!(
        server
            .call(
                "POST",
                "/api/admin/timetable",
                Some(&alice),
                Some(&form(false, false))
            )
            .status,
        403
    );
}
