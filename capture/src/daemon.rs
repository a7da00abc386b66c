//! `lessonlens-capture run`: the long-running service. It uploads whatever the spool holds, all
//! day, and records when told to through a small HTTP control API on a loopback address (used by
//! the CLI, the touchscreen page and the record button).
//!
//! ```text
//! POST /v1/record/start {"teacher": "jsmith"}   start a recording (409 if one is running)
//! POST /v1/record/stop                           stop it (EOS: the last partial segment is kept)
//! GET  /v1/status                                state, teacher, elapsed, spool, server, encoder
//! GET  /metrics                                  the same as Prometheus text
//! ```
//! The API listens on loopback only (enforced by the config): on the appliance the only local
//! users are the kiosk page and the button service.

use crate::config::Config;
use crate::recorder::{self, Captured};
use crate::spool::Spool;
use crate::status::Stats;
use crate::upload::{self, Client};
use anyhow::Context;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use lessonlens_proto::RecordingId;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

struct Active {
    recording: RecordingId,
    teacher: String,
    started: Instant,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<anyhow::Result<Captured>>,
}

pub struct Daemon {
    config: Config,
    client: Client,
    spool: Spool,
    stats: Arc<Stats>,
    /// One recording at a time.
    current: Mutex<Option<Active>>,
    /// Set at shutdown so the uploader finishes.
    finished: AtomicBool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    /// "idle" or "recording".
    pub state: String,
    pub recording: Option<RecordingId>,
    pub teacher: Option<String>,
    pub elapsed_seconds: Option<u64>,
    pub segments_spooled: u64,
    pub segments_uploaded: u64,
    pub bytes_waiting: u64,
    pub budget_left_bytes: u64,
    pub server_reachable: bool,
    pub video_encoder: Option<String>,
}

#[derive(Debug, Deserialize)]
struct StartRequest {
    teacher: String,
}

/// Error text for the CLI and the touchscreen: what happened and what to do.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

impl Daemon {
    pub fn status(&self) -> Status {
        let current = self.current.lock().expect("daemon lock");
        let waiting = self.spool.usage_bytes();
        Status {
            state: if current.is_some() {
                "recording"
            } else {
                "idle"
            }
            .into(),
            recording: current.as_ref().map(|a| a.recording),
            teacher: current.as_ref().map(|a| a.teacher.clone()),
            elapsed_seconds: current.as_ref().map(|a| a.started.elapsed().as_secs()),
            segments_spooled: self.stats.spooled(),
            segments_uploaded: self.stats.uploaded(),
            bytes_waiting: waiting,
            budget_left_bytes: self.config.spool_budget_bytes().saturating_sub(waiting),
            server_reachable: self.stats.reachable(),
            video_encoder: self.stats.encoder().map(str::to_string),
        }
    }

