//! Two-step sign-in (issue 4): a person sets up an authenticator app, then signs in with a code
//! that works once; the school's policy requires it for admins (who may then only set it up) and
//! off site (where a password alone is refused); an admin resets it for a lost phone. The codes
//! are computed here from the secret the server handed out, as the phone's app would.

use lessonlens_e2e::{web_dir, Server};

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The code an authenticator app shows at `at` for the base32 `secret`.
fn code(secret: &str, at: u64) -> String {
    totp_rs::Builder::new()
        .with_secret(totp_rs::Secret::try_from_base32(secret).unwrap())
        .build()
        .unwrap()
        .generate(at)
        .to_string()
}

/// POSTs `body` to `path` (with `cookie`); the status, the JSON answer and any new cookie.
fn post(
    server: &Server,
    path: &str,
    cookie: Option<&str>,
    body: serde_json::Value,
) -> (u16, serde_json::Value, Option<String>) {
    let mut req = server.agent().post(&format!("{}{path}", server.url()));
    if let Some(c) = cookie {
        req = req.set("cookie", c);
    }
    let res = match req.send_json(body) {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{path}: {e}"),
    };
    let status = res.status();
    let cookie = res
        .header("set-cookie")
        .map(|c| c.split(';').next().unwrap().to_string());
    (status, res.into_json().unwrap_or_default(), cookie)
}

fn status_of(server: &Server, path: &str, cookie: &str) -> u16 {
    match server
        .agent()
        .get(&format!("{}{path}", server.url()))
        .set("cookie", cookie)
        .call()
    {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("{e}"),
    }
}

fn sign_in(
    server: &Server,
    user: &str,
    code: Option<&str>,
) -> (u16, serde_json::Value, Option<String>) {
    let mut body = serde_json::json!({"username": user, "password": format!("{user}-password")});
    if let Some(c) = code {
        body["code"] = c.into();
    }
    post(server, "/api/login", None, body)
}

fn sign_in_with(
    server: &Server,
    user: &str,
    password: &str,
) -> (u16, serde_json::Value, Option<String>) {
    post(
        server,
        "/api/login",
        None,
        serde_json::json!({"username": user, "password": password}),
    )
}

/// Sets up two-step sign-in for `user`'s session `cookie`; returns the secret.
fn set_up(server: &Server, user: &str, cookie: &str) -> String {
    let password = format!("{user}-password");
    let (status, begun, _) = post(
        server,
        "/api/me/second-factor",
        Some(cookie),
        serde_json::json!({}),
    );
    assert_eq!(status, 200, "{begun}");
    let secret = begun["secret"].as_str().unwrap().to_string();
    assert!(begun["otpauth_url"]
        .as_str()
        .unwrap()
        .starts_with("otpauth://totp/lessonlens:"));
    let (status, body, _) = post(
        server,
        "/api/me/second-factor/confirm",
        Some(cookie),
        serde_json::json!({"code": "000000", "password": password}),
    );
    assert_eq!(status, 400, "a wrong code does not turn it on: {body}");
    // Issue 14.6: turning it on ends the person's other sessions, so a stolen session must not
    // be able to do it without the password.
    let (status, body, _) = post(
        server,
        "/api/me/second-factor/confirm",
        Some(cookie),
        serde_json::json!({"code": code(&secret, now()), "password": "not-the-password"}),
    );
    assert_eq!(
        status, 400,
        "the right code without the password does not turn it on: {body}"
    );
    let (status, body, _) = post(
        server,
        "/api/me/second-factor/confirm",
        Some(cookie),
        serde_json::json!({"code": code(&secret, now()), "password": password}),
    );
    assert_eq!(status, 200, "{body}");
    secret
}

