//! One recording, start to stop: look up the teacher's key, spool, capture, seal, upload.

use crate::config::Config;
use crate::live::Live;
use crate::pipeline::{self, Fragment};
use crate::sealer::{Input, Sealed, Sealer};
use crate::spool::{RecordingMeta, Spool};
use crate::status::Stats;
use crate::upload::{self, Client, UploadError};
use anyhow::Context;
use lessonlens_proto::{PublicKey, RecordingId};
use rand_core::{OsRng, RngCore, TryRngCore};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

pub struct RecordOptions {
    pub teacher: String,
    /// Stop after this much media; `None` records until `stop` is set.
    pub duration: Option<Duration>,
    /// How long to keep uploading after the recording stopped before giving up (the spool keeps
    /// the rest for the next run).
    pub drain_for: Duration,
}

/// Printed as one JSON line when a recording ends, for people and scripts.
#[derive(Debug, Serialize)]
pub struct Report {
    pub recording: RecordingId,
    pub teacher: String,
    pub segments: u32,
    pub media_seconds: f64,
    pub video_encoder: &'static str,
    pub uploaded: bool,
}

/// How the teacher says who they are when starting a recording.
#[derive(Clone)]
pub enum Who {
    /// Their lessonlens username (admin tools, demos).
    Username(String),
    /// The short code they type on the device; checked by the server.
    Code(zeroize::Zeroizing<String>),
    /// Started from the web app: the server sent the teacher's key over the device's channel,
    /// with who pressed Record (`by`, for the screen).
    Remote {
        teacher: lessonlens_proto::wire::TeacherKey,
        by: String,
    },
    /// A booked lesson, started by a tap or the button: sealed to the booked teacher's key, which
    /// the device keeps with the booking (so it also works while the server is out of reach).
    Booked(lessonlens_proto::wire::Booking),
}

/// Checks the spool budget, finds out whose recording this is (and their public key) and opens
/// the recording in the spool. Nothing is captured yet.
pub fn begin(config: &Config, client: &Client, spool: &Spool, who: &Who) -> anyhow::Result<Begun> {
    if matches!(who, Who::Username(_)) && !config.demo_mode {
        anyhow::bail!(
            "starting a recording by username is turned off on this device: the teacher types their code on the \
             device's screen (or use `record start --code`). For a demo device, set demo_mode = true in its config"
        );
    }
    check_budget(config, spool)?;
    let mut id = [0u8; 16];
    OsRng.unwrap_err().fill_bytes(&mut id);
    let recording = RecordingId::from_random_bytes(id);
    let mut claim = None;
    let mut offline = false;
    let (teacher, display_name, recipient) = match who {
        Who::Username(name) => {
            if !valid_username(name) {
                anyhow::bail!("{name:?} is not a username: use the teacher's lessonlens username (a-z, 0-9, . _ -)");
            }
            let found = client
                .teacher_key(name)
                .with_context(|| format!("cannot start: no key for teacher {name:?}"))?;
            if found.username != *name {
                anyhow::bail!("the server answered for {:?} when asked for {name:?}", found.username);
            }
            (found.username, found.display_name, found.public_key)
        }
        Who::Remote { teacher, .. } | Who::Booked(lessonlens_proto::wire::Booking { teacher, .. }) => {
            let found = crate::upload::Teacher::from_wire(teacher.clone())
                .map_err(|e| anyhow::anyhow!("the server sent a teacher's key that is not one: {e}"))?;
            if !valid_username(&found.username) {
                anyhow::bail!("the server named a teacher with an impossible username; the recording was not started");
            }
            (found.username, found.display_name, found.public_key)
        }
        // The username the server names goes into the spool's log lines and status: it is held
        // to what a username may be.
        Who::Code(code) => match client.identify(code) {
            Ok(found) if valid_username(&found.username) => {
                (found.username, found.display_name, found.public_key)
            }
            Ok(_) => anyhow::bail!("the server named a teacher with an impossible username; the recording was not started"),
            // Offline: record to the school's unassigned key; the teacher claims the lesson
            // later with the same code, which is kept only sealed to that key (the server opens
            // it; this device cannot).
            Err(UploadError::Unreachable(why)) => {
                if !(4..=8).contains(&code.len()) || !code.bytes().all(|b| b.is_ascii_digit()) {
                    anyhow::bail!("a code is 4 to 8 digits");
                }
                let pk = client.cached_unassigned_key().with_context(|| {
                    format!("cannot start: the server cannot be reached ({why}) and this device has no school key to record to yet")
                })?;
                tracing::warn!(%recording, "the server cannot be reached: recording to the school's unassigned key");
                claim = Some(lessonlens_proto::manifest::seal_claim(
                    &pk,
                    recording,
                    code,
                    &mut rand_core::TryRngCore::unwrap_err(rand_core::OsRng),
                )?);
                offline = true;
                (
                    "unassigned (offline: claim it in the web app with your code)".to_string(),
                    String::new(),
                    pk,
                )
            }
            Err(e) => return Err(e).context("cannot start: the code was not accepted"),
        },
    };
    let started_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    spool.begin(&RecordingMeta {
        recording,
        recipient: recipient.to_hex(),
        started_at,
        claim,
    })?;
    tracing::info!(%recording, %teacher, "recording started");
    Ok(Begun {
        recording,
        teacher,
        display_name,
        recipient,
        offline,
    })
}

