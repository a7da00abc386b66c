//! Roster import (issue 6): the MIS staff CSV adds new staff, updates changed names and lists
//! missing staff as "leaving?" without touching them; a file with bad lines changes nothing.

use lessonlens_e2e::Server;
use std::path::Path;

fn users(server: &Server) -> Vec<(String, String, Option<String>, bool)> {
    server
        .db()
        // The people (not the account that holds lessons recorded offline until they are claimed).
        .prepare("SELECT username, display_name, staff_id, disabled FROM users WHERE username != '(unassigned)' ORDER BY username")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn a_roster_adds_renames_and_lists_leavers_and_a_bad_one_changes_nothing() {
    let server = Server::start(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../web"));
    server.add_user("ann.smith", "ann-password", "teacher");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("staff.csv");
    let import = |csv: &str, args: &[&str]| {
        std::fs::write(&file, csv).unwrap();
        let mut all = vec!["roster-import", file.to_str().unwrap()];
        all.extend_from_slice(args);
        let out = server.cli(&all, "");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    // Bad lines: reported by number, and nothing is applied.
    let before = users(&server);
    let bad = "Staff ID,Name,Email,Role\nT1,Ann Smith,ann.smith@school.example,teacher\nT2,Bob Jones,bob.jones,teacher\nT3,Cy,cy@school.example,head\n";
    let (ok, _, err) = import(bad, &["--apply"]);
    assert!(!ok);
    assert!(err.contains("line 3:") && err.contains("line 4:"), "{err}");
    assert!(err.contains("nothing was changed"), "{err}");
    assert_eq!(users(&server), before);

    // A good file: a dry run changes nothing; --apply adds, links the hand-made account.
    let good = "Name,Email,Staff ID,Role\nAnn Smith,ann.smith@school.example,T1,teacher\nBob Jones,Bob.Jones@school.example,T2,teacher\nDi Coach,di@school.example,C1,coach\n";
    let (ok, out, _) = import(good, &[]);
    assert!(ok && out.contains("dry run"), "{out}");
    assert_eq!(users(&server), before);
    let (ok, out, err) = import(good, &["--apply"]);
    assert!(ok, "{err}");
    assert!(out.contains("2 added") && out.contains("1 linked"), "{out}");
    let now = users(&server);
    assert_eq!(
        now.iter()
            .map(|u| (u.0.as_str(), u.2.as_deref()))
            .collect::<Vec<_>>(),
        [
            ("ann.smith", Some("T1")),
            ("bob.jones", Some("T2")),
            ("di", Some("C1"))
        ]
    );
    // New staff sign in once an admin sets a first password; a new teacher has a key for devices.
    let agent = server.agent();
    let refused = agent
        .post(&format!("{}/api/login", server.url()))
        .send_json(serde_json::json!({"username": "bob.jones", "password": "bob-first-password"}));
    assert!(refused.is_err());
    assert!(server
        .cli(
            &["user", "set-password", "bob.jones"],
            "bob-first-password\n"
        )
        .status
        .success());
    server.login(&agent, "bob.jones", "bob-first-password");
    let room = server.add_device("room-1");
    server.teacher_key(&server.device_agent(&room), "bob.jones");

    // The next roster renames Ann and no longer lists Bob: he is listed, not touched.
    let next = "Name,Email,Staff ID,Role\nAnn Smith-Jones,ann.smith@school.example,T1,teacher\nDi Coach,di@school.example,C1,coach\n";
    let (ok, out, err) = import(next, &["--apply"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("\"bob.jones\"") && out.contains("1 listed as leaving?"),
        "{out}"
    );
    let now = users(&server);
    assert_eq!(now[0].1, "Ann Smith-Jones");
    assert_eq!(
        now[1],
        (
            "bob.jones".into(),
            "Bob Jones".into(),
            Some("T2".into()),
            false
        )
    );
    let adds: i64 = server
        .db()
        .query_row(
            "SELECT COUNT(*) FROM audit WHERE action = 'roster-add'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(adds, 2);
    // Issue 14.2: a rename by the roster is audited and shown to the person, like any change an
    // admin makes to their account.
    let renamed: i64 = server
        .db()
        .query_row(
            "SELECT COUNT(*) FROM audit a JOIN users u ON u.audit_id = a.target
             WHERE a.action = 'roster-rename' AND u.username = 'ann.smith'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(renamed, 1);
    let (ok, _, err) = import(
        "Name,Email,Staff ID,Role\nBob Jones-Smith,bob.jones@school.example,T2,teacher\n",
        &["--apply"],
    );
    assert!(ok, "{err}");
    let bob = server.login(&agent, "bob.jones", "bob-first-password");
    let me = server.get_json("/api/me", &bob);
    assert_eq!(me["display_name"], "Bob Jones-Smith");
    let told: Vec<&str> = me["admin_actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["what"].as_str().unwrap())
        .collect();
    assert_eq!(
        told.first(),
        Some(&"changed your name to the one in the school's roster"),
        "{me}"
    );
}

#[test]
fn an_invitation_lets_a_person_choose_their_password_once() {
    let server = Server::start(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../web"));
    let file = server.dir.path().join("staff.csv");
    std::fs::write(
        &file,
        "Name,Email,Staff ID,Role\nAnn Smith,ann.smith@school.example,T1,teacher\n",
    )
    .unwrap();
    let out = server.cli(&["roster-import", file.to_str().unwrap(), "--apply"], "");
    assert!(out.status.success());
    // On the admin API a file with a bad line and no choice to skip it changes nothing.
    server.add_user("ada", "ada-password", "admin");
    let agent = server.agent();
    let ada = server.login(&agent, "ada", "ada-password");
    let bad = agent
        .post(&format!("{}/api/admin/roster", server.url()))
        .set("cookie", &ada)
        .send_json(serde_json::json!({
            "csv": "Name,Email,Staff ID,Role\nCal New,cal@school.example,T9,teacher\nnot a row\n",
            "apply": true,
        }));
    match bad {
        Err(ureq::Error::Status(422, r)) => {
            assert!(r.into_string().unwrap().contains("nothing was changed"))
        }
        other => panic!("expected 422, got {other:?}"),
    }
    let cal: Vec<i64> = lessonlens_e2e::column(
        &server.db(),
        "SELECT COUNT(*) FROM users WHERE staff_id = 'T9'",
        [],
    );
    assert_eq!(cal, [0], "nothing was added");
    // The admin's CLI prints the link; the token is its last part.
    let out = server.cli(&["user", "invite", "ann.smith"], "");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && text.contains("/#/invite/"),
        "{text}"
    );
    let token = text.trim().rsplit('/').next().unwrap().to_string();
    let accept = |password: &str| match agent
        .post(&format!("{}/api/invite", server.url()))
        .send_json(serde_json::json!({"token": token, "password": password}))
    {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
        Err(e) => panic!("{e}"),
    };
    // A common password is refused without using up the link.
    let (code, body) = accept("Password123");
    assert_eq!(code, 400);
    assert!(body.contains("most common"), "{body}");
    assert_eq!(accept("ann-chose-this-one").0, 200);
    server.login(&agent, "ann.smith", "ann-chose-this-one");
    // Used once: the same link is refused.
    let (code, body) = accept("another-good-password");
    assert_eq!(code, 403);
    assert!(body.contains("wrong, used or expired"), "{body}");
}
