//! The HTTPS client for the school server's device API, and the uploader that drains the spool.

use crate::config::Config;
use crate::identity::{self, Identity};
use crate::spool::{Pending, Spool};
use crate::status::Stats;
use anyhow::anyhow;
use lessonlens_proto::wire::{
    DeviceReport, ErrorBody, ManifestReceipt, Receipt, TeacherKey, SHA256_HEADER,
};
use lessonlens_proto::{PublicKey, RecordingId, SegmentIndex};
use rand_core::TryRngCore;
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Seconds since the Unix epoch.
/// Now, in Unix seconds (this device's clock).
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UploadError {
    #[error("the server cannot be reached: {0}")]
    Unreachable(String),
    #[error("the server refused the request ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("the server's receipt does not match what was sent (sent {sent}, server stored {stored}); the segment is kept")]
    ReceiptMismatch { sent: String, stored: String },
}

/// When the identity file in `dir` was last written, if it can be read.
fn identity_written(dir: &std::path::Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(dir.join(crate::identity::IDENTITY_FILE))
        .and_then(|m| m.modified())
        .ok()
}

pub struct Client {
    /// Replaced when the certificate is renewed, here or on disk by `lessonlens-capture renew`
    /// (the server retires the old certificate once the new one is used).
    agent: std::sync::RwLock<ureq::Agent>,
    /// When the identity file the agent was made from was last written.
    loaded: std::sync::Mutex<Option<std::time::SystemTime>>,
    base: String,
    identity_dir: std::path::PathBuf,
    /// Uploads at the same time (`upload_concurrency`).
    concurrency: usize,
    /// The device's enrolled name.
    pub name: String,
}

impl Client {
    /// A client that trusts only the school CA and presents this device's certificate (from
    /// `config.identity_dir`, made by `lessonlens-capture enroll`).
    pub fn new(config: &Config) -> anyhow::Result<Client> {
        // Before loading: a renewal on disk in between is then seen at the first request.
        let written = identity_written(&config.identity_dir);
        let identity = Identity::load(&config.identity_dir)?;
        if identity.not_after <= now() {
            tracing::error!(
                "this device's certificate has expired: the server will refuse it until the device enrols again with a new code from an admin"
            );
        }
        Ok(Client {
            loaded: std::sync::Mutex::new(written),
            agent: std::sync::RwLock::new(identity.agent()?),
            base: config.server_url.trim_end_matches('/').to_string(),
            identity_dir: config.identity_dir.clone(),
            concurrency: config.upload_concurrency,
            name: identity.name.clone(),
        })
    }