/// What a lessonlens username may be: 1 to 64 of a-z, 0-9, `.`, `_` and `-`.
pub(crate) fn valid_username(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

/// A recording opened in the spool by [`begin`].
pub struct Begun {
    pub recording: RecordingId,
    /// The teacher's username (or, offline, a note that the lesson waits to be claimed).
    pub teacher: String,
    /// The teacher's name as the screen shows it; empty when offline.
    pub display_name: String,
    pub recipient: PublicKey,
    /// The server could not be reached: sealed to the school's unassigned key, to be claimed.
    pub offline: bool,
}

/// What one capture produced.
pub struct Captured {
    pub segments: u32,
    pub media_us: u64,
    pub video_encoder: &'static str,
}

/// Captures until `stop` is set or `limit` of media is recorded, sealing and spooling every
/// fragment, then writes the manifest. Uploading is someone else's job.
///
/// While `pause` is set nothing is recorded: the pipeline is ended (its last fragment kept) and
/// built anew on resume. The new pipeline's init segment takes the next index, which the server
/// turns into a discontinuity in the playlist, so the pause shows as a gap, not as frozen video.
#[allow(clippy::too_many_arguments)]
pub fn capture(
    config: &Config,
    spool: &Spool,
    recording: RecordingId,
    recipient: PublicKey,
    controls: &Controls,
    limit: Option<Duration>,
    stats: &Arc<Stats>,
    live: &Arc<Live>,
) -> anyhow::Result<Captured> {
    let (tx, rx) = mpsc::channel::<Input>();
    let sealer = Sealer {
        spool: spool.clone(),
        recording,
        recipient,
        budget: config.spool_budget_bytes(),
        stop: controls.stop.clone(),
        stats: stats.clone(),
        live: live.clone(),
    };
    let limit = limit.map(|d| gst::ClockTime::from_nseconds(d.as_nanos() as u64));
    let stopped = || controls.stop.load(Ordering::Acquire);
    let talk = config.talk.enabled.then(|| {
        crate::talk::Listener::new(pipeline::microphones(config).len(), config.talk.balance_db)
    });
    let (capture_result, seal_result) = std::thread::scope(|s| {
        let sealer_thread = s.spawn(|| sealer.run(rx));
        let capture_result = (|| -> anyhow::Result<&'static str> {
            loop {
                let frag_tx = tx.clone();
                let capture = pipeline::build(config, live, talk.as_ref(), move |f: Fragment| {
                    frag_tx.send(Input::Fragment(f)).is_ok()
                })?;
                stats.set_encoder(capture.video_encoder);
                let limit_reached = std::cell::Cell::new(false);
                let pause_seen = std::cell::Cell::new(false);
                let ran = capture.run(|pos| {
                    controls.running.store(true, Ordering::Release);
                    limit_reached.set(limit.is_some_and(|l| pos >= l));
                    pause_seen.set(pause_seen.get() || controls.paused());
                    stopped() || pause_seen.get() || limit_reached.get()
                });
                if let Some(talk) = &talk {
                    talk.lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .end_part();
                }
                ran?;
                // A stop, the time limit or a source that ended by itself ends the recording. A
                // pause (even one already undone by a quick resume) records on with a new pipeline.
                if stopped() || limit_reached.get() || !pause_seen.get() {
                    return Ok(capture.video_encoder);
                }
                tracing::info!(%recording, "paused: nothing is being recorded");
                live.restart_watch();
                while controls.paused() && !stopped() {
                    std::thread::sleep(Duration::from_millis(50));
                }
                if stopped() {
                    return Ok(capture.video_encoder);
                }
                live.restart_watch();
                tracing::info!(%recording, "resumed");
            }
        })();
        // Talk time is sealed with the lesson as it ends (a lesson cut short by a crash has none).
        if let Some(talk) = talk.as_ref().and_then(|t| {
            t.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .talk()
        }) {
            if let Ok(json) = serde_json::to_vec(&talk) {
                let _ = tx.send(Input::Fragment(Fragment::Talk(json)));
            }
        }
        let _ = tx.send(Input::Stop {
            clean: capture_result.is_ok(),
        });
        (
            capture_result,
            sealer_thread.join().expect("sealer thread panicked"),
        )
    });
    // A pipeline that failed before it delivered anything (camera missing or busy) recorded
    // nothing: the empty recording is dropped rather than shown to the teacher as a lesson.
    // `remove_recording` keeps the folder if any segment is in it.
    if let (Err(e), Ok(Sealed { segments: 0, .. })) = (&capture_result, &seal_result) {
        if spool.remove_recording(recording).is_ok() {
            return Err(anyhow::anyhow!("{e:#}")).context("nothing was recorded");
        }
    }
    // Close the recording whatever happened, so it is uploaded (as incomplete if it failed).
    spool.finish(recording, capture_result.is_ok() && seal_result.is_ok())?;
    let video_encoder = capture_result?;
    let sealed = seal_result?;
    Ok(Captured {
        segments: sealed.segments,
        media_us: sealed.media_us,
        video_encoder,
    })
}

