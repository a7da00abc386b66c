//! Subject access (issue 6): a person downloads everything lessonlens holds about them as one
//! archive, and an admin makes the same archive with the CLI for a formal request. The archive is
//! read back here: the account, the lessons, the comments (another person's private reflection
//! excluded), the audit entries, and each lesson's video decrypted into one MP4.

use lessonlens_e2e::{web_dir, Server};
use std::collections::BTreeSet;
use std::io::Read;

type Archive = zip::ZipArchive<std::io::Cursor<Vec<u8>>>;

fn names(a: &Archive) -> BTreeSet<String> {
    a.file_names().map(|n| n.unwrap().into_owned()).collect()
}

fn json(a: &mut Archive, name: &str) -> serde_json::Value {
    let mut text = String::new();
    a.by_name(name).unwrap().read_to_string(&mut text).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn export(server: &Server, cookie: &str) -> Archive {
    let res = server
        .agent()
        .get(&format!("{}/api/me/export", server.url()))
        .set("cookie", cookie)
        .call()
        .unwrap();
    assert_eq!(res.header("cache-control"), Some("no-store"));
    assert!(res
        .header("content-disposition")
        .is_some_and(|d| d.contains("attachment")));
    let mut bytes = Vec::new();
    res.into_reader().read_to_end(&mut bytes).unwrap();
    zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap()
}

#[test]
fn a_person_gets_everything_held_about_them_in_one_archive() {
    let server = Server::start(&web_dir());
    server.add_user("alice", "alice-password", "teacher");
    server.add_user("carol", "carol-password", "coach");
    server.add_user("ada", "ada-password", "admin");
    let room = server.add_device("room-1");
    // Every segment the helper uploads holds 1000 bytes of 7: init and two media segments. The
    // poster frame is 500 bytes of 0xd8; the talk time says the teacher talked, then the pupils.
    let (rec, _) = server.upload_recording(&room, "alice", 2);
    server.upload_poster(&room, "alice", rec);
    server.upload_talk(&room, "alice", rec, "tt-p");
    let agent = server.agent();
    let alice = server.login(&agent, "alice", "alice-password");
    let carol = server.login(&agent, "carol", "carol-password");
    let ada = server.login(&agent, "ada", "ada-password");
    let base = server.url();
    let post = |cookie: &str, path: &str, body: serde_json::Value| {
        agent
            .post(&format!("{base}{path}"))
            .set("cookie", cookie)
            .send_json(body)
            .unwrap();
    };
    post(
        &alice,
        &format!("/api/recordings/{rec}/shares"),
        serde_json::json!({"username": "carol"}),
    );
    post(
        &alice,
        &format!("/api/recordings/{rec}/comments"),
        serde_json::json!({"at_seconds": 1.0, "body": "My reflection", "private": true}),
    );
    // carol is also in a group the lesson is shared with.
    post(
        &ada,
        "/api/admin/groups",
        serde_json::json!({"name": "Maths coaches"}),
    );
    agent
        .put(&format!("{base}/api/admin/groups/1/members/carol"))
        .set("cookie", &ada)
        .call()
        .unwrap();
    post(
        &alice,
        &format!("/api/recordings/{rec}/group-shares"),
        serde_json::json!({"group": 1, "members": ["carol"]}),
    );
    post(
        &carol,
        &format!("/api/recordings/{rec}/comments"),
        serde_json::json!({"at_seconds": 2.0, "body": "Lovely questioning"}),
    );

    // A booking of hers (issue 16): when and where she booked a room is hers to see too.
    let next_week = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + 7 * 86_400;
    post(
        &alice,
        "/api/bookings",
        serde_json::json!({"room": "room-1", "starts_at": next_week, "ends_at": next_week + 3600}),
    );
    let mut a = export(&server, &alice);
    assert_eq!(
        json(&mut a, "account.json")["bookings"][0]["room"],
        "room-1"
    );
    let files = names(&a);
    let video = files
        .iter()
        .find(|n| n.starts_with("videos/") && n.ends_with(&format!("_{rec}.mp4")))
        .unwrap_or_else(|| panic!("no video in {files:?}"))
        .clone();
    for f in [
        "README.txt",
        "account.json",
        "recordings.json",
        "comments.json",
        "audit.json",
    ] {
        assert!(files.contains(f), "{f} missing from {files:?}");
    }
    let mut bytes = Vec::new();
    a.by_name(&video).unwrap().read_to_end(&mut bytes).unwrap();
    assert!(
        bytes == vec![7u8; 3000],
        "the video is the decrypted segments, in order"
    );
    let poster = format!("posters/{}.jpg", &video["videos/".len()..video.len() - 4]);
    let mut jpeg = Vec::new();
    a.by_name(&poster)
        .unwrap_or_else(|_| panic!("no {poster} in {files:?}"))
        .read_to_end(&mut jpeg)
        .unwrap();
    assert!(jpeg == vec![0xd8; 500], "the poster frame, decrypted");
    let talk = format!(
        "talk-time/{}.json",
        &video["videos/".len()..video.len() - 4]
    );
    assert_eq!(
        json(&mut a, &talk)["seconds"],
        "tt-p",
        "the talk time, decrypted"
    );
    assert_eq!(json(&mut a, "account.json")["username"], "alice");
    let recs = json(&mut a, "recordings.json");
    assert_eq!(recs[0]["id"], rec.to_string());
    assert_eq!(recs[0]["shared_with"][0]["coach"], "carol");
    assert_eq!(recs[0]["shared_with_groups"][0]["group"], "Maths coaches");
    let bodies: Vec<String> = json(&mut a, "comments.json")
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["body"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(bodies, ["My reflection", "Lovely questioning"]);
    let actions: Vec<String> = json(&mut a, "audit.json")
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect();
    for want in ["login", "share", "subject-access-export"] {
        assert!(
            actions.iter().any(|a| a == want),
            "{want} not in {actions:?}"
        );
    }

    // The coach's archive: her comment, not the teacher's reflection, and no video.
    let mut c = export(&server, &carol);
    assert!(!names(&c).iter().any(|n| n.starts_with("videos/")));
    assert_eq!(
        json(&mut c, "account.json")["coach_groups"][0]["group"],
        "Maths coaches"
    );
    // Entries that name her among others: shared with her, added to a group.
    let about_her = json(&mut c, "audit.json").to_string();
    for action in ["\"share\"", "\"group-add\""] {
        assert!(about_her.contains(action), "{action} in {about_her}");
    }
    let theirs = json(&mut c, "comments.json").to_string();
    assert!(theirs.contains("Lovely questioning") && !theirs.contains("My reflection"));

    // The admin's CLI makes the same archive for a formal request, never over an existing file.
    let out = server.dir.path().join("alice.zip");
    let run = |args: &[&str]| server.cli(args, "");
    let made = run(&["export", "alice", "--out", out.to_str().unwrap()]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let from_cli =
        zip::ZipArchive::new(std::io::Cursor::new(std::fs::read(&out).unwrap())).unwrap();
    assert_eq!(names(&from_cli), files);
    assert!(!run(&["export", "alice", "--out", out.to_str().unwrap()])
        .status
        .success());
}
