//! Retention and leaving the school (issue 6): a leaving teacher is disabled at once and deleted
//! for good after the grace period (rows, files, the private key), with a receipt a DPO can
//! verify; the retention sweeper deletes what the policy says is due and keeps what is held. The
//! clock is the test's: `lessonlens-server retention run --now T`.

use lessonlens_e2e::{column, web_dir, Server};
use lessonlens_server::domain::people::UserId;
use lessonlens_server::store::vault::{MasterKey, Vault};
use std::path::Path;

const DAY: i64 = 86_400;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn status(server: &Server, method: &str, path: &str, cookie: &str) -> u16 {
    let req = server
        .agent()
        .request(method, &format!("{}{path}", server.url()))
        .set("cookie", cookie);
    let res = if method == "POST" {
        req.send_json(serde_json::json!({"at_seconds": 1.0, "body": "hello"}))
    } else {
        req.call()
    };
    match res {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("{path}: {e}"),
    }
}

/// Every value in every table, as text, one line per row.
fn dump(db: &rusqlite::Connection) -> Vec<String> {
    let tables: Vec<String> = column(
        db,
        "SELECT name FROM sqlite_master WHERE type = 'table'",
        [],
    );
    let mut rows = Vec::new();
    for t in tables {
        let mut stmt = db.prepare(&format!("SELECT * FROM \"{t}\"")).unwrap();
        let n = stmt.column_count();
        let mut q = stmt.query([]).unwrap();
        while let Some(row) = q.next().unwrap() {
            let cells: Vec<String> = (0..n)
                .map(|i| match row.get_ref(i).unwrap() {
                    rusqlite::types::ValueRef::Null => "NULL".into(),
                    rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                    rusqlite::types::ValueRef::Real(v) => v.to_string(),
                    rusqlite::types::ValueRef::Text(v) | rusqlite::types::ValueRef::Blob(v) => {
                        String::from_utf8_lossy(v).into_owned()
                    }
                })
                .collect();
            rows.push(format!("{t}: {}", cells.join(" | ")));
        }
    }
    rows
}

