//! The device API: what a classroom device may do, and nothing more: fetch a teacher's public key,
//! upload sealed segments, upload the recording's manifest, renew its certificate. It is served
//! on its own listener, which requires a client certificate from the school CA; enrollment, which
//! gives a device its first certificate, is the one device route on the web listener.

use super::Route;
use crate::domain::clock;
use crate::domain::people::Role;
use crate::http::error::{AppError, AppResult};
use crate::http::state::{ClientIp, DeviceAuth, Shared};
use crate::store::accounts::{self};
use crate::store::blobs::Incoming;
use crate::store::devices::{self, Device};
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post, put};
use axum::{Extension, Json};
use futures_util::StreamExt;
use lessonlens_proto::envelope::{Label, SegmentHeader};
use lessonlens_proto::wire::{
    DeviceCertificate, DeviceReport, EnrollRequest, ManifestReceipt, Receipt, RenewRequest,
    TeacherKey, SHA256_HEADER,
};
use lessonlens_proto::{Manifest, RecordingId, SegmentIndex};
use rusqlite::{params, OptionalExtension};
use sha2::{Digest, Sha256};

pub fn routes(max_segment_bytes: usize) -> Vec<Route> {
    let limit = || DefaultBodyLimit::max(max_segment_bytes);
    vec![
        (
            "GET",
            "/api/device/v1/teachers/{username}/key",
            get(teacher_key),
        ),
        ("POST", "/api/device/v1/identify", post(identify)),
        (
            "PUT",
            "/api/device/v1/recordings/{id}/segments/{index}",
            put(put_segment).layer(limit()),
        ),
        (
            "PUT",
            "/api/device/v1/recordings/{id}/manifest",
            put(put_manifest).layer(limit()),
        ),
        ("POST", "/api/device/v1/renew", post(renew)),
        ("GET", "/api/device/v1/unassigned-key", get(unassigned_key)),
        ("PUT", "/api/device/v1/status", put(report)),
    ]
}

/// The one device route on the web listener: a device has no certificate until it enrols.
pub fn enroll_routes() -> Vec<Route> {
    vec![("POST", "/api/enroll", post(enroll))]
}

/// Issues a certificate for `csr` to `device` and records it, with `action` in the audit log,
/// in the transaction `find` runs in (which finds the device, e.g. by using up a code).
async fn issue(
    st: &Shared,
    csr: String,
    action: &'static str,
    find: impl FnOnce(&rusqlite::Connection, i64) -> AppResult<Device> + Send + 'static,
) -> AppResult<Json<DeviceCertificate>> {
    let now = clock::now();
    let st2 = st.clone();
    let (device, issued) = st
        .db(move |c| {
            let tx =
                rusqlite::Transaction::new_unchecked(c, rusqlite::TransactionBehavior::Immediate)?;
            let device = find(&tx, now)?;
            let issued = st2
                .ca
                .issue(&csr, &device.name, now, st2.config.device_cert_days)?;
            devices::add_cert(&tx, device.id, &issued.sha256, now, issued.not_after)?;
            let actor = format!("device:{}", device.name);
            crate::store::audit::append(&tx, &st2.audit_key, &actor, action, &device.name)?;
            tx.commit()?;
            Ok((device, issued))
        })
        .await?;
    tracing::info!(device = %device.name, action, not_after = issued.not_after, "device certificate issued");
    Ok(Json(DeviceCertificate {
        device: device.name,
        certificate: issued.pem,
        ca_certificate: st.ca.pem.clone(),
        not_after: issued.not_after,
    }))
}

/// A device enrols with a one-time code from an admin and a request for the key it made. Ten
/// failures from one address in 15 minutes make it wait.
async fn enroll(
    State(st): State<Shared>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    Json(req): Json<EnrollRequest>,
) -> AppResult<Json<DeviceCertificate>> {
    if st.enroll_failures.attempt(&ip, clock::now()).is_err() {
        return Err(AppError::TooManyRequests(
            "too many failed enrollments from this address; wait 15 minutes and try again",
        ));
    }
    let code = zeroize::Zeroizing::new(req.code);
    let out = issue(&st, req.csr, "device-enroll", move |c, now| {
        Ok(devices::redeem_code(c, &code, now)?)
    })
    .await;
    if out.is_ok() {
        st.enroll_failures.forgive_last(&ip);
    }
    out
}

