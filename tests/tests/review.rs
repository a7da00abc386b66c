//! Reviewing lessons (issue 5): sharing with coaches, comments and reflections, who watched, and
//! deleting a recording; in a real browser on a real recorded lesson, and rule by rule on the API.

use lessonlens_e2e::{column, record_once, web_dir, Server};
use serde_json::json;

/// GET/POST/DELETE as `cookie`, giving the status and the JSON body (if any).
fn call(
    server: &Server,
    method: &str,
    path: &str,
    cookie: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    server.call(method, path, cookie, body)
}

#[test]
fn a_teacher_and_a_coach_review_a_lesson_in_the_browser() {
    let server = Server::start(&web_dir());
    for (user, role) in [("alice", "teacher"), ("carol", "coach"), ("ada", "admin")] {
        server.add_user(user, &format!("{user}-password"), role);
    }
    let enrolled = server.add_device("room-12");
    let device = tempfile::tempdir().unwrap();
    let config = server.capture_config(
        device.path(),
        &enrolled,
        "[video]\nwidth = 640\nheight = 360\nbitrate_kbps = 800\n",
    );
    let report = record_once(&config, "alice", "9");
    let rec = report["recording"].as_str().unwrap();

    let (stdout, shots) = server.browser_script(
        "review.mjs",
        "review",
        &[
            ("LL_RECORDING", rec),
            ("LL_TEACHER", "alice:alice-password"),
            ("LL_COACH", "carol:carol-password"),
            ("LL_ADMIN", "ada:ada-password"),
        ],
    );
    let result: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(
        result["poster_width"], 480,
        "the library shows the poster frame: {result}"
    );
    // The download the browser saved is the whole lesson: init and every media segment.
    assert!(
        result["download_bytes"].as_u64().unwrap() > 100_000,
        "a 9 s lesson downloads as more than a few headers: {result}"
    );
    // The roster the admin imported in the browser made Nina's account, with her staff id.
    let nina: Vec<String> = lessonlens_e2e::column(
        &server.db(),
        "SELECT username FROM users WHERE staff_id = 'T77'",
        [],
    );
    assert_eq!(nina, ["nina.new"]);
    // Issue 14.2: Nina was told, at her first sign-in, what the admin did to her account.
    let unseen = result["nina_admin_actions"]["unseen"].to_string();
    assert!(
        unseen.contains("made an invitation link") && unseen.contains("roster"),
        "{result}"
    );
    // The teacher saw who is in the group before sharing with it; a coach who joined it later
    // could not watch until the teacher shared again.
    assert!(
        result["share_group_members"]
            .as_str()
            .is_some_and(|t| t.contains("In Maths coaches: carol")),
        "{result}"
    );
    assert_eq!(result["late_member_let_in"], true, "{result}");
    for page in ["account", "recording-late-member"] {
        assert!(result["a11y"][page].is_u64(), "{page}: {result}");
    }
    // The enrollment code the admin page showed enrols the real capture binary.
    let code = result["enrollment_code"].as_str().unwrap();
    let out = server.run_enroll("room-99", code, &server.ca_fingerprint());
    assert!(
        out.status.success(),
        "enrolling with the admin page's code: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for page in [
        "login",
        "library",
        "recording",
        "shared-with-me",
        "recording-coach",
        "admin",
    ] {
        assert!(
            result["a11y"][page].is_u64(),
            "no accessibility check of {page}: {result}"
        );
        assert!(shots.join(format!("{page}.png")).exists(), "{page}.png");
    }

    // What the browser did is in the database: the comment, the reflection, the reply, the
    // revoked share, and the coach's view in the audit log.
    let db = server.db();
    let comments: Vec<(String, bool, bool)> = db
        .prepare("SELECT body, private, parent_id IS NOT NULL FROM comments ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(comments.len(), 3, "{comments:?}");
    assert!(comments
        .iter()
        .any(|c| c.1 && c.0.starts_with("Note to self")));
    assert!(comments.iter().any(|c| c.2 && c.0.starts_with("Agreed")));
    let shares: i64 = db
        .query_row("SELECT COUNT(*) FROM shares", [], |r| r.get(0))
        .unwrap();
    assert_eq!(shares, 0, "the share was revoked");
    let actions: Vec<String> = column(
        &db,
        "SELECT action FROM audit WHERE target LIKE ?1 ORDER BY id",
        [format!("{rec}%")],
    );
    for a in ["view", "share", "unshare", "hold"] {
        assert!(actions.iter().any(|x| x == a), "no {a} in {actions:?}");
    }
    let hold: Option<String> = db
        .query_row(
            "SELECT hold_reason FROM recordings WHERE id = ?1",
            [rec],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(hold.as_deref(), Some("Safeguarding review"));
    let leaving: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM leaving l JOIN users u ON u.id = l.user_id WHERE u.username = 'olivia' AND u.disabled = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(leaving, 1, "the admin offboarded olivia in the browser");
}

#[test]
fn comments_shares_and_deletion_follow_the_rules() {
    let server = Server::start(&web_dir());
    for (user, role) in [
        ("alice", "teacher"),
        ("bob", "teacher"),
        ("carol", "coach"),
        ("dave", "coach"),
    ] {
        server.add_user(user, &format!("{user}-password"), role);
    }
    let room = server.add_device("room-12");
    let (rec, _) = server.upload_recording(&room, "alice", 3);
    let agent = server.agent();
    let [alice, bob, carol, dave] = ["alice", "bob", "carol", "dave"]
        .map(|u| server.login(&agent, u, &format!("{u}-password")));
    let r = format!("/api/recordings/{rec}");

    // Before sharing, the coach cannot see it; a teacher cannot be shared with.
    assert_eq!(
        call(&server, "GET", &format!("{r}/comments"), &carol, None).0,
        404
    );
    let share = |who: &str| Some(serde_json::json!({ "username": who }));
    let (status, body) = call(
        &server,
        "POST",
        &format!("{r}/shares"),
        &alice,
        share("bob"),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("not a coach"));
    assert_eq!(
        call(
            &server,
            "POST",
            &format!("{r}/shares"),
            &bob,
            share("carol")
        )
        .0,
        404
    );
    assert_eq!(
        call(
            &server,
            "POST",
            &format!("{r}/shares"),
            &alice,
            share("carol")
        )
        .0,
        200
    );

    // Comments: a coach cannot write a reflection or use a tag the school has not defined.
    let comment = |at: f64, body: &str, extra: serde_json::Value| {
        let mut v = serde_json::json!({ "at_seconds": at, "body": body });
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        Some(v)
    };
    let post = |who: &str, v| call(&server, "POST", &format!("{r}/comments"), who, v);
    assert_eq!(
        post(
            &carol,
            comment(1.0, "x", serde_json::json!({"private": true}))
        )
        .0,
        403
    );
    let (status, body) = post(
        &carol,
        comment(1.0, "x", serde_json::json!({"tag": "vibes"})),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        post(&carol, comment(1.0, "  ", serde_json::json!({}))).0,
        400
    );
    assert_eq!(
        post(&carol, comment(-1.0, "x", serde_json::json!({}))).0,
        400
    );
    let (status, c1) = post(
        &carol,
        comment(
            3.5,
            "Nice questioning",
            serde_json::json!({"tag": "questioning"}),
        ),
    );
    assert_eq!(status, 200, "{c1}");
    let (_, note) = post(
        &alice,
        comment(5.0, "Reflection", serde_json::json!({"private": true})),
    );
    // A reply sits at its parent's time; a reply to a private note is refused.
    let (status, reply) = post(
        &alice,
        comment(9.0, "Thanks", serde_json::json!({"parent_id": c1["id"]})),
    );
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        post(
            &carol,
            comment(1.0, "peek", serde_json::json!({"parent_id": note["id"]}))
        )
        .0,
        400
    );
    let (_, seen_by_coach) = call(&server, "GET", &format!("{r}/comments"), &carol, None);
    let (_, seen_by_owner) = call(&server, "GET", &format!("{r}/comments"), &alice, None);
    let bodies = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|c| c["body"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(bodies(&seen_by_coach), ["Nice questioning", "Thanks"]);
    assert_eq!(
        bodies(&seen_by_owner),
        ["Nice questioning", "Thanks", "Reflection"]
    );
    let thanks = &seen_by_owner[1];
    assert_eq!(thanks["at_seconds"], 3.5, "a reply takes its parent's time");
    // Only the author deletes a comment.
    let c1_path = format!("{r}/comments/{}", c1["id"]);
    assert_eq!(call(&server, "DELETE", &c1_path, &alice, None).0, 404);
    // The coach's library, then who watched: the coach's playlist fetch is a view.
    let (_, shared) = call(&server, "GET", "/api/shared", &carol, None);
    assert_eq!(shared[0]["id"], rec.to_string());
    assert_eq!(shared[0]["owner"], "alice");
    assert_eq!(
        call(&server, "GET", "/api/shared", &dave, None).1,
        serde_json::json!([])
    );
    assert_eq!(
        call(&server, "GET", &format!("{r}/playlist.m3u8"), &carol, None).0,
        200
    );
    let (_, views) = call(&server, "GET", &format!("{r}/views"), &alice, None);
    assert_eq!(views[0]["display_name"], "carol", "{views}");
    let (_, mine) = call(&server, "GET", "/api/recordings", &alice, None);
    assert_eq!(mine[0]["shared_with"], serde_json::json!(["carol"]));

    // Deleting: not by the coach; by the owner, everything goes, files included.
    assert_eq!(call(&server, "DELETE", &r, &carol, None).0, 403);
    let db = server.db();
    let shas: Vec<String> = column(
        &db,
        "SELECT sha256 FROM segments WHERE recording_id = ?1",
        [rec.to_string()],
    );
    assert_eq!(shas.len(), 4);
    let blob = |sha: &str| server.data_dir().join("blobs").join(&sha[..2]).join(sha);
    assert!(
        shas.iter().all(|s| blob(s).exists()),
        "blobs are where the test looks"
    );
    let (status, body) = call(&server, "DELETE", &r, &alice, None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["deleted"]["segments"], 4);
    for s in &shas {
        assert!(!blob(s).exists(), "blob {s} survived the deletion");
    }
    for table in [
        "recordings",
        "segments",
        "comments",
        "shares",
        "blob_deletions",
    ] {
        let n: i64 = db
            .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0, "{table} still has rows");
    }
    let deleted: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM audit WHERE action = 'delete-recording' AND target = ?1",
            [rec.to_string()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(deleted, 1);
    assert_eq!(call(&server, "GET", &r, &alice, None).0, 404);
}

#[test]
fn a_group_of_coaches_sees_a_lesson_while_shared_and_while_they_are_in_it() {
    let server = Server::start(&web_dir());
    for (user, role) in [
        ("alice", "teacher"),
        ("carol", "coach"),
        ("dave", "coach"),
        ("bob", "teacher"),
        ("ada", "admin"),
    ] {
        server.add_user(user, &format!("{user}-password"), role);
    }
    let room = server.add_device("room-12");
    let (rec, _) = server.upload_recording(&room, "alice", 2);
    let agent = server.agent();
    let [alice, carol, dave, bob, ada] = ["alice", "carol", "dave", "bob", "ada"]
        .map(|u| server.login(&agent, u, &format!("{u}-password")));
    let r = format!("/api/recordings/{rec}");

    // Admins make groups; names are unique (ignoring case), and only coaches can be members.
    assert_eq!(
        call(
            &server,
            "POST",
            "/api/admin/groups",
            &alice,
            Some(json!({"name": "Maths"}))
        )
        .0,
        403
    );
    let (status, made) = call(
        &server,
        "POST",
        "/api/admin/groups",
        &ada,
        Some(json!({"name": "Maths coaches"})),
    );
    assert_eq!(status, 200, "{made}");
    let g = made["id"].as_i64().unwrap();
    let (status, body) = call(
        &server,
        "POST",
        "/api/admin/groups",
        &ada,
        Some(json!({"name": "maths COACHES"})),
    );
    assert_eq!(status, 409, "{body}");
    let (status, body) = call(
        &server,
        "PUT",
        &format!("/api/admin/groups/{g}/members/bob"),
        &ada,
        None,
    );
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("not a coach"));
    for coach in ["carol", "dave"] {
        let path = format!("/api/admin/groups/{g}/members/{coach}");
        assert_eq!(call(&server, "PUT", &path, &ada, None).0, 200);
    }
    let (_, groups) = call(&server, "GET", "/api/groups", &alice, None);
    assert_eq!(groups[0]["name"], "Maths coaches");
    assert_eq!(groups[0]["members"].as_array().unwrap().len(), 2);
    assert_eq!(call(&server, "GET", "/api/groups", &carol, None).0, 403);

    // Shared with the group: both coaches see it, in "Shared with me" and the player.
    assert_eq!(
        call(&server, "GET", &format!("{r}/playlist.m3u8"), &carol, None).0,
        404
    );
    assert_eq!(
        call(
            &server,
            "POST",
            &format!("{r}/group-shares"),
            &bob,
            Some(json!({"group": g, "members": ["carol", "dave"]}))
        )
        .0,
        404,
        "only the owner shares"
    );
    assert_eq!(
        call(
            &server,
            "POST",
            &format!("{r}/group-shares"),
            &alice,
            Some(json!({"group": g + 99, "members": []}))
        )
        .0,
        400
    );
    assert_eq!(
        call(
            &server,
            "POST",
            &format!("{r}/group-shares"),
            &alice,
            Some(json!({"group": g, "members": ["carol"]}))
        )
        .0,
        409,
        "the teacher was shown a group without dave: nothing is shared"
    );
    assert_eq!(
        call(&server, "GET", &format!("{r}/segments/1"), &carol, None).0,
        404
    );
    assert_eq!(
        call(
            &server,
            "POST",
            &format!("{r}/group-shares"),
            &alice,
            Some(json!({"group": g, "members": ["dave", "carol"]}))
        )
        .0,
        200
    );
    for coach in [&carol, &dave] {
        let (_, shared) = call(&server, "GET", "/api/shared", coach, None);
        assert_eq!(shared[0]["id"], rec.to_string(), "{shared}");
        assert_eq!(
            call(&server, "GET", &format!("{r}/segments/1"), coach, None).0,
            200
        );
    }
    let (_, detail) = call(&server, "GET", &r, &alice, None);
    assert_eq!(detail["group_shares"][0]["name"], "Maths coaches");
    assert!(detail["shared_with"]
        .as_array()
        .unwrap()
        .contains(&json!("Maths coaches (group)")));

    // Leaving the group ends access at once; so does the group's removal.
    let (status, _) = call(
        &server,
        "DELETE",
        &format!("/api/admin/groups/{g}/members/dave"),
        &ada,
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(
        call(&server, "GET", &format!("{r}/segments/1"), &dave, None).0,
        404
    );
    assert_eq!(
        call(&server, "GET", &format!("{r}/segments/1"), &carol, None).0,
        200
    );
    assert_eq!(
        call(
            &server,
            "DELETE",
            &format!("/api/admin/groups/{g}"),
            &ada,
            None
        )
        .0,
        200
    );
    assert_eq!(
        call(&server, "GET", &format!("{r}/segments/1"), &carol, None).0,
        404
    );
    let (_, shared) = call(&server, "GET", "/api/shared", &carol, None);
    assert_eq!(shared, json!([]));

    // Every step is in the audit log, naming the coaches by pseudonym only.
    let actions: Vec<String> = column(
        &server.db(),
        "SELECT action || ' ' || target FROM audit WHERE action LIKE 'group-%' OR target LIKE '% group %' ORDER BY id",
        [],
    );
    assert_eq!(actions.len(), 6, "{actions:?}");
    assert!(
        actions[0].starts_with("group-create Maths coaches"),
        "{actions:?}"
    );
    assert!(
        actions
            .iter()
            .all(|a| !a.contains("carol") && !a.contains("dave")),
        "{actions:?}"
    );
    assert!(actions
        .iter()
        .any(|a| a.starts_with("share ") && a.ends_with(" group Maths coaches")));
}

/// Issue 14.4: a coach who fetches the init segment and media segments directly, without the
/// playlist, has watched the lesson, and the owner's "who watched this" says so. The segment's
/// `.m4s` name (issue 14.8, for ffmpeg's HLS reader) and the bare index both work.
#[test]
fn reading_segments_without_the_playlist_is_a_logged_view() {
    let server = Server::start(&web_dir());
    for (user, role) in [("alice", "teacher"), ("carol", "coach")] {
        server.add_user(user, &format!("{user}-password"), role);
    }
    let room = server.add_device("room-12");
    let (rec, _) = server.upload_recording(&room, "alice", 3);
    let agent = server.agent();
    let [alice, carol] =
        ["alice", "carol"].map(|u| server.login(&agent, u, &format!("{u}-password")));
    let r = format!("/api/recordings/{rec}");
    let (status, _) = call(
        &server,
        "POST",
        &format!("{r}/shares"),
        &alice,
        Some(json!({ "username": "carol" })),
    );
    assert_eq!(status, 200);
    // The owner's own reads are not views by someone else.
    assert_eq!(
        call(&server, "GET", &format!("{r}/init.mp4"), &alice, None).0,
        200
    );
    assert_eq!(
        call(&server, "GET", &format!("{r}/views"), &alice, None).1,
        json!([])
    );

    assert_eq!(
        call(&server, "GET", &format!("{r}/init.mp4"), &carol, None).0,
        200
    );
    assert_eq!(
        call(&server, "GET", &format!("{r}/segments/1.m4s"), &carol, None).0,
        200
    );
    assert_eq!(
        call(&server, "GET", &format!("{r}/segments/2"), &carol, None).0,
        200
    );
    assert_eq!(
        call(&server, "GET", &format!("{r}/segments/x.m4s"), &carol, None).0,
        404
    );
    let (_, views) = call(&server, "GET", &format!("{r}/views"), &alice, None);
    assert_eq!(views.as_array().unwrap().len(), 1, "{views}");
    assert_eq!(views[0]["display_name"], "carol");
    // Coalesced: one entry for the three reads, as for a watched playlist.
    assert_eq!(views[0]["views"], 1, "{views}");
}

/// Issue 14.5 and 14.7: deleted comments, reflections and lessons leave nothing readable in the
/// database's files (secure delete, and a checkpoint that empties the WAL), and a segment that
/// arrives after its lesson was deleted is answered as stored but does not bring the lesson back.
#[test]
fn deleted_lessons_and_comments_stay_deleted_in_the_files_and_on_late_uploads() {
    use sha2::{Digest, Sha256};
    let server = Server::start(&web_dir());
    server.add_user("alice", "alice-password", "teacher");
    let room = server.add_device("room-12");
    let (rec, segments) = server.upload_recording(&room, "alice", 3);
    let alice = server.login(&server.agent(), "alice", "alice-password");
    let r = format!("/api/recordings/{rec}");
    let marker = "QXJZV private reflection about Pupil Wexford";
    let (status, comment) = call(
        &server,
        "POST",
        &format!("{r}/comments"),
        &alice,
        Some(json!({ "at_seconds": 1.0, "body": marker, "private": true })),
    );
    assert_eq!(status, 200, "{comment}");
    let other = "QXJZV shared comment about Pupil Wexford";
    let (status, _) = call(
        &server,
        "POST",
        &format!("{r}/comments"),
        &alice,
        Some(json!({ "at_seconds": 2.0, "body": other })),
    );
    assert_eq!(status, 200);
    let id = comment["id"].as_i64().unwrap();
    assert_eq!(
        call(
            &server,
            "DELETE",
            &format!("{r}/comments/{id}"),
            &alice,
            None
        )
        .0,
        200
    );
    assert_eq!(call(&server, "DELETE", &r, &alice, None).0, 200);

    // A late segment: the device gets its receipt (so it drops its copy), the lesson stays gone.
    let body = &segments[2];
    let sha = hex::encode(Sha256::digest(body));
    let receipt: serde_json::Value = server
        .device_agent(&room)
        .put(&format!(
            "{}/api/device/v1/recordings/{rec}/segments/2",
            server.device_url()
        ))
        .set(lessonlens_proto::wire::SHA256_HEADER, &sha)
        .send_bytes(body)
        .expect("a late segment is answered")
        .into_json()
        .unwrap();
    assert_eq!(receipt["sha256"], sha);
    let left: Vec<i64> = column(
        &server.db(),
        "SELECT COUNT(*) FROM segments WHERE recording_id = ?1",
        [rec.to_string()],
    );
    assert_eq!(left, [0]);
    assert_eq!(call(&server, "GET", &r, &alice, None).0, 404);

    // Raw scan of every file of the database.
    for entry in std::fs::read_dir(server.data_dir()).unwrap() {
        let path = entry.unwrap().path();
        if !path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("lessonlens.db")
        {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes.windows(5).any(|w| w == b"QXJZV"),
            "{} still holds deleted text",
            path.display()
        );
    }
}
