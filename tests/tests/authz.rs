//! The authorization matrix (issue 4): every route the server has, for every kind of caller, with
//! the status it must answer. The routes come from the server's own route table, so a route added
//! without an entry here fails this test.

use lessonlens_e2e::Server;
use lessonlens_proto::wire::SHA256_HEADER;
use lessonlens_server::http::routes::Listener;
use sha2::{Digest, Sha256};
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Caller {
    Anonymous,
    Owner,
    OtherTeacher,
    /// A coach the recording is shared with.
    SharedCoach,
    /// A coach the recording is not shared with.
    Coach,
    Admin,
    Device,
    OtherDevice,
    RevokedDevice,
}

use Caller::*;
const CALLERS: [Caller; 9] = [
    Anonymous,
    Owner,
    OtherTeacher,
    SharedCoach,
    Coach,
    Admin,
    Device,
    OtherDevice,
    RevokedDevice,
];

fn is_person(c: Caller) -> bool {
    matches!(c, Owner | OtherTeacher | SharedCoach | Coach | Admin)
}

/// For a route about one recording: what the owner, a coach it is shared with, and anyone else
/// signed in get; devices and anonymous callers are not signed in (401).
fn recording_route(c: Caller, owner: u16, shared_coach: u16) -> u16 {
    match c {
        Owner => owner,
        SharedCoach => shared_coach,
        OtherTeacher | Coach | Admin => 404,
        _ => 401,
    }
}

/// For a route on the device listener: what this device (which uploaded the recording) and another
/// device get. 0: the TLS handshake fails (no client certificate).
fn device_route(c: Caller, device: u16, other_device: u16) -> u16 {
    match c {
        Device => device,
        OtherDevice => other_device,
        RevokedDevice => 401,
        _ => 0,
    }
}

/// For a route any signed-in person may use.
fn person_route(c: Caller, person: u16) -> u16 {
    if is_person(c) {
        person
    } else {
        401
    }
}