/// The school's unassigned key: a device keeps it, and seals to it what it records while the
/// server cannot be reached; the teacher claims the recording later.
async fn unassigned_key(
    State(st): State<Shared>,
    DeviceAuth(_): DeviceAuth,
) -> AppResult<Json<TeacherKey>> {
    let id = st.unassigned;
    let pk = st
        .vault(move |v| Ok(v.public_key(id)?))
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(Json(TeacherKey {
        username: accounts::UNASSIGNED.into(),
        public_key: pk.to_hex(),
        display_name: String::new(),
    }))
}

/// A device says how it is doing (state, backlog, last upload, encoder), for the admin's list.
async fn report(
    State(st): State<Shared>,
    DeviceAuth(device): DeviceAuth,
    Json(report): Json<DeviceReport>,
) -> AppResult<Json<serde_json::Value>> {
    st.db(move |c| Ok(devices::save_report(c, device.id, report, clock::now())?))
        .await?;
    Ok(Json(serde_json::json!({ "stored": true })))
}

/// A device renews its certificate before it expires, with a request for a fresh key.
/// A new certificate for the device. Not from a certificate a newer one has replaced (even in
/// its grace minute): that is another machine with a copy of the identity, which would otherwise
/// renew itself and push the real device out.
async fn renew(
    State(st): State<Shared>,
    DeviceAuth(device): DeviceAuth,
    Extension(cert): Extension<crate::http::state::PeerCert>,
    Json(req): Json<RenewRequest>,
) -> AppResult<Json<DeviceCertificate>> {
    let id = device.id;
    let retired = st
        .db(move |c| Ok(devices::refuse_if_retired(c, id, &cert.0, clock::now())?))
        .await?;
    if retired {
        return Err(AppError::DeviceNotCurrent);
    }
    issue(&st, req.csr, "device-renew", move |_, _| Ok(device)).await
}

async fn teacher_key(
    State(st): State<Shared>,
    DeviceAuth(_): DeviceAuth,
    Path(username): Path<String>,
) -> AppResult<Json<TeacherKey>> {
    let lookup = username.clone();
    let user = st
        .db(move |c| Ok(accounts::find_user(c, &lookup)?))
        .await?
        .filter(|u| u.has(Role::Teacher))
        .ok_or(AppError::NotFound)?;
    let id = user.id;
    let pk = st
        .vault(move |v| Ok(v.public_key(id)?))
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(Json(TeacherKey {
        username,
        public_key: pk.to_hex(),
        display_name: user.display_name,
    }))
}

/// A teacher types their code on the device; the answer is their username and public key.
/// Five wrong codes from a device in five minutes make it wait.
async fn identify(
    State(st): State<Shared>,
    DeviceAuth(device): DeviceAuth,
    Json(req): Json<super::CodeForm>,
) -> AppResult<Json<TeacherKey>> {
    let now = clock::now();
    if !accounts::valid_code(&req.code) {
        return Err(AppError::BadRequest("a code is 4 to 8 digits".into()));
    }
    // Counted before the lookup, so guesses sent in parallel cannot slip past the limit.
    if st.code_failures.attempt(&device.id, now).is_err() {
        return Err(AppError::TooManyRequests(
            "too many wrong codes from this device; wait five minutes and try again",
        ));
    }
    let tag = st.vault(move |v| Ok(v.code_tag(&req.code))).await?;
    let user = st.db(move |c| Ok(accounts::user_by_code(c, &tag)?)).await?;
    let Some(user) = user else {
        tracing::warn!(device = %device.name, "wrong teacher code");
        return Err(AppError::Unprocessable(
            "no teacher has that code; check it and try again".into(),
        ));
    };
    st.code_failures.forgive_last(&device.id);
    let id = user.id;
    let pk = st
        .vault(move |v| Ok(v.public_key(id)?))
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(Json(TeacherKey {
        username: user.username,
        public_key: pk.to_hex(),
        display_name: user.display_name,
    }))
}

fn parse_id(id: &str) -> AppResult<RecordingId> {
    id.parse()
        .map_err(|_| AppError::BadRequest(format!("{id:?} is not a recording id")))
}

