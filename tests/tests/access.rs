//! Who may reach the server at all, and how fast anyone may guess passwords (issue 4, items 1-2).

use lessonlens_e2e::{web_dir, Server};
use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Signs in as alice from another loopback address (127.0.0.2), as a teacher at her own machine
/// would; gives the HTTP status.
fn login_elsewhere(server: &Server) -> String {
    login_from(server, "127.0.0.2", "alice-password", None)
}

/// Signs in as alice with `password` from loopback address `from`, sending `cookie` if given;
/// gives the HTTP status, or curl's error.
fn login_from(server: &Server, from: &str, password: &str, cookie: Option<&str>) -> String {
    let mut curl = std::process::Command::new("curl");
    curl.args([
        "--silent",
        "--show-error",
        "--max-time",
        "20",
        "--interface",
        from,
    ])
    .arg("--cacert")
    .arg(server.ca_file())
    .args(["--output", "/dev/null", "--write-out", "%{http_code}"])
    .args(["--header", "content-type: application/json"]);
    if let Some(cookie) = cookie {
        curl.args(["--header", &format!("cookie: {cookie}")]);
    }
    let out = curl
        .arg("--data")
        .arg(format!(r#"{{"username":"alice","password":"{password}"}}"#))
        .arg(format!("{}/api/login", server.url()))
        .output()
        .expect("curl is installed by scripts/setup.sh");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Issue 14.6: slow clients. A connection that finished its TLS handshake and then sends no
/// request is closed within the header timeout; one address cannot hold more than its share of
/// connections; and a thousand idle connections do not stop people signing in.
#[test]
fn slow_and_greedy_clients_do_not_keep_people_out() {
    // This test holds over a thousand sockets.
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    let _ = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: limit.maximum.map(|m| m.min(8192)),
            maximum: limit.maximum,
        },
    );
    let server = Server::start(&web_dir());
    server.add_user("alice", "alice-password", "teacher");
    let addr = format!("127.0.0.1:{}", server.port());

    // A client that completes the handshake and then says nothing is let go.
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(server.tls_config(), name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, TcpStream::connect(&addr).unwrap());
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).unwrap();
    }
    tls.sock
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let closed = match tls.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => true, // an error page before closing
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    };
    assert!(
        closed && started.elapsed() < Duration::from_secs(20),
        "an idle connection stayed open for {:?}",
        started.elapsed()
    );

    // A thousand connections that never start TLS, all from one address.
    let idle: Vec<TcpStream> = (0..1000)
        .filter_map(|_| TcpStream::connect(&addr).ok())
        .collect();
    assert!(idle.len() > 900, "only {} connections opened", idle.len());
    std::thread::sleep(Duration::from_millis(500));
    // Most of them were closed at once: reading one gives end-of-file, not a wait.
    let last = idle.last().unwrap();
    last.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut b = [0u8; 1];
    let shut = match (&*last).read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    };
    assert!(
        shut,
        "the server kept the 1000th connection from one address open"
    );
    // Meanwhile alice signs in from her own machine at once.
    let started = Instant::now();
    assert_eq!(login_elsewhere(&server), "200");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    drop(idle);
}

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