fn count(db: &rusqlite::Connection, sql: &str, p: impl rusqlite::Params) -> i64 {
    db.query_row(sql, p, |r| r.get(0)).unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[test]
fn a_leaving_teacher_is_deleted_for_good_with_a_receipt() {
    let server = Server::start(&web_dir());
    // Distinctive names, so that a scan for them cannot match anything else.
    for (user, role) in [
        ("zelda.leaver", "teacher"),
        ("bob", "teacher"),
        ("carol", "coach"),
    ] {
        server.add_user(user, &format!("{user}-password"), role);
    }
    assert_eq!(server.set_device_code("zelda.leaver", "4821"), 200);
    let room = server.add_device("room-1");
    let (z1, _) = server.upload_recording(&room, "zelda.leaver", 2);
    let (z2, _) = server.upload_recording(&room, "zelda.leaver", 2);
    let (b1, _) = server.upload_recording(&room, "bob", 1);
    let agent = server.agent();
    let [zelda, bob, carol] =
        ["zelda.leaver", "bob", "carol"].map(|u| server.login(&agent, u, &format!("{u}-password")));
    let share = |cookie: &str, rec| {
        agent
            .post(&format!("{}/api/recordings/{rec}/shares", server.url()))
            .set("cookie", cookie)
            .send_json(serde_json::json!({"username": "carol"}))
            .unwrap();
    };
    share(&zelda, z1);
    share(&bob, b1);
    for (cookie, rec) in [(&zelda, z1), (&carol, z1), (&carol, b1), (&zelda, z2)] {
        assert_eq!(
            status(
                &server,
                "POST",
                &format!("/api/recordings/{rec}/comments"),
                cookie
            ),
            200
        );
    }
    let carol_plays = || {
        status(
            &server,
            "GET",
            &format!("/api/recordings/{z1}/playlist.m3u8"),
            &carol,
        )
    };
    assert_eq!(carol_plays(), 200);

    let db = server.db();
    let zid: i64 = count(
        &db,
        "SELECT id FROM users WHERE username = 'zelda.leaver'",
        [],
    );
    let shas: Vec<String> = column(&db, "SELECT s.sha256 FROM segments s JOIN recordings r ON r.id = s.recording_id WHERE r.owner_id = ?1", [zid]);
    assert_eq!(shas.len(), 6);
    let data = server.data_dir();
    let master_path = data.parent().unwrap().join("secrets/master.key");
    let (wrapped, public): (Vec<u8>, Vec<u8>) = rusqlite::Connection::open(data.join("vault.db"))
        .unwrap()
        .query_row(
            "SELECT wrapped_secret, public_key FROM teacher_keys WHERE user_id = ?1",
            [zid],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    // A copy of the data folder taken before the deletion (as a backup would be).
    let before = tempfile::tempdir().unwrap();
    copy_dir(&data, before.path());

    // Marked as leaving: disabled at once, nobody can play the recordings, no device gets the key.
    let out = server.cli_ok(&["user", "offboard", "zelda.leaver"]);
    assert!(out.contains("will be deleted"), "{out}");
    assert_eq!(
        status(&server, "GET", "/api/me", &zelda),
        401,
        "session ended"
    );
    assert_eq!(carol_plays(), 404);
    let key = server
        .device_agent(&room)
        .get(&format!(
            "{}/api/device/v1/teachers/zelda.leaver/key",
            server.device_url()
        ))
        .call();
    assert!(matches!(key, Err(ureq::Error::Status(404, _))), "{key:?}");
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM teacher_codes WHERE user_id = ?1",
            [zid]
        ),
        0
    );
    // Within the grace period nothing is deleted, and the deletion can be cancelled.
    server.cli_ok(&["retention", "run", "--now", &(now() + 6 * DAY).to_string()]);
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM recordings WHERE owner_id = ?1",
            [zid]
        ),
        2
    );
    server.cli_ok(&["user", "cancel-offboard", "zelda.leaver"]);
    let enable = server.cli(&["user", "enable", "zelda.leaver"], "");
    assert!(enable.status.success());
    assert_eq!(carol_plays(), 200, "re-enabled: the share works again");
    server.cli_ok(&["user", "offboard", "zelda.leaver", "--grace-days", "7"]);
    let refused = server.cli(&["user", "enable", "zelda.leaver"], "");
    assert!(
        !refused.status.success(),
        "enabling a leaving teacher is refused"
    );

    // After the grace period: everything goes.
    let swept = server.cli_ok(&["retention", "run", "--now", &(now() + 8 * DAY).to_string()]);
    let swept: serde_json::Value = serde_json::from_str(&swept).unwrap();
    let receipt_id = swept["teachers_deleted"][0].as_str().unwrap().to_string();

    // No row in either database mentions the teacher's name or id.
    let rows = dump(&db);
    for row in &rows {
        assert!(!row.contains("zelda"), "still mentions the teacher: {row}");
    }
    for (table, column) in [
        ("users", "id"),
        ("recordings", "owner_id"),
        ("comments", "author_id"),
        ("shares", "coach_id"),
        ("sessions", "user_id"),
        ("teacher_codes", "user_id"),
        ("leaving", "user_id"),
    ] {
        let n = count(
            &db,
            &format!("SELECT COUNT(*) FROM {table} WHERE {column} = ?1"),
            [zid],
        );
        assert_eq!(n, 0, "{table}.{column} still refers to the teacher");
    }
    let vault_db = rusqlite::Connection::open(data.join("vault.db")).unwrap();
    assert_eq!(
        count(
            &vault_db,
            "SELECT COUNT(*) FROM teacher_keys WHERE user_id = ?1",
            [zid]
        ),
        0
    );
    // Positive controls: bob's recording and carol's comment on it are untouched.
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM recordings WHERE id = ?1",
            [b1.to_string()]
        ),
        1
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM comments WHERE recording_id = ?1",
            [b1.to_string()]
        ),
        1
    );
    assert!(
        rows.iter().any(|r| r.contains("carol")),
        "the dump sees names"
    );

    // No blob of theirs remains; the vault file and its WAL hold none of the key's bytes.
    let blob = |root: &Path, sha: &str| root.join("blobs").join(&sha[..2]).join(sha);
    for sha in &shas {
        assert!(!blob(&data, sha).exists(), "blob {sha} survived");
        assert!(blob(before.path(), sha).exists(), "the copy holds {sha}");
    }
    for file in ["vault.db", "vault.db-wal"] {
        let raw = std::fs::read(data.join(file)).unwrap_or_default();
        assert!(
            !raw.windows(wrapped.len()).any(|w| w == wrapped.as_slice()),
            "{file} holds the wrapped key"
        );
        assert!(
            !raw.windows(public.len()).any(|w| w == public.as_slice()),
            "{file} holds the public key"
        );
    }

    // The copy taken before cannot be decrypted with the keys left; it could with the old vault.
    let current = Vault::open(
        &data.join("vault.db"),
        MasterKey::load_or_create(&master_path).unwrap(),
    )
    .unwrap();
    let old = Vault::open(
        &before.path().join("vault.db"),
        MasterKey::load_or_create(&master_path).unwrap(),
    )
    .unwrap();
    let left: Vec<UserId> = column(&vault_db, "SELECT user_id FROM teacher_keys", []);
    assert!(!left.is_empty());
    let old_key = old.secret_key(UserId(zid)).unwrap().unwrap();
    for sha in &shas {
        let sealed = std::fs::read(blob(before.path(), sha)).unwrap();
        assert!(
            lessonlens_proto::open(None, &old_key, &sealed).is_ok(),
            "positive control"
        );
        for uid in &left {
            let sk = current.secret_key(*uid).unwrap().unwrap();
            assert!(
                lessonlens_proto::open(None, &sk, &sealed).is_err(),
                "key {uid} opens {sha}"
            );
        }
    }

    // The receipt: no personal data, the right counts, verifies; a tampered copy does not.
    let text = server.cli_ok(&["receipt", "show", &receipt_id]);
    assert!(!text.contains("zelda"), "{text}");
    let receipt: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(receipt["receipt"]["recordings"], 2);
    assert_eq!(receipt["receipt"]["segments"], 6);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("receipt.json");
    std::fs::write(&file, &text).unwrap();
    let ok = server.cli_ok(&["receipt", "verify", file.to_str().unwrap()]);
    assert!(ok.starts_with("genuine"), "{ok}");
    let public_key = server.cli_ok(&["receipt", "public-key"]);
    let ok = server.cli_ok(&[
        "receipt",
        "verify",
        file.to_str().unwrap(),
        "--public-key",
        public_key.trim(),
    ]);
    assert!(ok.starts_with("genuine"), "{ok}");
    std::fs::write(&file, text.replace("\"segments\": 6", "\"segments\": 5")).unwrap();
    let bad = server.cli(&["receipt", "verify", file.to_str().unwrap()], "");
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("NOT VALID"));

    // Every step is in the audit log, and the log still verifies.
    let actions: Vec<String> = column(&db, "SELECT action FROM audit ORDER BY id", []);
    for a in [
        "offboard",
        "offboard-cancel",
        "offboard-delete",
        "offboard-complete",
    ] {
        assert!(actions.iter().any(|x| x == a), "no {a} in {actions:?}");
    }
    assert_eq!(
        actions.iter().filter(|a| *a == "offboard-delete").count(),
        2
    );
    server.cli_ok(&["audit-verify"]);
    let _ = z2;
}