/// What each caller must get. `None`: the route is missing from the matrix.
fn expected(method: &str, path: &str, c: Caller) -> Option<u16> {
    Some(match (method, path) {
        (
            "GET",
            "/" | "/app.js" | "/style.css" | "/favicon.svg" | "/vendor/hls.min.js"
            | "/api/openapi.json"
            // For monitoring: `/metrics` only from `metrics_networks`, which the test's loopback is.
            | "/healthz"
            | "/metrics",
        ) => 200,
        ("GET", p) if p.starts_with("/js/") && p.ends_with(".js") => 200,
        // Public by nature; a bad password is a 400 for anyone.
        ("POST", "/api/login") => 400,
        ("POST", "/api/logout") => 200,
        ("GET", "/api/me" | "/api/recordings" | "/api/shared" | "/api/tags") => {
            if is_person(c) {
                200
            } else {
                401
            }
        }
        (
            "GET",
            "/api/recordings/{id}/playlist.m3u8"
            | "/api/recordings/{id}/init.mp4"
            | "/api/recordings/{id}/segments/{index}"
            | "/api/recordings/{id}/poster.jpg"
            | "/api/recordings/{id}/talk"
            | "/api/recordings/{id}"
            | "/api/recordings/{id}/comments",
        )
        | ("POST", "/api/recordings/{id}/comments") => recording_route(c, 200, 200),
        // Owner-only actions: a coach with a share is told so; anyone else learns nothing.
        ("GET", "/api/recordings/{id}/views" | "/api/recordings/{id}/download.mp4")
        | ("POST", "/api/recordings/{id}/shares")
        | ("DELETE", "/api/recordings/{id}" | "/api/recordings/{id}/shares/{username}") => {
            recording_route(c, 200, 403)
        }
        // Only a comment's author deletes it (here: the owner's comment).
        ("DELETE", "/api/recordings/{id}/comments/{comment}") => recording_route(c, 200, 404),
        // Admin-only; the user actions act on frank, in the table's order.
        (
            "GET",
            "/api/admin/users"
            | "/api/admin/devices"
            | "/api/admin/retention"
            | "/api/admin/recordings"
            | "/api/admin/receipts"
            | "/api/admin/audit"
            | "/api/admin/audit.csv",
        )
        | (
            "POST",
            "/api/admin/users"
            | "/api/admin/devices"
            | "/api/admin/roster"
            | "/api/admin/timetable"
            | "/api/admin/devices/{name}/revoke"
            | "/api/admin/users/{username}/disable"
            | "/api/admin/users/{username}/enable"
            | "/api/admin/users/{username}/offboard"
            | "/api/admin/users/{username}/cancel-offboard"
            | "/api/admin/users/{username}/reset-second-factor",
        )
        | ("PUT", "/api/admin/retention" | "/api/admin/recordings/{id}/hold")
        | ("DELETE", "/api/admin/recordings/{id}/hold") => match c {
            Admin => 200,
            Owner | OtherTeacher | SharedCoach | Coach => 403,
            _ => 401,
        },
        // Setting up two-step sign-in: anyone signed in starts it; a wrong code is refused.
        ("POST", "/api/me/second-factor") | ("GET", "/api/me/export") => person_route(c, 200),
        ("POST", "/api/me/second-factor/confirm") => person_route(c, 400),
        // Issue 14.2: the person's own recovery code and device code; the wrong password or a
        // code that is not digits is refused. Only teachers have device codes.
        ("POST", "/api/me/recovery-code") => person_route(c, 400),
        ("POST", "/api/me/admin-actions/seen") => person_route(c, 200),
        ("POST", "/api/me/password") => person_route(c, 400),
        ("PUT", "/api/me/device-code") => match c {
            Owner | OtherTeacher => 400,
            SharedCoach | Coach | Admin => 403,
            _ => 401,
        },
        // Anyone may try a recovery code; a wrong one is refused.
        ("POST", "/api/recover") => 400,
        // Lessons recorded offline: teachers list them; a claim needs the teacher's own code,
        // which nobody here has set.
        ("GET", "/api/unassigned") => match c {
            Owner | OtherTeacher => 200,
            SharedCoach | Coach | Admin => 403,
            _ => 401,
        },
        ("POST", "/api/unassigned/{id}/claim") => person_route(c, 403),
        ("GET", "/api/coaches") => match c {
            Owner | OtherTeacher => 200,
            SharedCoach | Coach | Admin => 403,
            _ => 401,
        },
        // Teachers see the groups to share with, admins to manage them.
        ("GET", "/api/groups") => match c {
            Owner | OtherTeacher | Admin => 200,
            SharedCoach | Coach => 403,
            _ => 401,
        },
        (
            "POST" | "DELETE",
            "/api/recordings/{id}/group-shares" | "/api/recordings/{id}/group-shares/{group}",
        ) => recording_route(c, 200, 403),
        ("POST", "/api/admin/groups")
        | ("DELETE", "/api/admin/groups/{group}")
        | ("PUT" | "DELETE", "/api/admin/groups/{group}/members/{username}") => match c {
            Admin => 200,
            Owner | OtherTeacher | SharedCoach | Coach => 403,
            _ => 401,
        },
        // Issue 14.2: bob chose his own password, so no admin can make an invitation for him.
        ("POST", "/api/admin/users/{username}/invite") => match c {
            Admin => 409,
            Owner | OtherTeacher | SharedCoach | Coach => 403,
            _ => 401,
        },
        // Anyone may try to enrol or to use an invitation; a wrong code or link is refused.
        ("POST", "/api/enroll" | "/api/invite") => 403,
        // The device listener: no client certificate, no handshake (0); a revoked device's
        // certificate still chains to the CA but is refused on every request.
        ("GET", "/api/device/v1/teachers/{username}/key" | "/api/device/v1/unassigned-key")
        | ("POST", "/api/device/v1/renew")
        | ("PUT", "/api/device/v1/status") => device_route(c, 200, 200),
        ("POST", "/api/device/v1/identify") => device_route(c, 422, 422),
        // A channel opens for any device; an answer to a command nobody sent is 404.
        ("GET", "/api/device/v1/channel") => device_route(c, 200, 200),
        ("POST", "/api/device/v1/commands/{id}") => device_route(c, 404, 404),
        // Rooms: teachers and admins see them; a teacher may start a lesson (for themselves),
        // which fails here because no device is connected (503); coaches and admins may not.
        ("GET", "/api/rooms") => match c {
            Owner | OtherTeacher | Admin => 200,
            SharedCoach | Coach => 403,
            _ => 401,
        },
        ("GET", "/api/bookings") => match c {
            Owner | OtherTeacher | Admin => 200,
            SharedCoach | Coach => 403,
            _ => 401,
        },
        // A booking in the past is refused for a teacher; others may not book.
        ("POST", "/api/bookings") => match c {
            Owner | OtherTeacher => 400,
            SharedCoach | Coach | Admin => 403,
            _ => 401,
        },
        // {id} is a recording's id here, which names no booking: refused as malformed, after
        // the caller is known.
        ("DELETE", "/api/bookings/{id}") => person_route(c, 400),
        ("PUT", "/api/device/v1/bookings/{id}/outcome") => device_route(c, 400, 400),
        ("POST", "/api/rooms/{name}/{action}") => match c {
            Owner | OtherTeacher => 503,
            SharedCoach | Coach | Admin => 403,
            _ => 401,
        },
        (
            "PUT",
            "/api/device/v1/recordings/{id}/segments/{index}"
            | "/api/device/v1/recordings/{id}/manifest",
        ) => device_route(c, 200, 403),
        _ => return None,
    })
}