/// Issue 14.8: axum's own rejections answer with the documented JSON error body, on the device
/// listener too (the web listener's cases are checked in-process, in routes.rs).
#[test]
fn a_device_request_that_is_not_json_gets_the_json_error_body() {
    let server = Server::start(&web_dir());
    let room = server.add_device("room-12");
    let res = server
        .device_agent(&room)
        .post(&format!("{}/api/device/v1/identify", server.device_url()))
        .set("content-type", "application/json")
        .send_string("[1,2");
    match res {
        Err(ureq::Error::Status(code, r)) => {
            assert_eq!(code, 400);
            let ct = r.header("content-type").unwrap_or_default().to_string();
            assert!(ct.starts_with("application/json"), "{code} {ct}");
            let body: serde_json::Value = r.into_json().unwrap();
            assert!(
                body["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{body}"
            );
        }
        other => panic!("expected an error, got {other:?}"),
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
    // Issue 14.6: and alice herself, at her own machine (another address), is not locked out by
    // someone guessing elsewhere on the network.
    assert_eq!(login_elsewhere(&server), "200");
}

/// Issue 14.6: guesses spread over many addresses (five per address stays under the per-address
/// limit) used to go on for ever. Now 20 failures from anywhere make the account take sign-ins
/// only from browsers that signed in to it before, so the owner is not locked out.
#[test]
fn guesses_from_many_addresses_slow_the_account_but_not_its_owners_browser() {
    let server = Server::start(&web_dir());
    server.add_user("alice", "alice-password", "teacher");
    server.add_user("bob", "bob-password", "teacher");
    // Alice signs in from her own browser: it keeps a known-browser cookie. So does Bob.
    let known_cookie = |who: &str| {
        let answer = server
            .agent()
            .post(&format!("{}/api/login", server.url()))
            .send_json(serde_json::json!({"username": who, "password": format!("{who}-password")}))
            .unwrap();
        let set = answer
            .all("set-cookie")
            .into_iter()
            .find(|c| c.starts_with("__Host-lessonlens-known="))
            .expect("a known-browser cookie")
            .to_string();
        assert!(set.contains("HttpOnly; Secure; SameSite=Strict"), "{set}");
        set.split(';').next().unwrap().to_string()
    };
    let known = known_cookie("alice");
    assert!(!known.contains("alice"), "the cookie names nobody: {known}");
    let bobs = known_cookie("bob");
    // Someone tries passwords from five addresses, four each.
    for n in 2..=6 {
        for _ in 0..4 {
            assert_eq!(
                login_from(&server, &format!("127.0.0.{n}"), "guess-guess", None),
                "400"
            );
        }
    }
    // A browser that never signed in to alice's account waits, even with the right password...
    assert_eq!(
        login_from(&server, "127.0.0.7", "alice-password", None),
        "429"
    );
    // ...so does one with a made-up cookie, or another account's...
    let forged = format!(
        "__Host-lessonlens-known={}.{}",
        "00".repeat(16),
        "11".repeat(32)
    );
    for cookie in [&forged, &bobs] {
        assert_eq!(
            login_from(&server, "127.0.0.7", "alice-password", Some(cookie)),
            "429"
        );
    }
    // ...but alice's own browser signs in, from anywhere.
    assert_eq!(
        login_from(&server, "127.0.0.8", "alice-password", Some(&known)),
        "200"
    );
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

/// Issue 14.2: a person changes their own password (for instance one chosen with a link an admin
/// may have seen); it needs the current one, and their other sessions end.
#[test]
fn a_person_changes_their_password_and_their_other_sessions_end() {
    let server = Server::start(&web_dir());
    server.add_user("alice", "alice-password", "teacher");
    let agent = server.agent();
    let here = server.login(&agent, "alice", "alice-password");
    let elsewhere = server.login(&agent, "alice", "alice-password");
    let change = |current: &str| match agent
        .post(&format!("{}/api/me/password", server.url()))
        .set("cookie", &here)
        .send_json(serde_json::json!({ "current": current, "new": "a-brand-new-password" }))
    {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(change("not-my-password"), 400);
    assert_eq!(change("alice-password"), 200);
    let me = |cookie: &str| match agent
        .get(&format!("{}/api/me", server.url()))
        .set("cookie", cookie)
        .call()
    {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(me(&here), 200);
    assert_eq!(me(&elsewhere), 401);
    assert_eq!(login(&server, &agent, "alice", "alice-password").0, 400);
    assert_eq!(
        login(&server, &agent, "alice", "a-brand-new-password").0,
        200
    );
}

/// Issue 14.2: a teacher cannot try device codes to find a colleague's: a code that cannot be
/// used counts as a failed password, and a right password does not wipe the run.
#[test]
fn trying_device_codes_that_are_taken_is_limited() {
    let server = Server::start(&web_dir());
    server.add_user("alice", "alice-password", "teacher");
    server.add_user("bob", "bob-password", "teacher");
    assert_eq!(server.set_device_code("bob", "1111"), 200);
    let answers: Vec<u16> = (0..6)
        .map(|_| server.set_device_code("alice", "1111"))
        .collect();
    assert_eq!(answers[..5], [409; 5], "{answers:?}");
    assert_eq!(answers[5], 429, "{answers:?}");
}

/// Issue 14.2: a person is shown every change others made to their account, and acknowledging
/// the notice covers only what it showed: a change made meanwhile is shown next time.
#[test]
fn changes_to_an_account_are_shown_until_the_person_has_seen_them() {
    let server = Server::start(&web_dir());
    server.add_user("alice", "alice-password", "teacher");
    let agent = server.agent();
    let cookie = server.login(&agent, "alice", "alice-password");
    let me = || -> serde_json::Value {
        agent
            .get(&format!("{}/api/me", server.url()))
            .set("cookie", &cookie)
            .call()
            .unwrap()
            .into_json()
            .unwrap()
    };
    let first = me();
    assert_eq!(first["unseen_admin_actions"], 1, "{first}");
    assert_eq!(first["admin_actions"][0]["by"], "the server's console");
    assert_eq!(first["admin_actions"][0]["what"], "created your account");
    let shown = first["admin_actions"][0]["id"].as_i64().unwrap();
    // Meanwhile someone turns off her two-step sign-in.
    assert!(server
        .cli(&["user", "reset-second-factor", "alice"], "")
        .status
        .success());
    let cookie = server.login(&agent, "alice", "alice-password");
    agent
        .post(&format!("{}/api/me/admin-actions/seen", server.url()))
        .set("cookie", &cookie)
        .send_json(serde_json::json!({ "up_to": shown }))
        .unwrap();
    let after: serde_json::Value = agent
        .get(&format!("{}/api/me", server.url()))
        .set("cookie", &cookie)
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(after["unseen_admin_actions"], 1, "{after}");
    assert_eq!(
        after["admin_actions"][0]["what"],
        "turned off your two-step sign-in"
    );
}