    /// The agent, made again first if the identity on disk changed since (renewed by the CLI).
    fn agent(&self) -> ureq::Agent {
        let written = identity_written(&self.identity_dir);
        let mut loaded = self.loaded.lock().expect("identity lock");
        if written.is_some() && written != *loaded {
            match Identity::load(&self.identity_dir).and_then(|i| i.agent()) {
                Ok(fresh) => {
                    *self.agent.write().expect("agent lock") = fresh;
                    *loaded = written;
                    tracing::info!("using the device certificate renewed on disk");
                }
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "cannot load the renewed device certificate")
                }
            }
        }
        drop(loaded);
        self.agent.read().expect("agent lock").clone()
    }

    /// Renews the device certificate if half its life has passed (or `force`); the next request
    /// uses the new one. Returns the new expiry if it renewed.
    pub fn renew_if_due(&self, force: bool) -> anyhow::Result<Option<i64>> {
        let identity = Identity::load(&self.identity_dir)?;
        if !force && !identity.renewal_due(now()) {
            return Ok(None);
        }
        let not_after = identity::renew(&self.identity_dir, &self.agent(), &self.base)?;
        // The next request loads the new identity (see `agent`).
        tracing::info!(not_after, "device certificate renewed");
        Ok(Some(not_after))
    }

    fn map_err(e: ureq::Error) -> UploadError {
        match e {
            ureq::Error::Status(status, resp) => {
                // The server's sentence may be shown on the device's screen: read at most 64 KB
                // of it, keep 300 characters, and no control characters.
                let message = serde_json::from_reader::<_, ErrorBody>(std::io::Read::take(
                    resp.into_reader(),
                    64 * 1024,
                ))
                .map(|b| {
                    b.error
                        .chars()
                        .filter(|c| !c.is_control())
                        .take(300)
                        .collect()
                })
                .unwrap_or_else(|_| "no explanation given".into());
                UploadError::Refused { status, message }
            }
            ureq::Error::Transport(t) => UploadError::Unreachable(t.to_string()),
        }
    }

    /// Opens the channel: one long request the server's events arrive on (see `channel`). Its
    /// agent has no overall time limit, only one for the silence between two reads.
    pub fn open_channel(&self) -> Result<Box<dyn std::io::BufRead + Send>, UploadError> {
        let agent = Identity::load(&self.identity_dir)
            .and_then(|i| i.channel_agent())
            .map_err(|e| UploadError::Unreachable(format!("{e:#}")))?;
        let response = agent
            .get(&format!("{}/api/device/v1/channel", self.base))
            .set("accept", "text/event-stream")
            .call()
            .map_err(Self::map_err)?;
        Ok(Box::new(std::io::BufReader::new(response.into_reader())))
    }

    /// Tells the server how remote command `id` went.
    pub fn answer(
        &self,
        id: &str,
        outcome: &lessonlens_proto::wire::CommandOutcome,
    ) -> Result<(), UploadError> {
        // Ids are the server's own (UUIDs); anything else is not sent back in a path.
        if !id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') || id.len() > 64 {
            return Err(UploadError::Refused {
                status: 400,
                message: "a command id that is not one".into(),
            });
        }
        self.agent()
            .post(&format!("{}/api/device/v1/commands/{id}", self.base))
            .send_json(outcome)
            .map_err(Self::map_err)?;
        Ok(())
    }

    /// Tells the server how booked lesson `id` went.
    pub fn booking_outcome(
        &self,
        id: i64,
        outcome: &lessonlens_proto::wire::BookingOutcome,
    ) -> Result<(), UploadError> {
        self.agent()
            .put(&format!(
                "{}/api/device/v1/bookings/{id}/outcome",
                self.base
            ))
            .send_json(outcome)
            .map_err(Self::map_err)?;
        Ok(())
    }

    /// Asks the server whose device code this is.
    pub fn identify(&self, code: &str) -> Result<Teacher, UploadError> {
        let url = format!("{}/api/device/v1/identify", self.base);
        let key: TeacherKey = self
            .agent()
            .post(&url)
            .send_json(serde_json::json!({ "code": code }))
            .map_err(Self::map_err)?
            .into_json()
            .map_err(|e| UploadError::Unreachable(e.to_string()))?;
        Teacher::from_wire(key)
    }

    pub fn teacher_key(&self, username: &str) -> Result<Teacher, UploadError> {
        self.fetch_key(&format!(
            "{}/api/device/v1/teachers/{}/key",
            self.base, username
        ))
    }

    /// GETs a public key from the device API.
    fn fetch_key(&self, url: &str) -> Result<Teacher, UploadError> {
        let key: TeacherKey = self
            .agent()
            .get(url)
            .call()
            .map_err(Self::map_err)?
            .into_json()
            .map_err(|e| UploadError::Unreachable(e.to_string()))?;
        Teacher::from_wire(key)
    }

    /// PUTs `body` and reads the receipt; succeeds only when the hash the server reports storing
    /// (`stored` picks it from the receipt) equals the hash of what was sent.
    fn put_checked<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        content_type: &str,
        body: &[u8],
        stored: impl Fn(&T) -> &str,
    ) -> Result<T, UploadError> {
        let sha = hex::encode(Sha256::digest(body));
        let receipt: T = self
            .agent()
            .put(url)
            .set(SHA256_HEADER, &sha)
            .set("content-type", content_type)
            .send_bytes(body)
            .map_err(Self::map_err)?
            .into_json()
            .map_err(|e| UploadError::Unreachable(e.to_string()))?;
        if stored(&receipt) != sha {
            return Err(UploadError::ReceiptMismatch {
                sent: sha,
                stored: stored(&receipt).to_string(),
            });
        }
        Ok(receipt)
    }

    pub fn put_segment(
        &self,
        rec: RecordingId,
        index: SegmentIndex,
        body: &[u8],
    ) -> Result<Receipt, UploadError> {
        let url = format!(
            "{}/api/device/v1/recordings/{rec}/segments/{index}",
            self.base
        );
        self.put_checked(&url, "application/octet-stream", body, |r: &Receipt| {
            &r.sha256
        })
    }

    /// The school's unassigned key, which this device seals to while the server is unreachable.
    /// Fetched while online and kept in the identity folder.
    pub fn refresh_unassigned_key(&self) -> Result<PublicKey, UploadError> {
        let pk = self
            .fetch_key(&format!("{}/api/device/v1/unassigned-key", self.base))?
            .public_key;
        if let Err(e) = identity::save_unassigned(&self.identity_dir, &pk) {
            tracing::warn!(error = %format!("{e:#}"), "cannot keep the school's unassigned key");
        }
        Ok(pk)
    }

    /// Asks the server for something small over mutual TLS and returns the time its answer
    /// carries (the `Date` header), for `doctor`'s server and clock checks.
    pub fn server_time(&self) -> Result<std::time::SystemTime, UploadError> {
        let url = format!("{}/api/device/v1/unassigned-key", self.base);
        let res = self.agent().get(&url).call().map_err(Self::map_err)?;
        res.header("date")
            .and_then(|d| httpdate::parse_http_date(d).ok())
            .ok_or_else(|| {
                UploadError::Unreachable("the server's answer has no Date header".into())
            })
    }

    /// The unassigned key kept from the last time the server was reachable.
    pub fn cached_unassigned_key(&self) -> Option<PublicKey> {
        identity::load_unassigned(&self.identity_dir)
    }

    /// Tells the server how this device is doing (see [`DeviceReport`]).
    pub fn report(&self, report: &DeviceReport) -> Result<(), UploadError> {
        let url = format!("{}/api/device/v1/status", self.base);
        self.agent()
            .put(&url)
            .send_json(report)
            .map_err(Self::map_err)?;
        Ok(())
    }

    pub fn put_manifest(
        &self,
        rec: RecordingId,
        body: &[u8],
    ) -> Result<ManifestReceipt, UploadError> {
        let url = format!("{}/api/device/v1/recordings/{rec}/manifest", self.base);
        self.put_checked(&url, "application/json", body, |r: &ManifestReceipt| {
            &r.sha256
        })
    }
}

