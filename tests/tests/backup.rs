//! Backups (issue 6): a consistent backup taken while the server runs, and a restore that never
//! brings back a teacher deleted after the backup was taken: their key is shredded again, their
//! videos stay unplayable, and the next sweep finishes deleting them. Everyone else's data comes
//! back.

use lessonlens_e2e::{column, web_dir, Server};
use std::time::{Duration, Instant};

fn vault(server: &Server) -> rusqlite::Connection {
    rusqlite::Connection::open(server.data_dir().join("vault.db")).unwrap()
}

#[test]
fn restoring_a_backup_from_before_a_deletion_does_not_bring_the_teacher_back() {
    let mut server = Server::start(&web_dir());
    server.add_user("zoe", "zoe-password", "teacher");
    server.add_user("bob", "bob-password", "teacher");
    let room = server.add_device("room-1");
    let (zoes, _) = server.upload_recording(&room, "zoe", 2);
    let (bobs, _) = server.upload_recording(&room, "bob", 1);
    let zoe_id = column::<i64>(
        &server.db(),
        "SELECT id FROM users WHERE username = 'zoe'",
        [],
    )[0];

    // A backup while the server runs; the same folder is never overwritten.
    let dest = server.dir.path().join("backup-monday");
    let out = server.cli_ok(&["backup", dest.to_str().unwrap()]);
    assert!(
        out.contains("5 blobs"),
        "init and media segments of both: {out}"
    );
    assert!(!server
        .cli(&["backup", dest.to_str().unwrap()], "")
        .status
        .success());

    // Zoe leaves and is deleted.
    server.cli_ok(&["user", "offboard", "zoe", "--grace-days", "0"]);
    server.cli_ok(&["retention", "run"]);
    let db = server.db();
    assert!(column::<String>(&db, "SELECT id FROM recordings", []) == [bobs.to_string()]);
    drop(db);

    // The server is stopped and Monday's backup restored (a folder that is no backup is refused).
    server.kill();
    let wrong = server.cli(&["restore", server.data_dir().to_str().unwrap()], "");
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("is not a lessonlens backup folder"));
    let out = server.cli_ok(&["restore", dest.to_str().unwrap()]);
    assert!(
        out.contains("1 teacher key(s) deleted since were shredded again"),
        "{out}"
    );
    assert!(server.data_dir().read_dir().unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with("pre-restore-")));
    // Her key is not in the restored vault; Bob's is.
    let bob_id = column::<i64>(
        &server.db(),
        "SELECT id FROM users WHERE username = 'bob'",
        [],
    )[0];
    let keys: Vec<i64> = column(&vault(&server), "SELECT user_id FROM teacher_keys", []);
    assert!(
        !keys.contains(&zoe_id) && keys.contains(&bob_id),
        "{keys:?}"
    );

    // Started again, the sweep at start finishes deleting her; Bob's lesson plays as before.
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    while column::<i64>(
        &server.db(),
        "SELECT COUNT(*) FROM users WHERE username = 'zoe'",
        [],
    )[0] > 0
    {
        assert!(
            Instant::now() < deadline,
            "zoe was not deleted after the restore"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(column::<String>(&server.db(), "SELECT id FROM recordings", []) == [bobs.to_string()]);
    assert_eq!(
        column::<i64>(
            &server.db(),
            "SELECT COUNT(*) FROM recordings WHERE id = ?1",
            [zoes.to_string()]
        )[0],
        0
    );
    let agent = server.agent();
    let bob = server.login(&agent, "bob", "bob-password");
    let res = agent
        .get(&format!("{}/api/recordings/{bobs}/init.mp4", server.url()))
        .set("cookie", &bob)
        .call()
        .unwrap();
    assert_eq!(res.status(), 200);
    // The first deletion's receipt was written after the backup, so the restore rolled it back;
    // the sweep after the restore wrote a new one.
    let receipts = server.cli_ok(&["receipt", "list"]);
    assert!(
        !receipts.trim().is_empty(),
        "the second deletion has a receipt"
    );
}