#[test]
fn every_route_answers_every_caller_as_the_matrix_says() {
    let server = Server::start(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../web"));
    for (user, role) in [
        ("alice", "teacher"),
        ("bob", "teacher"),
        ("carol", "coach"),
        ("dave", "coach"),
        ("erin", "coach"),
        ("frank", "teacher"),
        ("gwen", "coach"),
        ("ada", "admin"),
    ] {
        server.add_user(user, &format!("{user}-password"), role);
    }
    let device = server.add_device("room-a");
    let other_device = server.add_device("room-b");
    let revoked = server.add_device("room-c");
    assert!(server
        .cli(&["device", "revoke", "room-c"], "")
        .status
        .success());
    // The one the admin's revoke route revokes.
    server.add_device("room-z");
    let agent = server.agent();
    let base = server.url();

    // A recording of alice's, uploaded by room-a: init, one segment, the manifest.
    let (rec, segments) = server.upload_recording(&device, "alice", 1);
    server.upload_poster(&device, "alice", rec);
    server.upload_talk(&device, "alice", rec, "tt--pp");
    let manifest = server
        .db()
        .query_row(
            "SELECT manifest FROM recordings WHERE id = ?1",
            [rec.to_string()],
            |r| r.get::<_, String>(0),
        )
        .unwrap();
    // Shared with carol, and with erin (whose share the DELETE share route removes), with a
    // comment of alice's; a second recording is the one the DELETE recording route removes.
    let (doomed, _) = server.upload_recording(&device, "alice", 1);
    let alice = server.login(&agent, "alice", "alice-password");
    for (r, coach) in [(rec, "carol"), (rec, "erin"), (doomed, "carol")] {
        agent
            .post(&format!("{base}/api/recordings/{r}/shares"))
            .set("cookie", &alice)
            .send_json(serde_json::json!({ "username": coach }))
            .unwrap();
    }
    let comment: serde_json::Value = agent
        .post(&format!("{base}/api/recordings/{rec}/comments"))
        .set("cookie", &alice)
        .send_json(serde_json::json!({"at_seconds": 1.0, "body": "a comment"}))
        .unwrap()
        .into_json()
        .unwrap();
    let comment = comment["id"].to_string();
    // Two groups of coaches: one with gwen in it (not a caller here, so her access changes
    // nobody's answer), which the member and group-share routes use, and one that the DELETE
    // group route removes.
    let ada = server.login(&agent, "ada", "ada-password");
    let group = |name: &str| {
        let made: serde_json::Value = agent
            .post(&format!("{base}/api/admin/groups"))
            .set("cookie", &ada)
            .send_json(serde_json::json!({ "name": name }))
            .unwrap()
            .into_json()
            .unwrap();
        made["id"].to_string()
    };
    let (kept_group, doomed_group) = (group("Maths coaches"), group("Old team"));
    agent
        .put(&format!(
            "{base}/api/admin/groups/{kept_group}/members/gwen"
        ))
        .set("cookie", &ada)
        .call()
        .unwrap();

    let cookie = |user: &str| server.login(&agent, user, &format!("{user}-password"));
    // Signed in afresh for every request: the logout route ends the session it is called with.
    let cookie_of = |c: Caller| {
        let user = match c {
            Owner => "alice",
            OtherTeacher => "bob",
            SharedCoach => "carol",
            Coach => "dave",
            Admin => "ada",
            _ => return None,
        };
        Some(cookie(user))
    };
    // A fresh connection per request (an early refusal may close the one it came on); devices
    // present their certificates (the web listener does not ask for one).
    let agent_of = |c: Caller| match c {
        Device => server.device_agent(&device),
        OtherDevice => server.device_agent(&other_device),
        RevokedDevice => server.device_agent(&revoked),
        _ => server.agent(),
    };
    let csr = {
        let key = rcgen::KeyPair::generate().unwrap();
        rcgen::CertificateParams::default()
            .serialize_request(&key)
            .unwrap()
            .pem()
            .unwrap()
    };

    let table = lessonlens_server::http::routes::table();
    assert!(
        table.len() >= 15,
        "the route table looks incomplete: {table:?}"
    );
    let mut failures = Vec::new();
    for (listener, method, template) in table {
        let base = match listener {
            Listener::Web => server.url(),
            Listener::Device => server.device_url(),
        };
        // The owner's call to a destructive route succeeds; everyone else asks before it.
        let mut callers = CALLERS.to_vec();
        if method == "DELETE" {
            callers.retain(|c| *c != Owner);
            callers.push(Owner);
        }
        for caller in callers {
            let Some(want) = expected(method, template, caller) else {
                panic!("{method} {template} has no entry in the authorization matrix: add one");
            };
            let target = if (method, template) == ("DELETE", "/api/recordings/{id}") {
                doomed
            } else {
                rec
            };
            let username = if template.contains("/shares/") {
                "erin"
            } else if template.contains("/members/") {
                "gwen"
            } else if template.ends_with("/invite") {
                // frank is disabled by then; an invitation is for an enabled account.
                "bob"
            } else if template.starts_with("/api/admin/users/") {
                "frank"
            } else {
                "alice"
            };
            let path = template
                .replace("{id}", &target.to_string())
                .replace("{index}", "1")
                .replace("{comment}", &comment)
                .replace("{username}", username)
                .replace("{name}", "room-z")
                .replace("{action}", "start")
                .replace(
                    "{group}",
                    if template == "/api/admin/groups/{group}" {
                        &doomed_group
                    } else {
                        &kept_group
                    },
                );
            let mut req = agent_of(caller).request(method, &format!("{base}{path}"));
            if let Some(value) = cookie_of(caller) {
                req = req.set("cookie", &value);
            }
            let res = match (method, template) {
                ("PUT", t) if t.ends_with("/segments/{index}") => {
                    req.set(SHA256_HEADER, &hex::encode(Sha256::digest(&segments[1]))).send_bytes(&segments[1])
                }
                ("PUT", "/api/admin/retention") => req.send_json(
                    serde_json::json!({"keep_days": 365, "unshared_days": null, "grace_days": 7}),
                ),
                ("PUT", "/api/admin/recordings/{id}/hold") => {
                    req.send_json(serde_json::json!({"reason": "review"}))
                }
                ("PUT", "/api/device/v1/status") => req.send_json(serde_json::json!({
                    "version": "0", "state": "idle", "bytes_waiting": 0,
                    "last_upload_at": null, "video_encoder": null, "last_error": null,
                })),
                ("PUT", "/api/device/v1/bookings/{id}/outcome") => {
                    req.send_json(serde_json::json!({"recording": null}))
                }
                ("POST", "/api/bookings") => req.send_json(
                    serde_json::json!({"room": "room-z", "starts_at": 1000, "ends_at": 2000}),
                ),
                ("PUT", "/api/me/device-code") => req.send_json(serde_json::json!({"code": "12ab", "password": "not-the-password"})),
                ("PUT", _) => req.send_bytes(manifest.as_bytes()),
                ("POST", "/api/admin/users") => req.send_json(serde_json::json!({
                    "username": format!("new-{caller:?}").to_lowercase(),
                    "display_name": "New person",
                    "roles": ["coach"],
                })),
                ("POST", "/api/me/admin-actions/seen") => {
                    req.send_json(serde_json::json!({"up_to": 0}))
                }
                ("POST", "/api/me/password") => req.send_json(
                    serde_json::json!({"current": "not-the-password", "new": "a-long-new-password"}),
                ),
                ("POST", "/api/me/recovery-code") => {
                    req.send_json(serde_json::json!({"password": "not-the-password"}))
                }
                ("POST", "/api/recover") => req.send_json(serde_json::json!({
                    "username": format!("nobody-{caller:?}").to_lowercase(),
                    "recovery_code": "AAAA-BBBB-CCCC-DDDD-EEEE",
                    "password": "a-long-new-password",
                })),
                ("POST", "/api/recordings/{id}/comments") => {
                    req.send_json(serde_json::json!({"at_seconds": 2.0, "body": "a reply-less note"}))
                }
                ("POST", "/api/recordings/{id}/shares") => {
                    req.send_json(serde_json::json!({"username": "erin"}))
                }
                ("POST", "/api/recordings/{id}/group-shares") => {
                    // Whoever is in the group by now (the matrix adds and removes gwen).
                    let members: Vec<String> = lessonlens_e2e::column(
                        &server.db(),
                        "SELECT u.username FROM coach_group_members m JOIN users u ON u.id = m.user_id WHERE m.group_id = ?1",
                        [&kept_group],
                    );
                    req.send_json(serde_json::json!({"group": kept_group.parse::<i64>().unwrap(), "members": members}))
                }
                ("POST", "/api/admin/groups") => req.send_json(
                    serde_json::json!({"name": format!("group of {caller:?}")}),
                ),
                // A different unknown name per caller, so the sign-in limit (5 per account) stays out of it.
                ("POST", "/api/login") => req.send_json(
                    serde_json::json!({"username": format!("nobody-{caller:?}").to_lowercase(), "password": "not-a-password"}),
                ),
                ("POST", "/api/device/v1/identify") => req.send_json(serde_json::json!({"code": "0000"})),
                ("POST", "/api/device/v1/commands/{id}") => {
                    req.send_json(serde_json::json!({"error": null}))
                }
                ("POST", "/api/device/v1/renew") => req.send_json(serde_json::json!({"csr": csr})),
                ("POST", "/api/unassigned/{id}/claim") => {
                    req.send_json(serde_json::json!({"code": "0000"}))
                }
                ("POST", "/api/me/second-factor/confirm") => {
                    req.send_json(serde_json::json!({"code": "000000", "password": "not-the-password"}))
                }
                ("POST", "/api/invite") => req.send_json(
                    serde_json::json!({"token": "not-a-token", "password": "a-long-new-password"}),
                ),
                ("POST", "/api/enroll") => {
                    req.send_json(serde_json::json!({"code": "AAAA-BBBB-CCCC", "csr": csr}))
                }
                ("POST", "/api/admin/roster") => {
                    req.send_json(serde_json::json!({"csv": "Name,Email,Staff ID,Role\n"}))
                }
                ("POST", "/api/admin/timetable") => req.send_json(
                    serde_json::json!({"csv": "Room,Day,Start,End,Teacher\n", "weeks": 1}),
                ),
                ("POST", "/api/admin/devices") => req.send_json(
                    serde_json::json!({"name": format!("room-{caller:?}").to_lowercase()}),
                ),
                ("POST", _) => req.send_json(serde_json::json!({})),
                _ => req.call(),
            };
            let got = match res {
                Ok(r) => r.status(),
                Err(ureq::Error::Status(code, _)) => code,
                Err(ureq::Error::Transport(_)) if listener == Listener::Device => 0,
                Err(e) => panic!("{method} {path} as {caller:?}: {e}"),
            };
            if got != want {
                failures.push(format!(
                    "{method} {template} as {caller:?}: got {got}, want {want}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "authorization matrix violations:\n{}",
        failures.join("\n")
    );
}