/// The (device, owner) of a recording, if it exists.
fn recording_claim(
    c: &rusqlite::Connection,
    rec: RecordingId,
) -> rusqlite::Result<Option<(i64, i64)>> {
    c.query_row(
        "SELECT device_id, owner_id FROM recordings WHERE id = ?1",
        [rec.to_string()],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
}

/// Refuses a recording that belongs to another device or another teacher.
fn check_claim(existing: Option<(i64, i64)>, device: i64, owner: i64) -> AppResult<()> {
    match existing {
        Some((d, _)) if d != device => Err(AppError::Forbidden(
            "this recording belongs to another device",
        )),
        Some((_, o)) if o != owner => Err(AppError::Conflict(
            "this segment is sealed to a different teacher than the rest of the recording".into(),
        )),
        _ => Ok(()),
    }
}

/// Whether the recording was deleted (by its owner, retention or offboarding). Later uploads for
/// it are answered as stored, so the device stops sending, and are not kept.
fn was_deleted(c: &rusqlite::Connection, rec: RecordingId) -> rusqlite::Result<bool> {
    c.query_row(
        "SELECT EXISTS (SELECT 1 FROM deleted_recordings WHERE id = ?1)",
        [rec.to_string()],
        |r| r.get(0),
    )
}

/// The most recordings one device may begin in a day: far more than a classroom has lessons, and a
/// bound on how many a hostile device can put in teachers' libraries and the offline list.
pub const MAX_NEW_RECORDINGS_PER_DAY: i64 = 100;

/// Stores a recording row for `device` if it does not exist yet, after [`check_claim`] and
/// within [`MAX_NEW_RECORDINGS_PER_DAY`].
fn claim_recording(
    c: &rusqlite::Connection,
    rec: RecordingId,
    device: i64,
    owner: i64,
    started_at: Option<i64>,
) -> AppResult<()> {
    let existing = recording_claim(c, rec)?;
    check_claim(existing, device, owner)?;
    if existing.is_none() {
        let now = clock::now();
        let today: i64 = c.query_row(
            "SELECT COUNT(*) FROM recordings WHERE device_id = ?1 AND created_at > ?2",
            params![device, now - clock::DAY],
            |r| r.get(0),
        )?;
        if today >= MAX_NEW_RECORDINGS_PER_DAY {
            return Err(AppError::TooManyRequests(
                "this device has begun more recordings in the last day than a classroom can; it keeps this one and tries again later; an admin should look at the device",
            ));
        }
        c.execute(
            "INSERT INTO recordings (id, owner_id, device_id, created_at, started_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![rec.to_string(), owner, device, now, started_at],
        )?;
    }
    Ok(())
}

async fn put_segment(
    State(st): State<Shared>,
    DeviceAuth(device): DeviceAuth,
    Path((id, index)): Path<(String, SegmentIndex)>,
    headers: HeaderMap,
    body: Body,
) -> AppResult<Json<Receipt>> {
    let rec = parse_id(&id)?;
    // Stream the body to a temp file while hashing; nothing is visible until the row is written.
    let st2 = st.clone();
    let incoming = tokio::task::spawn_blocking(move || st2.blobs.begin())
        .await
        .map_err(|e| AppError::Internal(e.into()))??;
    let incoming = receive(
        body.into_data_stream(),
        incoming,
        st.config.max_segment_bytes,
    )
    .await?;
    // The header is checked after the body is read, so even a refused upload gets its answer
    // on a connection the device can keep using.
    let claimed = headers
        .get(SHA256_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_ascii_lowercase)
        .ok_or_else(|| {
            AppError::BadRequest(format!("missing or malformed {SHA256_HEADER} header"))
        })?;
    let header = check_upload(&incoming, rec, index, &claimed)?;
    let fp = header.recipient;
    let owner = st.vault(move |v| Ok(v.owner_of(&fp)?)).await?.ok_or_else(|| {
        AppError::Unprocessable(
            "segment is sealed to a key this server does not know; re-sync the device's teacher keys".into(),
        )
    })?;

    let bytes = incoming.len();
    // An upload the server already holds (the device missed our receipt) is answered without
    // writing anything.
    if let Some(stored) = stored_sha(&st, rec, index, device.id, owner, &claimed).await? {
        return same_or_conflict(rec, index, stored, &claimed, bytes);
    }

    let st2 = st.clone();
    let sha = tokio::task::spawn_blocking(move || st2.blobs.commit(incoming))
        .await
        .map_err(|e| AppError::Internal(e.into()))??;
    let device_id = device.id;
    let sha_row = sha.clone();
    // Claim, insert and read back in one transaction: the row is the commit point, and two
    // concurrent uploads of the same segment cannot both insert.
    let stored = st
        .db(move |c| {
            let tx = c.unchecked_transaction()?;
            // Deleted while this upload was on its way: keep nothing.
            if was_deleted(&tx, rec)? {
                return Ok(None);
            }
            claim_recording(&tx, rec, device_id, owner, None)?;
            tx.execute(
                "INSERT INTO segments (recording_id, idx, sha256, bytes, start_us, duration_us, final, stored_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (recording_id, idx) DO NOTHING",
                params![
                    rec.to_string(),
                    index,
                    sha_row,
                    bytes as i64,
                    header.start_us as i64,
                    header.duration_us as i64,
                    header.final_segment,
                    clock::now()
                ],
            )?;
            let stored: String = tx.query_row(
                "SELECT sha256 FROM segments WHERE recording_id = ?1 AND idx = ?2",
                params![rec.to_string(), index],
                |r| r.get(0),
            )?;
            tx.commit()?;
            Ok(Some(stored))
        })
        .await;
    let stored = match stored {
        Ok(Some(s)) => s,
        Ok(None) => {
            discard(&st, sha.clone()).await;
            return same_or_conflict(rec, index, sha, &claimed, bytes);
        }
        Err(e) => {
            // No row refers to the blob just written (its bytes name this very segment): remove it.
            discard(&st, sha).await;
            return Err(e);
        }
    };
    if stored != sha {
        // Lost a race to different bytes for the same segment: our blob has no row; remove it.
        discard(&st, sha.clone()).await;
        return same_or_conflict(rec, index, stored, &claimed, bytes);
    }
    tracing::info!(recording = %rec, index, bytes, device = %device.name, "segment stored");
    Ok(Json(Receipt {
        recording: rec,
        index,
        sha256: sha,
        bytes,
    }))
}

/// Streams an upload's body into `incoming`, at most `max` bytes. Each write runs on a blocking
/// thread: a slow or stalled disk must not hold up the async threads, which serve everyone else.
async fn receive<E: std::fmt::Display>(
    mut body: impl futures_util::Stream<Item = Result<axum::body::Bytes, E>> + Unpin,
    mut incoming: Incoming,
    max: u64,
) -> AppResult<Incoming> {
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| {
            AppError::BadRequest(format!("upload interrupted ({e}); the device should retry"))
        })?;
        if incoming.len() + chunk.len() as u64 > max {
            return Err(AppError::TooLarge(format!(
                "segment is larger than the {max}-byte limit"
            )));
        }
        incoming = tokio::task::spawn_blocking(move || incoming.write(&chunk).map(|()| incoming))
            .await
            .map_err(|e| AppError::Internal(e.into()))??;
    }
    Ok(incoming)
}