#[test]
fn retention_deletes_what_is_due_and_keeps_what_is_held() {
    let server = Server::start(&web_dir());
    server.add_user("alice", "alice-password", "teacher");
    server.add_user("carol", "carol-password", "coach");
    let room = server.add_device("room-1");
    let [shared, unshared, held] = [0; 3].map(|_| server.upload_recording(&room, "alice", 1).0);
    let agent = server.agent();
    let alice = server.login(&agent, "alice", "alice-password");
    agent
        .post(&format!("{}/api/recordings/{shared}/shares", server.url()))
        .set("cookie", &alice)
        .send_json(serde_json::json!({"username": "carol"}))
        .unwrap();
    let bad = server.cli(
        &[
            "retention",
            "set",
            "--keep-days",
            "30",
            "--unshared-days",
            "60",
        ],
        "",
    );
    assert!(
        !bad.status.success(),
        "unshared_days beyond keep_days is refused"
    );
    server.cli_ok(&[
        "retention",
        "set",
        "--keep-days",
        "30",
        "--unshared-days",
        "7",
    ]);
    server.cli_ok(&[
        "recording",
        "hold",
        &held.to_string(),
        "--reason",
        "safeguarding review",
    ]);

    // The teacher sees when each recording goes.
    let mine: serde_json::Value = agent
        .get(&format!("{}/api/recordings", server.url()))
        .set("cookie", &alice)
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    let find = |id: &lessonlens_proto::RecordingId| {
        mine.as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id.to_string())
            .unwrap()
            .clone()
    };
    let s = find(&shared);
    let created = s["created_at"].as_i64().unwrap();
    assert_eq!(s["delete_after"].as_i64(), Some(created + 30 * DAY));
    assert_eq!(
        find(&unshared)["delete_after"].as_i64().unwrap()
            - find(&unshared)["created_at"].as_i64().unwrap(),
        7 * DAY
    );
    assert!(find(&held)["delete_after"].is_null() && find(&held)["held"] == true);
    // A hold also stops the teacher deleting it themselves.
    assert_eq!(
        status(
            &server,
            "DELETE",
            &format!("/api/recordings/{held}"),
            &alice
        ),
        409
    );

    let db = server.db();
    let exists = |id: &lessonlens_proto::RecordingId| {
        count(
            &db,
            "SELECT COUNT(*) FROM recordings WHERE id = ?1",
            [id.to_string()],
        ) == 1
    };
    let run = |days: i64| {
        server.cli_ok(&[
            "retention",
            "run",
            "--now",
            &(now() + days * DAY).to_string(),
        ])
    };
    run(6);
    assert!(
        exists(&shared) && exists(&unshared) && exists(&held),
        "nothing is due yet"
    );
    run(8);
    assert!(
        exists(&shared) && !exists(&unshared) && exists(&held),
        "the never-shared one goes after 7 days"
    );
    run(31);
    assert!(
        !exists(&shared) && exists(&held),
        "after 30 days all but the held one"
    );
    server.cli_ok(&["recording", "release", &held.to_string()]);
    run(31);
    assert!(!exists(&held), "released, it goes too");

    let audit: Vec<(String, String)> = db
        .prepare("SELECT action, target FROM audit WHERE action LIKE 'retention-delete%' OR action LIKE '%hold'")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let has = |action: &str, id: &lessonlens_proto::RecordingId| {
        audit
            .iter()
            .any(|(a, t)| a == action && *t == id.to_string())
    };
    assert!(has("retention-delete-unshared", &unshared), "{audit:?}");
    assert!(has("retention-delete", &shared), "{audit:?}");
    assert!(has("retention-delete-unshared", &held), "{audit:?}");
    assert!(
        has("hold", &held) && has("release-hold", &held),
        "{audit:?}"
    );
    assert!(
        !audit.iter().any(|(_, t)| t.contains("safeguarding")),
        "the hold's reason stays out of the log"
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM segments", []), 0);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM blob_deletions", []), 0);
}