/// Uploads everything pending, oldest first, up to `upload_concurrency` at a time. After the
/// first failure no further upload is begun (those under way finish), so the oldest segments
/// still go first on the next pass. Returns how many items were sent.
///
/// A recording's manifest is only listed once its segments are all gone from the spool, so it
/// never overtakes them.
pub fn drain_once(client: &Client, spool: &Spool, stats: &Stats) -> anyhow::Result<usize> {
    let items = spool.pending()?;
    if items.is_empty() {
        return Ok(0);
    }
    let next = AtomicUsize::new(0);
    let sent = AtomicUsize::new(0);
    let failed: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..client.concurrency.min(items.len()) {
            s.spawn(|| {
                while failed.lock().expect("upload lock").is_none() {
                    let Some(item) = items.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        return;
                    };
                    match send(client, spool, stats, item) {
                        Ok(true) => {
                            sent.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(false) => {}
                        Err(e) => {
                            failed.lock().expect("upload lock").get_or_insert(e);
                        }
                    }
                }
            });
        }
    });
    match failed.into_inner().expect("upload lock") {
        Some(e) => Err(e),
        None => Ok(sent.into_inner()),
    }
}

/// Uploads one item; false when the server refused it for good and it went to quarantine.
fn send(client: &Client, spool: &Spool, stats: &Stats, item: &Pending) -> anyhow::Result<bool> {
    match item {
        Pending::Segment {
            recording,
            index,
            path,
        } => {
            let (recording, index) = (*recording, *index);
            let body = std::fs::read(path)?;
            match client.put_segment(recording, index, &body) {
                Ok(_) => {}
                Err(UploadError::Refused { status, message })
                    if matches!(status, 409 | 413 | 422) =>
                {
                    let kept = spool.quarantine(recording, index, path)?;
                    stats.segment_done(recording, index);
                    tracing::error!(%recording, index, status, %message, kept = %kept.display(),
                        "the server refused this segment for good; it is kept in quarantine for support to inspect");
                    return Ok(false);
                }
                Err(e) => return Err(e.into()),
            }
            // Only now, with a receipt whose hash matches, may the device forget the segment.
            spool.remove(path)?;
            stats.uploaded.fetch_add(1, Ordering::Relaxed);
            stats.last_upload_at.store(now(), Ordering::Relaxed);
            let latency_ms = stats
                .segment_done(recording, index)
                .map(|d| d.as_secs_f64() * 1e3);
            tracing::debug!(%recording, index, latency_ms, "segment acknowledged");
        }
        Pending::Manifest { recording, path } => {
            let recording = *recording;
            let receipt = match client.put_manifest(recording, &std::fs::read(path)?) {
                Ok(r) => r,
                Err(UploadError::Refused { status, message })
                    if matches!(status, 409 | 413 | 422) =>
                {
                    let kept = spool.quarantine_recording(recording)?;
                    tracing::error!(%recording, status, %message, kept = %kept.display(),
                        "the server refused this recording's manifest for good; it is kept in quarantine for support to inspect");
                    return Ok(false);
                }
                Err(e) => return Err(e.into()),
            };
            spool.remove_recording(recording)?;
            if receipt.missing_spans.is_empty() {
                tracing::info!(%recording, "recording fully uploaded");
            } else {
                tracing::warn!(%recording, missing = ?receipt.missing_spans, "recording uploaded; the server is missing segments lost on this device");
            }
        }
    }
    Ok(true)
}