/// Removes a blob no row refers to, on a blocking thread (object storage blocks).
async fn discard(st: &Shared, sha: String) {
    let st = st.clone();
    let _ = tokio::task::spawn_blocking(move || st.blobs.remove(&sha)).await;
}

/// Everything checked about an upload before it is kept.
fn check_upload(
    incoming: &Incoming,
    rec: RecordingId,
    index: SegmentIndex,
    claimed: &str,
) -> AppResult<SegmentHeader> {
    let header = SegmentHeader::parse(incoming.head())
        .map_err(|e| AppError::Unprocessable(format!("not a valid segment: {e}")))?;
    if header.label
        != (Label {
            recording: rec,
            index,
        })
    {
        return Err(AppError::Unprocessable(format!(
            "segment says it is segment {} of {} but was uploaded as segment {index} of {rec}",
            header.label.index, header.label.recording
        )));
    }
    // The poster has its reserved index; every other number is bounded by what a lesson can be.
    let numbered = if index == lessonlens_proto::POSTER_INDEX {
        0
    } else {
        index
    };
    lessonlens_proto::manifest::limits::check_segment(
        numbered,
        header.start_us,
        header.duration_us,
    )
    .map_err(AppError::Unprocessable)?;
    if incoming.len() != header.envelope_len() {
        return Err(AppError::Unprocessable(format!(
            "segment is {} bytes but its header promises {}: truncated or padded in transit; the device keeps it and retries",
            incoming.len(),
            header.envelope_len()
        )));
    }
    if incoming.sha256_so_far() != claimed {
        return Err(AppError::Unprocessable(
            "body does not match its sha256 header; the device keeps it and retries".into(),
        ));
    }
    Ok(header)
}

/// What is already stored for this segment, after checking that the recording (if it exists)
/// belongs to this device and this teacher, so nothing is written for an upload that will fail.
async fn stored_sha(
    st: &Shared,
    rec: RecordingId,
    index: SegmentIndex,
    device: i64,
    owner: i64,
    claimed: &str,
) -> AppResult<Option<String>> {
    let claimed = claimed.to_string();
    st.db(move |c| {
        if was_deleted(c, rec)? {
            return Ok(Some(claimed));
        }
        check_claim(recording_claim(c, rec)?, device, owner)?;
        Ok(c.query_row(
            "SELECT sha256 FROM segments WHERE recording_id = ?1 AND idx = ?2",
            params![rec.to_string(), index],
            |r| r.get(0),
        )
        .optional()?)
    })
    .await
}