#[test]
fn codes_from_the_app_are_needed_once_set_up_and_work_once() {
    let server = Server::start(&web_dir());
    server.add_user("alice", "alice-password", "teacher");
    let (status, _, cookie) = sign_in(&server, "alice", None);
    assert_eq!(status, 200);
    let cookie = cookie.unwrap();
    let secret = set_up(&server, "alice", &cookie);

    // From now on the password alone is not enough: the server asks for the code, sets no cookie.
    let (status, body, cookie) = sign_in(&server, "alice", None);
    assert_eq!((status, cookie), (200, None));
    assert_eq!(body["second_factor"], "code_required");
    let (status, body, _) = sign_in(&server, "alice", Some("123456"));
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("wrong code"),
        "{body}"
    );
    // The code of the next 30 s step (one step of clock drift is allowed) signs in, once. (The
    // current step's code was used up by the setup.)
    let next = code(&secret, now() + 30);
    let (status, body, cookie) = sign_in(&server, "alice", Some(&next));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["second_factor"], true);
    assert_eq!(status_of(&server, "/api/recordings", &cookie.unwrap()), 200);
    let (status, body, _) = sign_in(&server, "alice", Some(&next));
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("used already"),
        "{body}"
    );

    // Lost phone: an admin resets it, and the password alone works again.
    server.add_user("ada", "ada-password", "admin");
    let (_, _, ada) = sign_in(&server, "ada", None);
    let (status, _, _) = post(
        &server,
        "/api/admin/users/alice/reset-second-factor",
        ada.as_deref(),
        serde_json::json!({}),
    );
    assert_eq!(status, 200);
    let (status, body, cookie) = sign_in(&server, "alice", None);
    assert_eq!(status, 200);
    assert!(cookie.is_some() && body["second_factor"] == false, "{body}");
    let audit: Vec<String> = lessonlens_e2e::column(
        &server.db(),
        "SELECT action FROM audit WHERE action LIKE '%second-factor%' OR action = 'login-code-failed'",
        [],
    );
    assert_eq!(
        audit,
        [
            "second-factor-on",
            "login-code-failed",
            "login-code-failed",
            "second-factor-reset"
        ]
    );
}

#[test]
fn the_policy_requires_it_for_admins_and_off_site() {
    // Loopback is "off site" here, so both rules apply to this test's requests.
    let mut server = Server::start_with(
        &web_dir(),
        "[second_factor]\nadmins = true\noff_site = true\non_site_networks = [\"10.0.0.0/8\"]\n",
    );
    server.add_user("bob", "bob-password", "teacher");
    // Off site without a second factor: refused, with what to do.
    let (status, body, cookie) = sign_in(&server, "bob", None);
    assert_eq!((status, cookie), (403, None));
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("from a computer at school"),
        "{body}"
    );
    // A wrong password still says only that.
    let mut wrong = serde_json::json!({"username": "bob", "password": "not-bobs"});
    let (status, _, _) = post(&server, "/api/login", None, wrong.take());
    assert_eq!(status, 400);

    // Now this test's address counts as on site.
    let config = server.config_path();
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("10.0.0.0/8", "127.0.0.0/8");
    std::fs::write(&config, text).unwrap();
    server.restart();

    // Admins must set it up: until then their session can do nothing else.
    server.add_user("ada", "ada-password", "admin");
    let (status, body, cookie) = sign_in(&server, "ada", None);
    assert_eq!(status, 200);
    assert_eq!(body["setup_only"], true);
    let cookie = cookie.unwrap();
    assert_eq!(status_of(&server, "/api/admin/users", &cookie), 403);
    assert_eq!(status_of(&server, "/api/me", &cookie), 200);
    set_up(&server, "ada", &cookie);
    assert_eq!(status_of(&server, "/api/admin/users", &cookie), 200);
    // A teacher on site needs nothing.
    let (status, _, cookie) = sign_in(&server, "bob", None);
    assert_eq!(status, 200);
    assert!(cookie.is_some());
}

#[test]
fn a_teacher_turns_it_on_and_signs_in_with_a_code_in_the_browser() {
    let server = Server::start(&web_dir());
    server.add_user("alice", "alice-password", "teacher");
    let (stdout, shots) = server.browser_script(
        "second_factor.mjs",
        "second-factor",
        &[
            ("LL_USER", "alice:alice-password"),
            // The console made alice's account: she is told at her first sign-in (issue 14.2).
            ("LL_ADMIN_ACTION", "created your account"),
        ],
    );
    let result: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(result["a11y"].is_u64(), "{result}");
    assert!(shots.join("account.png").exists());
    assert!(
        result["admin_actions_unseen"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().contains("the server's console")),
        "{result}"
    );
    // The device code and the recovery took effect: the new password signs in, the old does not.
    let codes: Vec<i64> =
        lessonlens_e2e::column(&server.db(), "SELECT COUNT(*) FROM teacher_codes", []);
    assert_eq!(codes, [1]);
    assert_eq!(sign_in_with(&server, "alice", "alice-password").0, 400);
    // What the page did is what the server recorded.
    let actions: Vec<String> = lessonlens_e2e::column(
        &server.db(),
        "SELECT action FROM audit WHERE action IN ('login', 'second-factor-on', 'login-code-failed', 'set-code', 'recovery-code', 'password-recovered') ORDER BY id",
        [],
    );
    assert_eq!(
        actions,
        [
            "login",
            "set-code",
            "recovery-code",
            "password-recovered",
            "login",
            "second-factor-on",
            "login-code-failed",
            "login"
        ]
    );
}
