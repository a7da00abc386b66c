//! The device API: what a classroom device may do, and nothing more: fetch a teacher's public key,
//! upload sealed segments, upload the recording's manifest, renew its certificate. It is served
//! on its own listener, which requires a client certificate from the school CA; enrollment, which
//! gives a device its first certificate, is the one device route on the web listener.

use super::Route;
use crate::domain::clock;
use crate::domain::people::Role;
use crate::http::channels::Push;
use crate::http::error::{AppError, AppResult};
use crate::http::state::{ClientIp, DeviceAuth, Shared};
use crate::ops::ingest;
use crate::store::accounts;
use crate::store::blobs::Incoming;
use crate::store::devices::{self, Device};
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post, put};
use axum::{Extension, Json};
use futures_util::StreamExt;
use lessonlens_proto::wire::{
    DeviceCertificate, DeviceReport, EnrollRequest, ManifestReceipt, Receipt, RenewRequest,
    TeacherKey, SHA256_HEADER,
};
use lessonlens_proto::{RecordingId, SegmentIndex};

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
        ("GET", "/api/device/v1/channel", get(channel)),
        ("POST", "/api/device/v1/commands/{id}", post(answer)),
        (
            "PUT",
            "/api/device/v1/bookings/{id}/outcome",
            put(booking_outcome),
        ),
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
    let st2 = st.clone();
    let receipt = tokio::task::spawn_blocking(move || {
        ingest::store_segment(
            &st2.db,
            &st2.vault,
            st2.blobs.as_ref(),
            device.id,
            rec,
            index,
            &claimed,
            incoming,
        )
    })
    .await
    .map_err(|e| AppError::Internal(e.into()))??;
    tracing::info!(recording = %rec, index, bytes = receipt.bytes, device = %device.name, "segment stored");
    st.metrics.receipt(receipt.bytes);
    Ok(Json(receipt))
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

async fn put_manifest(
    State(st): State<Shared>,
    DeviceAuth(device): DeviceAuth,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> AppResult<Json<ManifestReceipt>> {
    let rec = parse_id(&id)?;
    let receipt = tokio::task::spawn_blocking(move || {
        ingest::store_manifest(&st.db, &st.vault, device.id, rec, &body)
    })
    .await
    .map_err(|e| AppError::Internal(e.into()))??;
    Ok(Json(receipt))
}

/// The device's live channel (see [`crate::http::channels`]): server-sent events, `hello` first
/// (the server's clock, which the device compares with its own), then each `command` for it; a
/// keep-alive comment every 15 s. Closing it takes the device off the list of open channels.
async fn channel(
    State(st): State<Shared>,
    DeviceAuth(device): DeviceAuth,
) -> axum::response::sse::Sse<
    impl futures_util::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>,
> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let (open, commands) = st.channels.connect(device.id);
    tracing::info!(device = %device.name, "channel open");
    let hello = Event::default()
        .event("hello")
        .json_data(lessonlens_proto::wire::ChannelHello {
            server_time: clock::now(),
        })
        .ok();
    // Its bookings follow the hello; then whatever is pushed.
    let bookings = super::bookings::for_device(&st, device.id)
        .await
        .ok()
        .and_then(|b| Event::default().event("bookings").json_data(b).ok());
    let pushed = futures_util::stream::unfold((commands, open), |(mut rx, open)| async move {
        let event = match rx.recv().await? {
            Push::Command(c) => Event::default().event("command").json_data(&c),
            Push::Bookings(b) => Event::default().event("bookings").json_data(&b),
        }
        .ok()?;
        Some((Ok(event), (rx, open)))
    });
    Sse::new(futures_util::stream::iter(hello.into_iter().chain(bookings).map(Ok)).chain(pushed))
        .keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(15)))
}

/// A device says how a command sent over its channel went. Only the device it was sent to may.
async fn answer(
    State(st): State<Shared>,
    DeviceAuth(device): DeviceAuth,
    Path(id): Path<String>,
    Json(mut outcome): Json<lessonlens_proto::wire::CommandOutcome>,
) -> AppResult<Json<serde_json::Value>> {
    // Shown to a teacher in the web app: one line, at most 300 characters.
    outcome.error = outcome
        .error
        .map(|e| e.chars().filter(|c| !c.is_control()).take(300).collect());
    if !st.channels.answer(device.id, &id, outcome) {
        return Err(AppError::NotFound);
    }
    Ok(Json(serde_json::json!({ "answered": true })))
}

/// A device says how a booked lesson in its room went (recorded, with the recording; or not).
async fn booking_outcome(
    State(st): State<Shared>,
    DeviceAuth(device): DeviceAuth,
    Path(id): Path<i64>,
    Json(outcome): Json<lessonlens_proto::wire::BookingOutcome>,
) -> AppResult<Json<serde_json::Value>> {
    let recording = outcome.recording.map(|r| r.to_string());
    let kept = st
        .db(move |c| {
            Ok(crate::store::bookings::set_outcome(
                c,
                id,
                device.id,
                recording.as_deref(),
                clock::now(),
            )?)
        })
        .await?;
    if !kept {
        return Err(AppError::NotFound);
    }
    Ok(Json(serde_json::json!({ "kept": true })))
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
