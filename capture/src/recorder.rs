//! One recording, start to stop: look up the teacher's key, spool, capture, seal, upload.

use crate::config::Config;
use crate::pipeline::{self, Fragment};
use crate::sealer::{Input, Sealer};
use crate::spool::{RecordingMeta, Spool};
use crate::upload::{self, Client};
use anyhow::Context;
use lessonlens_proto::RecordingId;
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

pub fn record(
    config: &Config,
    opts: &RecordOptions,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Report> {
    let valid = !opts.teacher.is_empty()
        && opts
            .teacher
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if !valid {
        anyhow::bail!(
            "{:?} is not a username: use the teacher's lessonlens username (a-z, 0-9, . _ -)",
            opts.teacher
        );
    }
    pipeline::init()?;
    let client = Client::new(config)?;
    let spool = Spool::open(&config.spool_dir)?;
    check_budget(config, &spool)?;
    let recovered = spool.recover(None)?;
    if recovered > 0 {
        tracing::warn!(
            recovered,
            "found recordings interrupted by a crash; they will be uploaded as incomplete"
        );
    }
    let recipient = client
        .teacher_key(&opts.teacher)
        .with_context(|| format!("cannot start: no key for teacher {:?}", opts.teacher))?;

    let mut id = [0u8; 16];
    OsRng.unwrap_err().fill_bytes(&mut id);
    let recording = RecordingId::from_random_bytes(id);
    let started_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    spool.begin(&RecordingMeta {
        recording,
        recipient: recipient.to_hex(),
        started_at,
    })?;
    tracing::info!(%recording, teacher = %opts.teacher, "recording started");

    let (tx, rx) = mpsc::channel::<Input>();
    let frag_tx = tx.clone();
    let capture = pipeline::build(config, move |f: Fragment| {
        frag_tx.send(Input::Fragment(f)).is_ok()
    })?;
    let sealer = Sealer {
        spool: spool.clone(),
        recording,
        recipient,
        budget: config.spool_budget_bytes(),
        stop: stop.clone(),
    };
    let finished = Arc::new(AtomicBool::new(false));

    let (capture_result, seal_result, upload_result) = std::thread::scope(|s| {
        let sealer_thread = s.spawn(|| sealer.run(rx));
        let uploader = {
            let (client, spool, finished) = (&client, &spool, finished.clone());
            s.spawn(move || upload::run(client, spool, &finished, opts.drain_for))
        };
        let limit = opts
            .duration
            .map(|d| gst::ClockTime::from_nseconds(d.as_nanos() as u64));
        let capture_result =
            capture.run(|pos| stop.load(Ordering::Acquire) || limit.is_some_and(|l| pos >= l));
        let _ = tx.send(Input::Stop {
            clean: capture_result.is_ok(),
        });
        let seal_result = sealer_thread.join().expect("sealer thread panicked");
        let closed = spool.finish(recording, capture_result.is_ok() && seal_result.is_ok());
        finished.store(true, Ordering::Release);
        let upload_result = uploader.join().expect("uploader thread panicked");
        (
            capture_result.and(closed.map(|_| ())),
            seal_result,
            upload_result,
        )
    });
    capture_result?;
    let sealed = seal_result?;
    if let Err(e) = &upload_result {
        tracing::warn!(error = %format!("{e:#}"), "recording kept in the spool");
    }
    Ok(Report {
        recording,
        teacher: opts.teacher.clone(),
        segments: sealed.segments,
        media_seconds: sealed.media_us as f64 / 1e6,
        video_encoder: capture.video_encoder,
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
            "cannot start recording: spool budget full. The spool holds {} MB waiting for upload, the budget is {} MB, \
             and a lesson needs {} MB free ({} minutes). Nothing was deleted. Check the connection to the server \
             and run `lessonlens-capture drain`, or raise spool_budget_mb.",
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
    spool.recover(None)?;
    upload::run(&client, &spool, &AtomicBool::new(true), drain_for)
}