/// The same bytes again get the same receipt; different bytes for a stored segment are refused.
fn same_or_conflict(
    rec: RecordingId,
    index: SegmentIndex,
    stored: String,
    claimed: &str,
    bytes: u64,
) -> AppResult<Json<Receipt>> {
    if stored == claimed {
        return Ok(Json(Receipt {
            recording: rec,
            index,
            sha256: stored,
            bytes,
        }));
    }
    Err(AppError::Conflict(format!(
        "segment {index} of {rec} is already stored with different content"
    )))
}

async fn put_manifest(
    State(st): State<Shared>,
    DeviceAuth(device): DeviceAuth,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> AppResult<Json<ManifestReceipt>> {
    let rec = parse_id(&id)?;
    let mut manifest =
        Manifest::parse(&body).map_err(|e| AppError::Unprocessable(e.to_string()))?;
    if manifest.recording != rec {
        return Err(AppError::Unprocessable(format!(
            "manifest is for {} but was uploaded for {rec}",
            manifest.recording
        )));
    }
    let fp = manifest.recipient;
    let claim = manifest.claim.take();
    let (owner, claim) = st
        .vault(move |v| Ok((v.owner_of(&fp)?, claim.map(|c| v.keepable_claim(c)))))
        .await?;
    let owner = owner.ok_or_else(|| {
        AppError::Unprocessable("manifest names a key this server does not know".into())
    })?;
    manifest.claim = claim;
    // What is stored is what was parsed, as the claim stores it: nothing else the device sent.
    let json = String::from_utf8_lossy(&manifest.to_json()).into_owned();
    let device_id = device.id;
    let clean_stop = manifest.clean_stop;
    let started_at = lessonlens_proto::manifest::limits::plausible_start(manifest.started_at);
    let missing = st
        .db(move |c| {
            if was_deleted(c, rec)? {
                return Ok(Vec::new());
            }
            claim_recording(c, rec, device_id, owner, started_at)?;
            c.execute(
                "UPDATE recordings SET manifest = ?1, clean_stop = ?2, started_at = ?3 WHERE id = ?4",
                params![json, manifest.clean_stop, started_at, rec.to_string()],
            )?;
            let mut stmt = c.prepare("SELECT idx FROM segments WHERE recording_id = ?1")?;
            let present = stmt
                .query_map([rec.to_string()], |r| r.get::<_, SegmentIndex>(0))?
                .collect::<Result<_, _>>()?;
            Ok(manifest.missing_from(&present))
        })
        .await?;
    tracing::info!(
        recording = %rec,
        missing = lessonlens_proto::manifest::count(&missing),
        clean_stop,
        "manifest stored"
    );
    Ok(Json(ManifestReceipt {
        recording: rec,
        sha256: hex::encode(Sha256::digest(&body)),
        missing,
    }))
}

#[cfg(test)]
mod tests {
    /// Issue 14.7: blob writes during ingest ran blocking I/O on the async threads, so one device
    /// on a stalled disk held up every request. Here the "disk" is a pipe nobody reads for 2 s:
    /// the one async thread must go on serving meanwhile.
    #[test]
    fn a_stalled_disk_does_not_hold_up_the_async_threads() {
        use std::time::{Duration, Instant};
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (mut reader, writer) = std::io::pipe().unwrap();
        let incoming = crate::store::blobs::Incoming::writing_to(std::fs::File::from(
            std::os::fd::OwnedFd::from(writer),
        ));
        let started = Instant::now();
        // The pipe takes 64 KiB; the rest of the megabyte waits until this thread reads it.
        let drain = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(2));
            std::io::copy(&mut reader, &mut std::io::sink()).unwrap()
        });
        let (served_after, received) = rt.block_on(async {
            let body = futures_util::stream::iter([Ok::<_, std::io::Error>(
                axum::body::Bytes::from(vec![7u8; 1 << 20]),
            )]);
            let upload = tokio::spawn(super::receive(body, incoming, 2 << 20));
            tokio::time::sleep(Duration::from_millis(100)).await;
            let served_after = started.elapsed();
            (served_after, upload.await.unwrap().map(|i| i.len()))
        });
        assert!(
            served_after < Duration::from_secs(1),
            "the async thread was blocked for {served_after:?}"
        );
        assert_eq!(received.ok(), Some(1 << 20));
        drop(rt);
        assert_eq!(drain.join().unwrap(), 1 << 20);
    }
}
