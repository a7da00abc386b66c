//! Recording while the server is unreachable (issues 3 and 4): the teacher's code cannot be
//! checked, so the capture service records to the school's unassigned key (fetched earlier) and
//! keeps the code only sealed to that key. Once the server is back the lesson uploads, owned by nobody;
//! the teacher claims it with the same code, the server re-seals each segment's data key to
//! them, and it plays. Another teacher, or a wrong code, cannot claim it.

use lessonlens_e2e::{capture_json, column, Server};
use std::path::Path;
use std::time::{Duration, Instant};

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_lesson_recorded_offline_is_claimed_by_its_teacher_with_their_code() {
    let mut server = Server::start(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../web"));
    server.add_user("alice", "alice-password", "teacher");
    server.add_user("bob", "bob-password", "teacher");
    for (who, code) in [("alice", "2468"), ("bob", "1357")] {
        assert_eq!(server.set_device_code(who, code), 200);
    }
    let enrolled = server.add_device("room-1");
    let device = tempfile::tempdir().unwrap();
    let (_service, config, _) = server.capture_service(
        device.path(),
        &enrolled,
        "[video]\nwidth = 320\nheight = 180\nbitrate_kbps = 400\n",
    );
    // While online the device keeps the school's unassigned key.
    let cached = enrolled.identity.join("unassigned.pub");
    wait_until("the unassigned key is kept", || cached.exists());

    // The server goes away; the teacher starts a lesson with her code anyway.
    server.kill();
    let started = capture_json(&config, &["record", "start", "--code"], "2468\n");
    assert!(started["recording"].is_string(), "{started}");
    let rec = started["recording"].as_str().unwrap().to_string();
    wait_until("a few segments are spooled", || {
        capture_json(&config, &["status"], "")["segments_spooled"]
            .as_u64()
            .unwrap()
            >= 3
    });
    let stopped = capture_json(&config, &["record", "stop"], "");
    assert_eq!(stopped["recording"], rec.as_str());
    // The device keeps the code for the claim only sealed to the school's key (issue 14.5):
    // neither the code nor a hash of it, which trying the 10^4 codes would reverse.
    let hash = lessonlens_proto::manifest::claim_hash(rec.parse().unwrap(), "2468");
    let metas: Vec<_> = walk(&device.path().join("spool"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    assert!(!metas.is_empty());
    let mut found = false;
    for path in metas {
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains("\"2468\"") && !text.contains(&hash),
            "{} holds the code or its hash",
            path.display()
        );
        let meta: serde_json::Value = serde_json::from_str(&text).unwrap();
        found |= meta["claim"]
            .as_str()
            .is_some_and(|c| c.len() > 64 && c.bytes().all(|b| b.is_ascii_hexdigit()));
    }
    assert!(found, "the sealed claim is kept with the recording");

    // The server is back: everything uploads, owned by the unassigned account.
    server.restart();
    wait_until("the lesson is uploaded", || {
        let s = capture_json(&config, &["status"], "");
        s["bytes_waiting"] == 0 && s["segments_uploaded"] == s["segments_spooled"]
    });
    wait_until("the manifest is stored", || {
        column::<i64>(
            &server.db(),
            "SELECT COUNT(*) FROM recordings WHERE id = ?1 AND manifest IS NOT NULL",
            [&rec],
        )[0] == 1
    });
    let owner: Vec<String> = column(
        &server.db(),
        "SELECT u.username FROM recordings r JOIN users u ON u.id = r.owner_id WHERE r.id = ?1",
        [&rec],
    );
    assert_eq!(owner, ["(unassigned)"]);
    let before: Vec<String> = column(
        &server.db(),
        "SELECT sha256 FROM segments WHERE recording_id = ?1 ORDER BY idx",
        [&rec],
    );

    let agent = server.agent();
    let base = server.url();
    let alice = server.login(&agent, "alice", "alice-password");
    let bob = server.login(&agent, "bob", "bob-password");
    let listed = server.get_json("/api/unassigned", &alice);
    assert_eq!(listed["rows"][0]["id"], rec.as_str(), "{listed}");
    // Nobody can watch it before it is claimed.
    let playlist = format!("{base}/api/recordings/{rec}/playlist.m3u8");
    assert!(matches!(
        agent.get(&playlist).set("cookie", &alice).call(),
        Err(ureq::Error::Status(404, _))
    ));
    let claim = |cookie: &str, code: &str| match agent
        .post(&format!("{base}/api/unassigned/{rec}/claim"))
        .set("cookie", cookie)
        .send_json(serde_json::json!({ "code": code }))
    {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(claim(&alice, "12a"), 400, "a code is digits");
    assert_eq!(claim(&alice, "1357"), 403, "bob's code is not alice's");
    assert_eq!(claim(&bob, "1357"), 403, "bob did not start this lesson");
    assert_eq!(claim(&alice, "2468"), 200);
    assert_eq!(claim(&alice, "2468"), 404, "claimed already");

    // Hers now: re-sealed (new blobs, old ones gone), complete, and it plays.
    let after: Vec<String> = column(
        &server.db(),
        "SELECT sha256 FROM segments WHERE recording_id = ?1 ORDER BY idx",
        [&rec],
    );
    assert_eq!(after.len(), before.len());
    assert!(before.iter().zip(&after).all(|(a, b)| a != b));
    for sha in &before {
        assert!(!server
            .data_dir()
            .join("blobs")
            .join(&sha[..2])
            .join(sha)
            .exists());
    }
    let mine = server.get_json("/api/recordings", &alice);
    let entry = mine
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == rec.as_str())
        .unwrap_or_else(|| panic!("not in alice's library: {mine}"));
    assert_eq!(entry["status"], "complete", "{entry}");
    let res = agent
        .get(&format!("{base}/api/recordings/{rec}/segments/1"))
        .set("cookie", &alice)
        .call()
        .unwrap();
    assert_eq!(res.status(), 200);
    let actions: Vec<String> = column(
        &server.db(),
        "SELECT action FROM audit WHERE target = ?1",
        [&rec],
    );
    assert!(
        actions.contains(&"claim-offline-recording".to_string()),
        "{actions:?}"
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Issue 14.7: two claims of one offline lesson at once. One wins; the other is refused, and no
/// re-sealed copy is left behind with nothing referring to it.
#[test]
fn two_claims_at_once_leave_one_owner_and_no_orphaned_files() {
    use lessonlens_proto::manifest::seal_claim;
    let server = Server::start(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../web"));
    server.add_user("alice", "alice-password", "teacher");
    assert_eq!(server.set_device_code("alice", "2468"), 200);
    let room = server.add_device("room-1");
    let pk = server.unassigned_key(&room);
    // A lesson as a device records it offline: sealed to the unassigned key, the code sealed too.
    let rec = lessonlens_e2e::new_recording_id();
    let claim = seal_claim(
        &pk,
        rec,
        "2468",
        &mut rand_core::TryRngCore::unwrap_err(rand_core::OsRng),
    )
    .unwrap();
    server.upload_sealed(&room, &pk, rec, 12, Some(claim));

    let url = format!("{}/api/unassigned/{rec}/claim", server.url());
    let sessions: Vec<String> = (0..2)
        .map(|_| server.login(&server.agent(), "alice", "alice-password"))
        .collect();
    let barrier = std::sync::Barrier::new(2);
    let answers: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = sessions
            .iter()
            .map(|cookie| {
                let (url, barrier) = (&url, &barrier);
                let agent = server.agent();
                s.spawn(move || {
                    barrier.wait();
                    match agent
                        .post(url)
                        .set("cookie", cookie)
                        .send_json(serde_json::json!({ "code": "2468" }))
                    {
                        Ok(r) => r.status(),
                        Err(ureq::Error::Status(code, _)) => code,
                        Err(e) => panic!("{e}"),
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        answers.iter().filter(|&&c| c == 200).count(),
        1,
        "{answers:?}"
    );
    assert!(
        answers.iter().any(|&c| c == 409 || c == 404),
        "the other claim is refused: {answers:?}"
    );
    // Every file in the store is one a segment row refers to.
    let rows: Vec<i64> = column(
        &server.db(),
        "SELECT COUNT(DISTINCT sha256) FROM segments",
        [],
    );
    let blobs = server.data_dir().join("blobs");
    let files = walk(&blobs)
        .into_iter()
        .filter(|p| !p.starts_with(blobs.join("tmp")))
        .count();
    assert_eq!(files as i64, rows[0], "orphaned files in the blob store");
}

/// Issue 14.5: lessons from older devices came with an unsalted hash of the teacher's code, which
/// trying every code reverses in seconds, and the server kept it in the database. Now it keeps
/// only an HMAC of it under the master key, whether the hash arrives now or was stored by an
/// earlier version, and the lesson can still be claimed with the code.
#[test]
fn an_older_devices_claim_hash_is_kept_only_as_a_keyed_tag() {
    use lessonlens_proto::manifest::claim_hash;
    let mut server = Server::start(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../web"));
    server.add_user("alice", "alice-password", "teacher");
    server.add_user("bob", "bob-password", "teacher");
    assert_eq!(server.set_device_code("alice", "2468"), 200);
    assert_eq!(server.set_device_code("bob", "1357"), 200);
    let room = server.add_device("room-1");
    let pk = server.unassigned_key(&room);
    let (fresh, stored) = (
        lessonlens_e2e::new_recording_id(),
        lessonlens_e2e::new_recording_id(),
    );
    let hashes = [claim_hash(fresh, "2468"), claim_hash(stored, "2468")];
    // One arrives now; the other is in the database as an earlier version kept it.
    server.upload_sealed(&room, &pk, fresh, 2, Some(hashes[0].clone()));
    server.upload_sealed(&room, &pk, stored, 2, None);
    server.kill();
    {
        let db = rusqlite::Connection::open(server.data_dir().join("lessonlens.db")).unwrap();
        let manifest: String = db
            .query_row(
                "SELECT manifest FROM recordings WHERE id = ?1",
                [stored.to_string()],
                |r| r.get(0),
            )
            .unwrap();
        let mut m: serde_json::Value = serde_json::from_str(&manifest).unwrap();
        m["claim"] = hashes[1].clone().into();
        db.execute(
            "UPDATE recordings SET manifest = ?1 WHERE id = ?2",
            rusqlite::params![m.to_string(), stored.to_string()],
        )
        .unwrap();
    }
    server.restart();
    // Neither hash is anywhere in the database's files; each claim is a tag.
    let mut files = Vec::new();
    for name in ["lessonlens.db", "lessonlens.db-wal"] {
        files.extend(std::fs::read(server.data_dir().join(name)).unwrap_or_default());
    }
    for hash in &hashes {
        assert!(
            !files.windows(hash.len()).any(|w| w == hash.as_bytes()),
            "a claim hash is kept in the database files"
        );
    }
    let claims: Vec<String> = column(
        &server.db(),
        "SELECT json_extract(manifest, '$.claim') FROM recordings ORDER BY id",
        [],
    );
    assert_eq!(claims.len(), 2);
    assert!(claims.iter().all(|c| c.starts_with("hmac:")), "{claims:?}");

    // Both are claimed with the code that started them, and not with another teacher's own code
    // (which reaches the comparison with the tag).
    let alice = server.login(&server.agent(), "alice", "alice-password");
    let bob = server.login(&server.agent(), "bob", "bob-password");
    for rec in [fresh, stored] {
        let claim = |cookie: &str, code: &str| match server
            .agent()
            .post(&format!("{}/api/unassigned/{rec}/claim", server.url()))
            .set("cookie", cookie)
            .send_json(serde_json::json!({ "code": code }))
        {
            Ok(r) => (r.status(), String::new()),
            Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
            Err(e) => panic!("{e}"),
        };
        let (status, body) = claim(&bob, "1357");
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("not started with your code"), "{body}");
        assert_eq!(claim(&alice, "2468").0, 200);
    }
}