/// How a running recording is told to stop, pause or resume.
#[derive(Clone, Default)]
pub struct Controls {
    pub stop: Arc<AtomicBool>,
    pub pause: Arc<AtomicBool>,
    /// Set by `capture` once the first pipeline is playing (the camera and microphone opened).
    pub running: Arc<AtomicBool>,
}

impl Controls {
    pub fn paused(&self) -> bool {
        self.pause.load(Ordering::Acquire)
    }
}

/// A whole recording without the daemon: record, then upload, then return.
pub fn record(
    config: &Config,
    opts: &RecordOptions,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Report> {
    pipeline::init()?;
    let client = Client::new(config)?;
    let spool = Spool::open(&config.spool_dir)?;
    // Recordings left open by a crash are closed as incomplete and queued (logged one by one).
    spool.recover()?;
    let Begun {
        recording,
        recipient,
        ..
    } = begin(
        config,
        &client,
        &spool,
        &Who::Username(opts.teacher.clone()),
    )?;
    let stats = Arc::new(Stats::default());
    let finished = AtomicBool::new(false);
    let (captured, upload_result) = std::thread::scope(|s| {
        let uploader = s.spawn(|| upload::run(&client, &spool, &finished, opts.drain_for, &stats));
        let controls = Controls {
            stop,
            ..Controls::default()
        };
        let live = Arc::new(Live::new(
            &config.watchdog,
            pipeline::microphones(config).len(),
            tokio::sync::watch::channel(0).0,
            tokio::sync::watch::channel(0).0,
        ));
        let captured = capture(
            config,
            &spool,
            recording,
            recipient,
            &controls,
            opts.duration,
            &stats,
            &live,
        );
        finished.store(true, Ordering::Release);
        (captured, uploader.join().expect("uploader thread panicked"))
    });
    let captured = captured?;
    if let Err(e) = &upload_result {
        tracing::warn!(error = %format!("{e:#}"), "recording kept in the spool");
    }
    Ok(Report {
        recording,
        teacher: opts.teacher.clone(),
        segments: captured.segments,
        media_seconds: captured.media_us as f64 / 1e6,
        video_encoder: captured.video_encoder,
        uploaded: upload_result.is_ok(),
    })
}

/// Refuses to start when the spool could not hold `reserve_minutes` more of recording. Nothing
/// already in the spool is touched: it waits for the server.
fn check_budget(config: &Config, spool: &Spool) -> anyhow::Result<()> {
    let used = spool.usage_bytes();
    let need = config.bytes_per_minute() * u64::from(config.reserve_minutes);
    let budget = config.spool_budget_bytes();
    if used + need > budget {
        anyhow::bail!(
            "this device is full of lessons waiting to upload, so a new one cannot start. Nothing was deleted: they \
             upload by themselves once the school server can be reached. Tell the school's IT technician. \
             (For the technician: cannot start recording: spool budget full. The spool holds {} MB waiting for upload, \
             the budget is {} MB, and a lesson needs {} MB free ({} minutes). Check the connection to the server \
             and run `lessonlens-capture drain`, or raise spool_budget_mb.)",
            used / 1_000_000,
            budget / 1_000_000,
            need.div_ceil(1_000_000),
            config.reserve_minutes
        );
    }
    Ok(())
}

/// Uploads what the spool holds (closing crashed recordings as incomplete first) and returns.
pub fn drain(config: &Config, drain_for: Duration) -> anyhow::Result<()> {
    let client = Client::new(config)?;
    let spool = Spool::open(&config.spool_dir)?;
    spool.recover()?;
    upload::run(
        &client,
        &spool,
        &AtomicBool::new(true),
        drain_for,
        &Stats::default(),
    )
}