    fn start(self: &Arc<Self>, teacher: &str) -> Result<RecordingId, ApiError> {
        let mut current = self.current.lock().expect("daemon lock");
        if let Some(a) = current.as_ref() {
            return Err(ApiError(
                StatusCode::CONFLICT,
                format!(
                    "a recording is already running (for {}, for {} s); stop it first",
                    a.teacher,
                    a.started.elapsed().as_secs()
                ),
            ));
        }
        let (recording, recipient) =
            recorder::begin(&self.config, &self.client, &self.spool, teacher)
                .map_err(|e| ApiError(StatusCode::UNPROCESSABLE_ENTITY, format!("{e:#}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        let d = self.clone();
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            recorder::capture(
                &d.config, &d.spool, recording, recipient, &stop2, None, &d.stats,
            )
        });
        *current = Some(Active {
            recording,
            teacher: teacher.to_string(),
            started: Instant::now(),
            stop,
            thread,
        });
        Ok(recording)
    }

    fn stop(&self) -> Result<serde_json::Value, ApiError> {
        let active = self
            .current
            .lock()
            .expect("daemon lock")
            .take()
            .ok_or_else(|| ApiError(StatusCode::CONFLICT, "no recording is running".into()))?;
        active.stop.store(true, Ordering::Release);
        let captured = active
            .thread
            .join()
            .map_err(|_| {
                ApiError(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the recording thread panicked".into(),
                )
            })?
            .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")))?;
        tracing::info!(recording = %active.recording, segments = captured.segments, "recording stopped");
        Ok(serde_json::json!({
            "recording": active.recording,
            "teacher": active.teacher,
            "segments": captured.segments,
            "media_seconds": captured.media_us as f64 / 1e6,
        }))
    }

    fn metrics(&self) -> String {
        let s = self.status();
        format!(
            "# HELP lessonlens_recording 1 while a lesson is being recorded.\n# TYPE lessonlens_recording gauge\nlessonlens_recording {}\n\
             # HELP lessonlens_segments_spooled_total Segments sealed into the spool.\n# TYPE lessonlens_segments_spooled_total counter\nlessonlens_segments_spooled_total {}\n\
             # HELP lessonlens_segments_uploaded_total Segments acknowledged by the server.\n# TYPE lessonlens_segments_uploaded_total counter\nlessonlens_segments_uploaded_total {}\n\
             # HELP lessonlens_spool_bytes Bytes waiting in the spool.\n# TYPE lessonlens_spool_bytes gauge\nlessonlens_spool_bytes {}\n\
             # HELP lessonlens_spool_budget_left_bytes Spool budget left.\n# TYPE lessonlens_spool_budget_left_bytes gauge\nlessonlens_spool_budget_left_bytes {}\n\
             # HELP lessonlens_server_reachable 1 when the last upload reached the server.\n# TYPE lessonlens_server_reachable gauge\nlessonlens_server_reachable {}\n",
            u8::from(s.state == "recording"),
            s.segments_spooled,
            s.segments_uploaded,
            s.bytes_waiting,
            s.budget_left_bytes,
            u8::from(s.server_reachable),
        )
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}

fn router(d: Arc<Daemon>) -> Router {
    Router::new()
        .route(
            "/v1/record/start",
            post(
                |State(d): State<Arc<Daemon>>, Json(req): Json<StartRequest>| async move {
                    blocking(move || d.start(&req.teacher))
                        .await
                        .map(|r| Json(serde_json::json!({ "recording": r })))
                },
            ),
        )
        .route(
            "/v1/record/stop",
            post(|State(d): State<Arc<Daemon>>| async move {
                blocking(move || d.stop()).await.map(Json)
            }),
        )
        .route(
            "/v1/status",
            get(|State(d): State<Arc<Daemon>>| async move { Json(d.status()) }),
        )
        .route(
            "/metrics",
            get(|State(d): State<Arc<Daemon>>| async move { d.metrics() }),
        )
        .with_state(d)
}

/// Runs the daemon until `shutdown` is set (SIGTERM/SIGINT): a running recording is stopped with
/// EOS and kept, and the uploader gets a few seconds to send what it can.
pub fn run(config: Config, shutdown: Arc<AtomicBool>) -> anyhow::Result<()> {
    crate::pipeline::init()?;
    let client = Client::new(&config)?;
    let spool = Spool::open(&config.spool_dir)?;
    let recovered = spool.recover(None)?;
    if recovered > 0 {
        tracing::warn!(
            recovered,
            "found recordings interrupted by a crash; they will be uploaded as incomplete"
        );
    }
    let listener = std::net::TcpListener::bind(config.control_addr).with_context(|| {
        format!(
            "cannot listen on {} for the control API (in use?)",
            config.control_addr
        )
    })?;
    listener.set_nonblocking(true)?;
    println!("control API on http://{}", listener.local_addr()?);
    let d = Arc::new(Daemon {
        config,
        client,
        spool,
        stats: Arc::new(Stats::default()),
        current: Mutex::new(None),
        finished: AtomicBool::new(false),
    });
    let uploader = {
        let d = d.clone();
        std::thread::spawn(move || {
            upload::run(
                &d.client,
                &d.spool,
                &d.finished,
                Duration::from_secs(5),
                &d.stats,
            )
        })
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let wait = async move {
            while !shutdown.load(Ordering::Acquire) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        axum::serve(listener, router(d.clone()))
            .with_graceful_shutdown(wait)
            .await
    })?;
    tracing::info!("shutting down");
    if d.current.lock().expect("daemon lock").is_some() {
        if let Err(ApiError(_, e)) = d.stop() {
            tracing::error!(error = %e, "the recording did not stop cleanly");
        }
    }
    d.finished.store(true, Ordering::Release);
    if let Err(e) = uploader.join().expect("uploader thread panicked") {
        tracing::warn!(error = %format!("{e:#}"), "uploads continue at the next start");
    }
    Ok(())
}
