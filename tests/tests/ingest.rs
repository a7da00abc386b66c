//! The device API against a real server: a stored segment gets a receipt with its sha256, the same
//! bytes again get the same receipt, different bytes get 409, and damaged, relabelled, foreign or
//! unauthenticated uploads are refused with a clear error and leave nothing behind.

use lessonlens_e2e::{new_recording_id, sealed_segment, Device, Server};
use lessonlens_proto::manifest::MANIFEST_VERSION;
use lessonlens_proto::wire::{ManifestReceipt, Receipt, TeacherKey, SHA256_HEADER};
use lessonlens_proto::{Manifest, ManifestSegment, PublicKey, RecordingId, SecretKey};
use rand_core::{OsRng, TryRngCore};
use sha2::{Digest, Sha256};
use std::path::Path;

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn status<T>(r: Result<T, ureq::Error>) -> u16 {
    match r {
        Ok(_) => 200,
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("{e}"),
    }
}

fn code<T>(r: Result<T, u16>) -> u16 {
    r.map(|_| 200).unwrap_or_else(|c| c)
}

fn sealed(pk: &PublicKey, rec: RecordingId, index: u32, fill: u8) -> Vec<u8> {
    sealed_segment(pk, rec, index, fill, 100_000)
}

fn files_under(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        files_under(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn segment_uploads_are_checked_stored_once_and_acknowledged() {
    let server = Server::start(Path::new(env!("CARGO_MANIFEST_DIR")));
    server.add_user("alice", "alice-password", "teacher");
    server.add_user("carol", "carol-password", "coach");
    let (room_a, room_b) = (server.add_device("room-a"), server.add_device("room-b"));
    let (device_a, device_b) = (server.device_agent(&room_a), server.device_agent(&room_b));
    let agent = server.agent();
    let base = server.device_url();

    // Keys: only teachers have one. (Devices without a certificate: see tests/devices.rs.)
    let key_url = format!("{base}/api/device/v1/teachers/alice/key");
    assert_eq!(
        status(
            device_a
                .get(&format!("{base}/api/device/v1/teachers/carol/key"))
                .call()
        ),
        404
    );
    let key: TeacherKey = device_a.get(&key_url).call().unwrap().into_json().unwrap();
    let pk = PublicKey::from_hex(&key.public_key).unwrap();

    let rec = new_recording_id();
    let url = |i: u32| format!("{base}/api/device/v1/recordings/{rec}/segments/{i}");
    // A connection per upload: a server may close one after refusing a request early (before
    // reading its body), and a reused connection would then fail the next request.
    let put = |i: u32, device: &Device, hash: Option<&str>, body: &[u8]| {
        let mut req = server.device_agent(device).put(&url(i));
        if let Some(h) = hash {
            req = req.set(SHA256_HEADER, h);
        }
        req.send_bytes(body).map_err(|e| match e {
            ureq::Error::Status(code, _) => code,
            e => panic!("{e}"),
        })
    };

    let seg1 = sealed(&pk, rec, 1, 1);
    let receipt: Receipt = put(1, &room_a, Some(&sha(&seg1)), &seg1)
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(receipt.sha256, sha(&seg1));
    assert_eq!(receipt.bytes, seg1.len() as u64);
    // The same bytes again (a lost receipt): the same answer.
    let again: Receipt = put(1, &room_a, Some(&sha(&seg1)), &seg1)
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(again, receipt);
    // Different bytes for a stored segment: conflict.
    let other = sealed(&pk, rec, 1, 2);
    assert_eq!(code(put(1, &room_a, Some(&sha(&other)), &other)), 409);
    // Relabelled, truncated, padded, wrong hash, no hash.
    assert_eq!(code(put(2, &room_a, Some(&sha(&seg1)), &seg1)), 422);
    let cut = &seg1[..seg1.len() - 1];
    assert_eq!(
        code(put(1, &room_a, Some(&sha(cut)), cut)),
        422,
        "damaged bytes are refused, stored or not"
    );
    let seg3 = sealed(&pk, rec, 3, 3);
    let cut = &seg3[..seg3.len() - 1];
    assert_eq!(code(put(3, &room_a, Some(&sha(cut)), cut)), 422);
    let mut padded = seg3.clone();
    padded.push(0);
    assert_eq!(code(put(3, &room_a, Some(&sha(&padded)), &padded)), 422);
    assert_eq!(code(put(3, &room_a, Some(&sha(&seg1)), &seg3)), 422);
    assert_eq!(code(put(3, &room_a, None, &seg3)), 400);
    assert_eq!(
        code(put(3, &room_a, Some(&sha(b"ftyp")), b"\0\0\0\x18ftypisom")),
        422
    );
    // Another device may not add to this recording.
    assert_eq!(code(put(3, &room_b, Some(&sha(&seg3)), &seg3)), 403);
    // A segment sealed to a key the server does not know.
    let (_, stranger) = SecretKey::generate(&mut OsRng.unwrap_err());
    let foreign = sealed(&stranger, rec, 4, 4);
    assert_eq!(code(put(4, &room_a, Some(&sha(&foreign)), &foreign)), 422);

    // Nothing refused was kept: one blob, no temp files.
    let blobs = server.data_dir().join("blobs");
    assert_eq!(
        files_under(&blobs),
        1,
        "only the accepted segment is stored"
    );

    // The manifest says 0 and 1 were recorded; 0 never arrived.
    let manifest = Manifest {
        version: MANIFEST_VERSION,
        recording: rec,
        recipient: pk.fingerprint(),
        started_at: 1_800_000_000,
        segments: vec![
            ManifestSegment {
                index: 0,
                sha256: "0".repeat(64),
                start_us: 0,
                duration_us: 0,
            },
            ManifestSegment {
                index: 1,
                sha256: sha(&seg1),
                start_us: 0,
                duration_us: 2_000_000,
            },
        ],
        clean_stop: true,
        claim: None,
    };
    let body = manifest.to_json();
    let murl = format!("{base}/api/device/v1/recordings/{rec}/manifest");
    let mr: ManifestReceipt = device_a
        .put(&murl)
        .send_bytes(&body)
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(mr.sha256, sha(&body));
    assert_eq!(mr.missing, vec![0]);
    assert_eq!(mr.missing_spans, vec![[0, 0]]);
    assert_eq!(status(device_b.put(&murl).send_bytes(&body)), 403);
    assert_eq!(status(device_a.put(&murl).send_bytes(b"{}")), 422);
    // Issue 14.3: a manifest naming a segment near 2^32 is refused before anything is stored or
    // derived from it (the server used to build a list of four billion missing indices on every
    // library page, and died).
    let mut hostile = manifest.clone();
    hostile.segments[1].index = 4_294_967_000;
    assert_eq!(
        status(device_a.put(&murl).send_bytes(&hostile.to_json())),
        422
    );
    let mut hostile = manifest.clone();
    hostile.segments[1].duration_us = u64::MAX;
    assert_eq!(
        status(device_a.put(&murl).send_bytes(&hostile.to_json())),
        422
    );

    // The teacher's library tells the truth: incomplete, segment 0 missing.
    let base = server.url();
    let alice = server.login(&agent, "alice", "alice-password");
    let list: serde_json::Value = agent
        .get(&format!("{base}/api/recordings"))
        .set("cookie", &alice)
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(list[0]["status"], "incomplete");
    assert_eq!(list[0]["missing"], serde_json::json!([[0, 0]]));
    assert_eq!(list[0]["missing_segments"], 1);
    // The coach, with nothing shared, sees nothing.
    let carol = server.login(&agent, "carol", "carol-password");
    let list: serde_json::Value = agent
        .get(&format!("{base}/api/recordings"))
        .set("cookie", &carol)
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(list, serde_json::json!([]));
    // A wrong password is refused without saying which part was wrong.
    let wrong = agent
        .post(&format!("{base}/api/login"))
        .send_json(serde_json::json!({"username": "alice", "password": "nope-nope"}));
    match wrong {
        Err(ureq::Error::Status(400, r)) => assert!(r
            .into_string()
            .unwrap()
            .contains("wrong username or password")),
        other => panic!("expected 400, got {other:?}"),
    }
}

/// Issue 14.3: a hostile device made many recordings, each naming the last index a lesson can
/// have, and every library page and the offline list (which every teacher sees) listed 86,401
/// missing indices per recording. Now what is missing is a span, a device begins at most
/// 100 recordings a day, and the offline list comes a page at a time.
#[test]
fn a_hostile_device_cannot_flood_libraries_or_the_offline_list() {
    use lessonlens_proto::manifest::limits::MAX_SEGMENT_INDEX;
    let server = Server::start(Path::new(env!("CARGO_MANIFEST_DIR")));
    server.add_user("alice", "alice-password", "teacher");
    let device = server.add_device("room-h");
    let agent = server.device_agent(&device);
    let alice_key = server.teacher_key(&agent, "alice");
    let unassigned = server.unassigned_key(&device);
    let put_manifest = |pk: &PublicKey| {
        let rec = new_recording_id();
        let manifest = Manifest {
            version: MANIFEST_VERSION,
            recording: rec,
            recipient: pk.fingerprint(),
            started_at: 1_800_000_000,
            segments: vec![ManifestSegment {
                index: MAX_SEGMENT_INDEX,
                sha256: "0".repeat(64),
                start_us: 0,
                duration_us: 1_000_000,
            }],
            clean_stop: true,
            claim: None,
        };
        match agent
            .put(&format!(
                "{}/api/device/v1/recordings/{rec}/manifest",
                server.device_url()
            ))
            .send_bytes(&manifest.to_json())
        {
            Ok(r) => Ok(r.into_json::<ManifestReceipt>().unwrap()),
            Err(ureq::Error::Status(code, r)) => Err((code, r.into_string().unwrap())),
            Err(e) => panic!("{e}"),
        }
    };
    for i in 0..100 {
        let key = if i % 5 < 3 { &alice_key } else { &unassigned };
        let receipt = put_manifest(key).unwrap();
        assert_eq!(receipt.missing_spans, vec![[0, MAX_SEGMENT_INDEX]]);
        // Devices from before spans read the first thousand, one by one.
        assert_eq!(receipt.missing, (0..1000).collect::<Vec<u32>>());
    }
    match put_manifest(&alice_key) {
        Err((429, body)) => assert!(body.contains("than a classroom can"), "{body}"),
        other => panic!("the 101st recording of the day: expected 429, got {other:?}"),
    }

    let web = server.agent();
    let alice = server.login(&web, "alice", "alice-password");
    let library = server.get_text("/api/recordings", &alice);
    let list: serde_json::Value = serde_json::from_str(&library).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 60);
    assert_eq!(
        list[0]["missing"],
        serde_json::json!([[0, MAX_SEGMENT_INDEX]])
    );
    assert_eq!(list[0]["missing_segments"], MAX_SEGMENT_INDEX + 1);
    assert!(
        library.len() < 100_000,
        "60 recordings take {} bytes to list",
        library.len()
    );
    // 40 offline lessons: 20 a page, newest first, each page saying whether another follows.
    let mut seen = std::collections::HashSet::new();
    for (page, more) in [(0, true), (1, false)] {
        let got = server.get_json(&format!("/api/unassigned?page={page}"), &alice);
        assert_eq!(got["rows"].as_array().unwrap().len(), 20, "{page}");
        assert_eq!(got["more"], more);
        for r in got["rows"].as_array().unwrap() {
            assert!(seen.insert(r["id"].as_str().unwrap().to_string()));
        }
    }
    assert_eq!(seen.len(), 40);
    let past = server.get_json("/api/unassigned?page=2", &alice);
    assert_eq!(past["rows"], serde_json::json!([]));
    let refused = web
        .get(&format!("{}/api/unassigned?page=100001", server.url()))
        .set("cookie", &alice)
        .call();
    assert_eq!(status(refused), 400);
}

#[test]
fn device_codes_identify_teachers_and_guessing_is_limited() {
    let server = Server::start(Path::new(env!("CARGO_MANIFEST_DIR")));
    server.add_user("alice", "alice-password", "teacher");
    assert_eq!(server.set_device_code("alice", "12345"), 200);
    assert_eq!(
        server.set_device_code("alice", "12a"),
        400,
        "codes are digits"
    );
    let agent = server.device_agent(&server.add_device("room-a"));
    let url = format!("{}/api/device/v1/identify", server.device_url());
    let identify = |code: &str| {
        agent
            .post(&url)
            .send_json(serde_json::json!({ "code": code }))
            .map_err(|e| match e {
                ureq::Error::Status(c, _) => c,
                e => panic!("{e}"),
            })
    };
    let key: TeacherKey = identify("12345").unwrap().into_json().unwrap();
    assert_eq!(key.username, "alice");
    let expected: TeacherKey = agent
        .get(&format!(
            "{}/api/device/v1/teachers/alice/key",
            server.device_url()
        ))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(key.public_key, expected.public_key);
    assert_eq!(code(identify("1")), 400);
    for _ in 0..5 {
        assert_eq!(code(identify("99999")), 422);
    }
    // Five wrong codes: the device must wait, even with the right code.
    assert_eq!(code(identify("12345")), 429);
    // The code is stored only as a keyed tag, never in the clear.
    let stored: Vec<u8> = server
        .db()
        .query_row("SELECT code_tag FROM teacher_codes", [], |r| r.get(0))
        .unwrap();
    assert!(!stored.windows(5).any(|w| w == b"12345"));
}

#[test]
fn the_server_reports_its_health_and_counts_for_monitoring() {
    let server = Server::start(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../web"));
    server.add_user("alice", "alice-password", "teacher");
    let device = server.add_device("room-1");
    let (rec, _) = server.upload_recording(&device, "alice", 3);
    let alice = server.login(&server.agent(), "alice", "alice-password");
    let _ = server.get_text(&format!("/api/recordings/{rec}/segments/1"), &alice);
    let agent = server.agent();
    let get = |path: &str| {
        agent
            .get(&format!("{}{path}", server.url()))
            .call()
            .unwrap()
            .into_string()
            .unwrap()
    };
    assert_eq!(get("/healthz"), "ok\n");
    let metrics = get("/metrics");
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {metrics}"))
    };
    // The init and three media segments were stored; one segment was played.
    assert_eq!(value("lessonlens_ingest_receipts_total "), 4.0, "{metrics}");
    assert!(
        value("lessonlens_ingest_bytes_total ") >= 4000.0,
        "{metrics}"
    );
    assert_eq!(value("lessonlens_playback_pieces_total "), 1.0, "{metrics}");
    assert!(value("lessonlens_http_responses_total{class=\"2xx\"} ") >= 8.0);
    assert_eq!(value("lessonlens_storage_errors_total "), 0.0);
    let days = value("lessonlens_server_certificate_expiry_seconds ") / 86_400.0;
    assert!((396.0..=397.0).contains(&days), "{days}");
    assert!(
        !metrics.contains("alice") && !metrics.contains(&rec.to_string()),
        "no names or lessons in metrics"
    );

    // Anyone outside metrics_networks is refused.
    let elsewhere = Server::start_with(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../web"),
        "metrics_networks = [\"192.0.2.0/24\"]\n",
    );
    let (status, body) = elsewhere.call("GET", "/metrics", "", None);
    assert_eq!(status, 403, "{body}");
    assert_eq!(elsewhere.call("GET", "/healthz", "", None).0, 200);
}