/// Drains the spool until `finished` is set and nothing is left, or until `drain_for` has passed
/// since `finished` was set. Backs off exponentially (with jitter) while uploads fail, but never
/// sleeps past that deadline.
pub fn run(
    client: &Client,
    spool: &Spool,
    finished: &AtomicBool,
    drain_for: Duration,
    stats: &Stats,
) -> anyhow::Result<()> {
    let mut backoff = Duration::from_millis(250);
    let mut finished_at: Option<Instant> = None;
    let mut renewal_checked: Option<Instant> = None;
    loop {
        // The certificate is checked at start and hourly; it renews at half its life.
        if renewal_checked.is_none_or(|t| t.elapsed() > Duration::from_secs(3600)) {
            renewal_checked = Some(Instant::now());
            if let Err(e) = client.renew_if_due(false) {
                tracing::warn!(error = %format!("{e:#}"), "could not renew the device certificate; will try again in an hour");
            }
        }
        let done = finished.load(Ordering::Acquire);
        if done && finished_at.is_none() {
            finished_at = Some(Instant::now());
        }
        // Read before draining, so a segment spooled meanwhile still wakes the wait below.
        let generation = spool.generation();
        let (pause, wake_on_change) = match drain_once(client, spool, stats) {
            // Sent something: a manifest may have become due (it is listed once its recording's
            // segments are gone), so look again at once.
            Ok(sent) if sent > 0 => {
                stats.server_reachable.store(true, Ordering::Relaxed);
                backoff = Duration::from_millis(250);
                continue;
            }
            // Nothing was sent, so nothing was learnt about the server (the reporter asks it).
            Ok(_) => {
                backoff = Duration::from_millis(250);
                // A listing error is retried like an upload error.
                if done && spool.pending().map(|p| p.is_empty()).unwrap_or(false) {
                    return Ok(());
                }
                // Idle: sleep until the sealer spools something (or a second passes).
                (Duration::from_secs(1), true)
            }
            Err(e) => {
                let unreachable = matches!(
                    e.downcast_ref::<UploadError>(),
                    Some(UploadError::Unreachable(_))
                );
                stats
                    .server_reachable
                    .store(!unreachable, Ordering::Relaxed);
                tracing::warn!(error = %format!("{e:#}"), retry_in_ms = backoff.as_millis() as u64, "upload failed; will retry");
                let jitter = Duration::from_millis(u64::from(
                    rand_core::RngCore::next_u32(&mut rand_core::OsRng.unwrap_err()) % 250,
                ));
                let pause = backoff + jitter;
                backoff = (backoff * 2).min(Duration::from_secs(30));
                (pause, false)
            }
        };
        // Sleep in short steps so a stop (finished) and the drain deadline are noticed at once.
        let wake = Instant::now() + pause;
        while Instant::now() < wake {
            if finished.load(Ordering::Acquire) && finished_at.is_none() {
                finished_at = Some(Instant::now());
            }
            if finished_at.is_some_and(|t| t.elapsed() > drain_for) {
                let left = spool.pending().map(|p| p.len()).unwrap_or(0);
                return Err(anyhow!(
                    "gave up waiting for uploads after {}s; {left} item(s) stay in the spool and will be sent later (or by `lessonlens-capture drain`)",
                    drain_for.as_secs()
                ));
            }
            let step =
                Duration::from_millis(50).min(wake.saturating_duration_since(Instant::now()));
            if wake_on_change {
                if spool.wait_changed(generation, step) {
                    break;
                }
            } else {
                std::thread::sleep(step);
            }
        }
    }
}

/// A teacher the server named: who they are and the key their lessons are sealed to.
pub struct Teacher {
    pub username: String,
    /// As the device's screen shows it (at most 100 characters).
    pub display_name: String,
    pub public_key: PublicKey,
}

impl Teacher {
    pub(crate) fn from_wire(key: TeacherKey) -> Result<Teacher, UploadError> {
        let public_key =
            PublicKey::from_hex(&key.public_key).map_err(|e| UploadError::Refused {
                status: 200,
                message: e.to_string(),
            })?;
        Ok(Teacher {
            username: key.username,
            // Shown on the screen: no control or text-direction characters, at most 100.
            display_name: key
                .display_name
                .chars()
                .filter(|c| {
                    !c.is_control()
                        && !matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
                })
                .take(100)
                .collect(),
            public_key,
        })
    }
}
