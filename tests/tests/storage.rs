//! Issue 4, storage: one suite of checks run against both blob backends, the folder and
//! S3-compatible object storage (a real SeaweedFS the test starts itself); then a server that
//! keeps its lessons in object storage ingests, plays, rides out an outage of the store and
//! deletes.

use lessonlens_e2e::seaweed::{SeaweedFs, BUCKET};
use lessonlens_e2e::{column, web_dir, Server};
use lessonlens_server::config::S3Config;
use lessonlens_server::store::blobs::s3::S3Blobs;
use lessonlens_server::store::blobs::{BlobStore, LocalBlobs};
use sha2::{Digest, Sha256};
use std::io::ErrorKind;
use std::path::Path;

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn put(store: &dyn BlobStore, bytes: &[u8]) -> String {
    let mut incoming = store.begin().unwrap();
    // In pieces, as an upload arrives.
    for chunk in bytes.chunks(64 * 1024) {
        incoming.write(chunk).unwrap();
    }
    store.commit(incoming).unwrap()
}

fn staged(staging: &Path) -> usize {
    std::fs::read_dir(staging.join("tmp")).unwrap().count()
}

/// What every backend must do; `staging` is where it stages uploads.
fn suite(store: &dyn BlobStore, staging: &Path) {
    // Named by the hash of the bytes, and read back whole.
    let small = b"sealed segment bytes".to_vec();
    let name = put(store, &small);
    assert_eq!(name, sha(&small));
    assert_eq!(store.read(&name).unwrap(), small);

    // Larger than SeaweedFS's 4 MB chunks and than one write.
    let big: Vec<u8> = (0..5 * 1024 * 1024 + 7)
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    let big_name = put(store, &big);
    assert_eq!(store.read(&big_name).unwrap(), big);

    // The same bytes again (a device that resends) keep the same name and stay readable.
    assert_eq!(put(store, &small), name);
    assert_eq!(store.read(&name).unwrap(), small);

    // A blob nobody stored is NotFound, not some other error.
    let unknown = sha(b"never stored");
    assert_eq!(
        store.read(&unknown).unwrap_err().kind(),
        ErrorKind::NotFound
    );

    // An upload dropped half-way (client gone, refused) leaves nothing staged or stored.
    let mut incoming = store.begin().unwrap();
    incoming.write(b"half an upload").unwrap();
    let half = incoming.sha256_so_far();
    assert_eq!(staged(staging), 1);
    drop(incoming);
    assert_eq!(staged(staging), 0);
    assert_eq!(store.read(&half).unwrap_err().kind(), ErrorKind::NotFound);

    // Removed means gone; removing again is harmless.
    store.remove(&big_name).unwrap();
    assert_eq!(
        store.read(&big_name).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    match store.remove(&big_name) {
        Ok(()) => {}
        Err(e) => assert_eq!(e.kind(), ErrorKind::NotFound),
    }
    assert_eq!(
        store.read(&name).unwrap(),
        small,
        "removing one blob kept the other"
    );

    // Several uploads at once, as from several classrooms.
    let bodies: Vec<Vec<u8>> = (0..8u8)
        .map(|i| vec![i; 300_000 + usize::from(i)])
        .collect();
    let names: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = bodies.iter().map(|b| s.spawn(|| put(store, b))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (body, name) in bodies.iter().zip(&names) {
        assert_eq!(name, &sha(body));
        assert_eq!(&store.read(name).unwrap(), body);
    }
    assert_eq!(staged(staging), 0, "committed uploads leave no temp files");
}

#[test]
fn the_folder_backend_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalBlobs::open(dir.path()).unwrap();
    suite(&store, dir.path());
    assert!(store.describe().contains(&dir.path().display().to_string()));
}

fn s3_config(weed: &SeaweedFs, dir: &Path) -> S3Config {
    S3Config {
        endpoint: weed.endpoint(),
        bucket: BUCKET.into(),
        region: "us-east-1".into(),
        access_key_id: weed.access_key.clone(),
        secret_access_key_file: weed.secret_file(dir),
        prefix: "school-a".into(),
    }
}

#[test]
fn the_object_storage_backend_passes_the_suite() {
    let weed = SeaweedFs::start();
    let dir = tempfile::tempdir().unwrap();
    let staging = dir.path().join("staging");
    let store = S3Blobs::open(&s3_config(&weed, dir.path()), &staging).unwrap();
    suite(&store, &staging);

    // The objects sit in the bucket under the prefix, by hash.
    let name = put(&store, b"where is it");
    let listed = weed.shell(&format!("fs.ls /buckets/{BUCKET}/school-a/{}", &name[..2]));
    assert!(listed.contains(&name), "{listed}");
}

#[test]
fn object_storage_settings_that_cannot_work_are_refused_at_start() {
    let weed = SeaweedFs::start();
    let dir = tempfile::tempdir().unwrap();
    let staging = dir.path().join("staging");

    let mut wrong_secret = s3_config(&weed, dir.path());
    let file = dir.path().join("wrong-secret");
    std::fs::write(&file, "not the secret").unwrap();
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    wrong_secret.secret_access_key_file = file.clone();
    let err = format!(
        "{:#}",
        S3Blobs::open(&wrong_secret, &staging).err().unwrap()
    );
    assert!(
        err.contains("check the endpoint") && err.contains(BUCKET),
        "{err}"
    );

    let mut no_bucket = s3_config(&weed, dir.path());
    no_bucket.bucket = "no-such-bucket".into();
    let err = format!("{:#}", S3Blobs::open(&no_bucket, &staging).err().unwrap());
    assert!(err.contains("that the bucket exists"), "{err}");

    // A secret others can read is refused before any request.
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let err = format!(
        "{:#}",
        S3Blobs::open(&wrong_secret, &staging).err().unwrap()
    );
    assert!(err.contains("chmod 600"), "{err}");

    // Plain http to another machine is refused; https or loopback only.
    let mut remote = s3_config(&weed, dir.path());
    remote.endpoint = "http://192.0.2.10:9000".into();
    let err = format!("{:#}", S3Blobs::open(&remote, &staging).err().unwrap());
    assert!(err.contains("use https"), "{err}");
}

/// PUTs segment `index` of `rec` as the device; the status and the error text.
fn upload(agent: &ureq::Agent, url: &str, body: &[u8]) -> (u16, String) {
    let res = agent
        .put(url)
        .set(lessonlens_proto::wire::SHA256_HEADER, &sha(body))
        .send_bytes(body);
    match res {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
        Err(e) => panic!("{url}: {e}"),
    }
}

#[test]
fn a_server_on_object_storage_ingests_plays_survives_an_outage_and_deletes() {
    let mut weed = SeaweedFs::start();
    let secrets = tempfile::tempdir().unwrap();
    let server = Server::start_with(&web_dir(), &weed.storage_toml(secrets.path()));
    server.add_user("alice", "correct horse battery", "teacher");
    let device = server.add_device("room-12");
    let (rec, sealed) = server.upload_recording(&device, "alice", 3);

    // The sealed bytes are in the bucket, and none in the data folder.
    let shas: Vec<String> = column(
        &server.db(),
        "SELECT sha256 FROM segments WHERE recording_id = ?1 ORDER BY idx",
        [rec.to_string()],
    );
    assert_eq!(shas, sealed.iter().map(|b| sha(b)).collect::<Vec<_>>());
    let store = S3Blobs::open(
        &s3_config_for_server(&weed, secrets.path()),
        &secrets.path().join("inspect"),
    )
    .unwrap();
    for (sha, body) in shas.iter().zip(&sealed) {
        assert_eq!(&store.read(sha).unwrap(), body);
    }
    assert!(!server.data_dir().join("blobs").exists());

    // The teacher plays it: the server reads each segment from the bucket and decrypts it.
    let agent = server.agent();
    let cookie = server.login(&agent, "alice", "correct horse battery");
    // The status, and how many bytes of media came back.
    let segment = |i: u32| -> (u16, usize) {
        let url = format!("{}/api/recordings/{rec}/segments/{i}", server.url());
        match agent.get(&url).set("cookie", &cookie).call() {
            Ok(r) => {
                let mut media = Vec::new();
                std::io::Read::read_to_end(&mut r.into_reader(), &mut media).unwrap();
                (200, media.len())
            }
            Err(ureq::Error::Status(code, _)) => (code, 0),
            Err(e) => panic!("{url}: {e}"),
        }
    };
    let (status, len) = segment(1);
    assert!(
        status == 200 && len > 0,
        "segment from object storage: {status}"
    );

    // The store goes away: an upload is refused with 503 and a reason the device can log, and
    // nothing is recorded as stored. Playing answers 503 too.
    weed.stop();
    let device_agent = server.device_agent(&device);
    let next = lessonlens_e2e::new_recording_id();
    let pk = server.teacher_key(&device_agent, "alice");
    let body = lessonlens_e2e::sealed_segment(&pk, next, 0, 7, 1000);
    let url = format!(
        "{}/api/device/v1/recordings/{next}/segments/0",
        server.device_url()
    );
    let (status, text) = upload(&device_agent, &url, &body);
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("storage cannot be reached"), "{text}");
    let rows: Vec<i64> = column(
        &server.db(),
        "SELECT idx FROM segments WHERE recording_id = ?1",
        [next.to_string()],
    );
    assert!(rows.is_empty());
    assert_eq!(
        std::fs::read_dir(server.data_dir().join("staging/tmp"))
            .unwrap()
            .count(),
        0,
        "a refused upload leaves nothing staged"
    );
    assert_eq!(segment(1).0, 503, "playing during the outage");

    // Back again: the device's retry is stored.
    weed.restart();
    let (status, text) = upload(&device_agent, &url, &body);
    assert_eq!(status, 200, "{text}");
    assert_eq!(store.read(&sha(&body)).unwrap(), body);

    // Deleting the lesson removes its objects from the bucket.
    let res = agent
        .delete(&format!("{}/api/recordings/{rec}", server.url()))
        .set("cookie", &cookie)
        .call()
        .expect("delete");
    assert_eq!(res.status(), 200);
    for sha in &shas {
        assert_eq!(store.read(sha).unwrap_err().kind(), ErrorKind::NotFound);
    }
}

/// The server's own settings (no prefix), to look into its bucket.
fn s3_config_for_server(weed: &SeaweedFs, dir: &Path) -> S3Config {
    S3Config {
        prefix: String::new(),
        ..s3_config(weed, dir)
    }
}
