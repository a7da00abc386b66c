//! Who may reach the server at all, and how fast anyone may guess passwords (issue 4, items 1-2).

use lessonlens_e2e::{web_dir, Server};

fn login(server: &Server, agent: &ureq::Agent, user: &str, password: &str) -> (u16, String) {
    match agent
        .post(&format!("{}/api/login", server.url()))
        .send_json(serde_json::json!({ "username": user, "password": password }))
    {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn addresses_outside_the_allowed_networks_are_refused_before_anything_else() {
    // Only a network this test does not come from; a spoofed X-Forwarded-For does not help.
    let server = Server::start_with(&web_dir(), "allowed_networks = [\"10.0.0.0/8\"]\n");
    let agent = server.agent();
    for path in ["/", "/api/me", "/api/recordings", "/api/admin/users"] {
        let res = agent
            .get(&format!("{}{path}", server.url()))
            .set("x-forwarded-for", "10.1.2.3")
            .call();
        match res {
            Err(ureq::Error::Status(403, r)) => {
                assert!(
                    r.header("content-security-policy").is_some(),
                    "security headers on refusals too"
                );
                assert!(r.into_string().unwrap().contains("school's networks"));
            }
            other => panic!("{path}: expected 403, got {other:?}"),
        }
    }
    assert_eq!(login(&server, &agent, "a", "b").0, 403);
}

#[test]
fn an_unknown_address_gets_a_page_for_people_and_json_for_programs() {
    let server = Server::start(&web_dir());
    let agent = server.agent();
    match agent
        .get(&format!("{}/lessons/old-link", server.url()))
        .call()
    {
        Err(ureq::Error::Status(404, r)) => {
            assert!(r.header("content-type").unwrap().starts_with("text/html"));
            assert!(r.header("content-security-policy").is_some());
            let page = r.into_string().unwrap();
            assert!(
                page.contains("Page not found") && page.contains("href=\"/\""),
                "{page}"
            );
            assert!(!page.contains("<script"), "{page}");
        }
        other => panic!("expected a 404 page, got {other:?}"),
    }
    match agent
        .get(&format!("{}/api/no-such-thing", server.url()))
        .call()
    {
        Err(ureq::Error::Status(404, r)) => {
            let body: serde_json::Value = r.into_json().unwrap();
            assert!(body["error"].is_string(), "{body}");
        }
        other => panic!("expected a JSON 404, got {other:?}"),
    }
}

#[test]
fn repeated_wrong_passwords_lock_the_account_for_a_while() {
    let server = Server::start(&web_dir());
    server.add_user("alice", "alice-password", "teacher");
    server.add_user("bob", "bob-password", "teacher");
    let agent = server.agent();
    assert_eq!(login(&server, &agent, "alice", "alice-password").0, 200);
    for _ in 0..5 {
        let (code, body) = login(&server, &agent, "alice", "guess-guess");
        assert_eq!(code, 400);
        assert!(body.contains("wrong username or password"));
    }
    // Now even the right password waits, and the answer says for how long.
    let (code, body) = login(&server, &agent, "alice", "alice-password");
    assert_eq!(code, 429);
    assert!(body.contains("try again in"), "{body}");
    // Another account from the same address is not locked by alice's failures alone.
    assert_eq!(login(&server, &agent, "bob", "bob-password").0, 200);
}

#[test]
fn the_audit_log_records_sign_ins_and_shows_tampering() {
    let server = Server::start(&web_dir());
    server.add_user("alice", "alice-password", "teacher");
    let agent = server.agent();
    assert_eq!(login(&server, &agent, "alice", "alice-password").0, 200);
    assert_eq!(login(&server, &agent, "alice", "wrong-password").0, 400);
    let out = server.cli(&["audit-verify"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.contains("audit log intact: 3 chained"),
        "user-add, login, login-failed: {text}"
    );
    // Someone with write access to the database rewrites history.
    let db = rusqlite::Connection::open(server.data_dir().join("lessonlens.db")).unwrap();
    db.execute(
        "UPDATE audit SET action = 'nothing' WHERE action = 'login-failed'",
        [],
    )
    .unwrap();
    let out = server.cli(&["audit-verify"], "");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("was altered"));
}
