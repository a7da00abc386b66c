//! `lessonlens-capture run`: the long-running service. It uploads whatever the spool holds, all
//! day, and records when told to through a small HTTP control API on a loopback address (used by
//! the CLI, the touchscreen page and the record button).
//!
//! ```text
//! POST /v1/record/start {"teacher": "jsmith"}   start a recording (409 if one is running)
//! POST /v1/record/stop                           stop it (EOS: the last partial segment is kept)
//! POST /v1/record/pause, /v1/record/resume       privacy pause: nothing is recorded meanwhile
//! GET  /v1/status                                state, teacher, elapsed, spool, server, encoder
//! GET  /metrics                                  the same as Prometheus text
//! ```
//! The API listens on loopback only (enforced by the config): on the appliance the only local
//! users are the kiosk page and the button service.

use crate::config::Config;
use crate::recorder::{self, Captured, Controls, Who};
use crate::spool::Spool;
use crate::status::Stats;
use crate::upload::{self, Client};
use anyhow::Context;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use lessonlens_proto::wire::DeviceReport;
use lessonlens_proto::RecordingId;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

struct Active {
    recording: RecordingId,
    teacher: String,
    started: Instant,
    controls: Controls,
    /// Set once a stop was asked for; the thread is flushing the last segment.
    stopping: bool,
    /// Set by the recording thread just before it returns, so `reap` can join it at once.
    ended: Arc<AtomicBool>,
    thread: JoinHandle<anyhow::Result<Captured>>,
}

/// What the one recording slot holds. `Starting` keeps a second start out while the first one
/// talks to the server, without holding the lock over the network.
enum Slot {
    Idle,
    Starting,
    Active(Active),
}

pub struct Daemon {
    config: Config,
    client: Client,
    spool: Spool,
    stats: Arc<Stats>,
    /// One recording at a time.
    current: Mutex<Slot>,
    /// Why the last recording ended by itself (camera gone, disk full, budget), for `status`.
    last_error: Mutex<Option<String>>,
    /// The `doctor` checks, run once at start (see `run`).
    checks: Mutex<Vec<crate::doctor::Check>>,
    /// Set at shutdown so the uploader finishes.
    finished: AtomicBool,
    /// Wakes the reporter early (a recording started, paused or stopped; shutdown).
    report_now: (Mutex<bool>, Condvar),
}

/// How often the device reports to the server when nothing changes.
const REPORT_EVERY: Duration = Duration::from_secs(60);

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
    /// Why the last recording ended on its own, if it did.
    pub last_error: Option<String>,
    /// The `doctor` checks run at start (empty until they finish).
    pub checks: Vec<crate::doctor::Check>,
}

/// Start by username or by the teacher's device code (exactly one).
#[derive(Deserialize)]
struct StartRequest {
    teacher: Option<String>,
    code: Option<zeroize::Zeroizing<String>>,
}

/// Error text for the CLI and the touchscreen: what happened and what to do.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

impl Daemon {
    /// Collects a recording thread that ended by itself (pipeline error, disk full, budget), so
    /// the slot does not claim "recording" forever.
    fn reap(&self, slot: &mut Slot) {
        let ended = matches!(slot, Slot::Active(a)
            if !a.stopping && (a.ended.load(Ordering::Acquire) || a.thread.is_finished()));
        if !ended {
            return;
        }
        let Slot::Active(a) = std::mem::replace(slot, Slot::Idle) else {
            return;
        };
        let why = match a.thread.join() {
            Ok(Ok(c)) => format!(
                "recording {} ended by itself after {} segment(s) (spool budget reached?)",
                a.recording, c.segments
            ),
            Ok(Err(e)) => format!("recording {} ended: {e:#}", a.recording),
            Err(_) => format!(
                "recording {} ended: the recording thread panicked",
                a.recording
            ),
        };
        tracing::error!(reason = %why, "recording ended without a stop");
        *self.last_error.lock().expect("daemon lock") = Some(why);
    }

    pub fn status(&self) -> Status {
        let mut slot = self.current.lock().expect("daemon lock");
        self.reap(&mut slot);
        let waiting = self.spool.usage_bytes();
        let active = match &*slot {
            Slot::Active(a) => Some(a),
            _ => None,
        };
        let state = match &*slot {
            Slot::Idle => "idle",
            Slot::Starting => "starting",
            Slot::Active(a) if a.stopping => "stopping",
            Slot::Active(a) if a.controls.paused() => "paused",
            Slot::Active(_) => "recording",
        };
        Status {
            state: state.into(),
            recording: active.map(|a| a.recording),
            teacher: active.map(|a| a.teacher.clone()),
            elapsed_seconds: active.map(|a| a.started.elapsed().as_secs()),
            segments_spooled: self.stats.spooled(),
            segments_uploaded: self.stats.uploaded(),
            bytes_waiting: waiting,
            budget_left_bytes: self.config.spool_budget_bytes().saturating_sub(waiting),
            server_reachable: self.stats.reachable(),
            video_encoder: self.stats.encoder().map(str::to_string),
            last_error: self.last_error.lock().expect("daemon lock").clone(),
            checks: self.checks.lock().expect("daemon lock").clone(),
        }
    }

    /// What the server's device list shows: no teacher, no recording id.
    fn report(&self) -> DeviceReport {
        let s = self.status();
        DeviceReport {
            version: env!("CARGO_PKG_VERSION").into(),
            state: s.state,
            bytes_waiting: s.bytes_waiting,
            last_upload_at: self.stats.last_upload_at(),
            video_encoder: s.video_encoder,
            last_error: s.last_error,
        }
    }

    fn wake_reporter(&self) {
        let (flag, cv) = &self.report_now;
        *flag.lock().expect("report lock") = true;
        cv.notify_one();
    }

    /// Reports to the server every [`REPORT_EVERY`] and whenever woken, until shutdown. A report
    /// that does not arrive is not retried: the next one says the same and more.
    fn run_reporter(&self) {
        let (flag, cv) = &self.report_now;
        while !self.finished.load(Ordering::Acquire) {
            if let Err(e) = self.client.refresh_unassigned_key() {
                tracing::debug!(error = %e, "could not refresh the school's unassigned key");
            }
            if let Err(e) = self.client.report(&self.report()) {
                tracing::debug!(error = %e, "could not report to the server");
            }
            let woken = flag.lock().expect("report lock");
            let (mut woken, _) = cv
                .wait_timeout_while(woken, REPORT_EVERY, |w| !*w)
                .expect("report lock");
            *woken = false;
        }
    }

    fn start(self: &Arc<Self>, who: &Who) -> Result<RecordingId, ApiError> {
        {
            let mut slot = self.current.lock().expect("daemon lock");
            self.reap(&mut slot);
            match &*slot {
                Slot::Idle => *slot = Slot::Starting,
                Slot::Starting => {
                    return Err(ApiError(
                        StatusCode::CONFLICT,
                        "a recording is already starting".into(),
                    ))
                }
                Slot::Active(a) => {
                    return Err(ApiError(
                        StatusCode::CONFLICT,
                        format!(
                            "a recording is already running (for {}, for {} s); stop it first",
                            a.teacher,
                            a.started.elapsed().as_secs()
                        ),
                    ))
                }
            }
        }
        let begun = recorder::begin(&self.config, &self.client, &self.spool, who);
        let mut slot = self.current.lock().expect("daemon lock");
        let (recording, teacher, recipient) = match begun {
            Ok(b) => b,
            Err(e) => {
                *slot = Slot::Idle;
                return Err(ApiError(StatusCode::UNPROCESSABLE_ENTITY, format!("{e:#}")));
            }
        };
        let controls = Controls::default();
        let ended = Arc::new(AtomicBool::new(false));
        let (d, c2, e2) = (self.clone(), controls.clone(), ended.clone());
        let (running, thread_ended) = (controls.running.clone(), ended.clone());
        let thread = std::thread::spawn(move || {
            let result = recorder::capture(
                &d.config, &d.spool, recording, recipient, &c2, None, &d.stats,
            );
            // A recording that ends by itself (camera gone, disk full) is told to the server at
            // once: the reporter's status reaps this thread and says why.
            e2.store(true, Ordering::Release);
            d.wake_reporter();
            result
        });
        *self.last_error.lock().expect("daemon lock") = None;
        *slot = Slot::Active(Active {
            recording,
            teacher,
            started: Instant::now(),
            controls,
            stopping: false,
            ended,
            thread,
        });
        drop(slot);
        self.wake_reporter();
        // Answer once the camera and microphone are open, so a start that cannot record (device
        // missing or busy) is refused with the reason instead of a light that goes out again.
        let deadline = Instant::now() + Duration::from_secs(15);
        while !running.load(Ordering::Acquire) && Instant::now() < deadline {
            if thread_ended.load(Ordering::Acquire) {
                let mut slot = self.current.lock().expect("daemon lock");
                self.reap(&mut slot);
                let why = self.last_error.lock().expect("daemon lock").clone();
                return Err(ApiError(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    why.unwrap_or_else(|| "the recording ended at once".into()),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(recording)
    }

    /// Privacy pause (`true`) or resume (`false`). Nothing is recorded while paused; the
    /// recording stays open and the pause shows in the playlist as a discontinuity.
    fn set_paused(&self, paused: bool) -> Result<serde_json::Value, ApiError> {
        let mut slot = self.current.lock().expect("daemon lock");
        self.reap(&mut slot);
        match &*slot {
            Slot::Active(a) if !a.stopping => {
                if a.controls.pause.swap(paused, Ordering::AcqRel) == paused {
                    let already = if paused {
                        "already paused"
                    } else {
                        "not paused"
                    };
                    return Err(ApiError(
                        StatusCode::CONFLICT,
                        format!("the recording is {already}"),
                    ));
                }
                tracing::info!(recording = %a.recording, paused, "privacy pause changed");
                let answer = serde_json::json!({ "recording": a.recording, "paused": paused });
                drop(slot);
                self.wake_reporter();
                Ok(answer)
            }
            _ => Err(ApiError(
                StatusCode::CONFLICT,
                "no recording is running".into(),
            )),
        }
    }

    fn stop(&self) -> Result<serde_json::Value, ApiError> {
        {
            let mut slot = self.current.lock().expect("daemon lock");
            self.reap(&mut slot);
            match &mut *slot {
                Slot::Active(a) if !a.stopping => {
                    a.stopping = true;
                    a.controls.stop.store(true, Ordering::Release);
                }
                Slot::Active(_) => {
                    return Err(ApiError(
                        StatusCode::CONFLICT,
                        "the recording is already stopping".into(),
                    ))
                }
                _ => {
                    return Err(ApiError(
                        StatusCode::CONFLICT,
                        "no recording is running".into(),
                    ))
                }
            }
        }
        // Wait for the last segment to be flushed without holding the lock, so status keeps
        // answering ("stopping") meanwhile.
        let active = loop {
            {
                let mut slot = self.current.lock().expect("daemon lock");
                if matches!(&*slot, Slot::Active(a) if a.thread.is_finished()) {
                    let Slot::Active(a) = std::mem::replace(&mut *slot, Slot::Idle) else {
                        unreachable!()
                    };
                    break a;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        };
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
        self.wake_reporter();
        Ok(serde_json::json!({
            "recording": active.recording,
            "teacher": active.teacher,
            "segments": captured.segments,
            "media_seconds": captured.media_us as f64 / 1e6,
        }))
    }

    fn metrics(&self) -> String {
        let s = self.status();
        let (latency_sum, latency_count) = self.stats.receipt_latency();
        format!(
            "# HELP lessonlens_recording 1 while a lesson is being recorded.\n# TYPE lessonlens_recording gauge\nlessonlens_recording {}\n\
             # HELP lessonlens_segments_spooled_total Segments sealed into the spool.\n# TYPE lessonlens_segments_spooled_total counter\nlessonlens_segments_spooled_total {}\n\
             # HELP lessonlens_segments_uploaded_total Segments acknowledged by the server.\n# TYPE lessonlens_segments_uploaded_total counter\nlessonlens_segments_uploaded_total {}\n\
             # HELP lessonlens_spool_bytes Bytes waiting in the spool.\n# TYPE lessonlens_spool_bytes gauge\nlessonlens_spool_bytes {}\n\
             # HELP lessonlens_spool_budget_left_bytes Spool budget left.\n# TYPE lessonlens_spool_budget_left_bytes gauge\nlessonlens_spool_budget_left_bytes {}\n\
             # HELP lessonlens_server_reachable 1 when the last upload reached the server.\n# TYPE lessonlens_server_reachable gauge\nlessonlens_server_reachable {}\n\
             # HELP lessonlens_receipt_latency_seconds From a segment's media being complete to the server's receipt.\n# TYPE lessonlens_receipt_latency_seconds summary\n\
             lessonlens_receipt_latency_seconds_sum {}\nlessonlens_receipt_latency_seconds_count {}\n",
            u8::from(s.state == "recording"),
            s.segments_spooled,
            s.segments_uploaded,
            s.bytes_waiting,
            s.budget_left_bytes,
            u8::from(s.server_reachable),
            latency_sum,
            latency_count,
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

/// Answers only requests addressed to the control address itself, so a web page that rebinds
/// its own name to 127.0.0.1 (DNS rebinding) cannot drive the recorder.
async fn same_host(
    State(d): State<Arc<Daemon>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let addr = d.config.control_addr;
    let host = req
        .headers()
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let allowed = [addr.to_string(), format!("localhost:{}", addr.port())];
    if !allowed.iter().any(|a| a == host) {
        return ApiError(
            StatusCode::FORBIDDEN,
            format!("the control API answers only requests to {addr}"),
        )
        .into_response();
    }
    next.run(req).await
}

fn router(d: Arc<Daemon>) -> Router {
    Router::new()
        .route(
            "/v1/record/start",
            post(
                |State(d): State<Arc<Daemon>>, Json(req): Json<StartRequest>| async move {
                    let who = match (req.teacher, req.code) {
                        (Some(t), None) => Who::Username(t),
                        (None, Some(c)) => Who::Code(c),
                        _ => {
                            return Err(ApiError(
                                StatusCode::BAD_REQUEST,
                                "give either a teacher or a code".into(),
                            ))
                        }
                    };
                    blocking(move || d.start(&who))
                        .await
                        .map(|r| Json(serde_json::json!({ "recording": r })))
                },
            ),
        )
        .route(
            "/v1/record/stop",
            // A JSON body is required, so a web page cannot stop a lesson with a plain form post.
            post(
                |State(d): State<Arc<Daemon>>, Json(_): Json<serde_json::Value>| async move {
                    blocking(move || d.stop()).await.map(Json)
                },
            ),
        )
        .route(
            "/v1/record/pause",
            post(
                |State(d): State<Arc<Daemon>>, Json(_): Json<serde_json::Value>| async move {
                    blocking(move || d.set_paused(true)).await.map(Json)
                },
            ),
        )
        .route(
            "/v1/record/resume",
            post(
                |State(d): State<Arc<Daemon>>, Json(_): Json<serde_json::Value>| async move {
                    blocking(move || d.set_paused(false)).await.map(Json)
                },
            ),
        )
        .route(
            "/v1/status",
            get(|State(d): State<Arc<Daemon>>| async move {
                blocking(move || Ok(Json(d.status()))).await
            }),
        )
        .route(
            "/metrics",
            get(|State(d): State<Arc<Daemon>>| async move { d.metrics() }),
        )
        .layer(axum::middleware::from_fn_with_state(d.clone(), same_host))
        .with_state(d)
}

/// Runs the daemon until `shutdown` is set (SIGTERM/SIGINT): a running recording is stopped with
/// EOS and kept, and the uploader gets a few seconds to send what it can.
pub fn run(config: Config, shutdown: Arc<AtomicBool>) -> anyhow::Result<()> {
    crate::pipeline::init()?;
    let client = Client::new(&config)?;
    let spool = Spool::open(&config.spool_dir)?;
    // Recordings left open by a crash are closed as incomplete and queued (logged one by one).
    spool.recover()?;
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
        current: Mutex::new(Slot::Idle),
        last_error: Mutex::new(None),
        checks: Mutex::new(Vec::new()),
        finished: AtomicBool::new(false),
        report_now: (Mutex::new(false), Condvar::new()),
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
    let reporter = {
        let d = d.clone();
        std::thread::spawn(move || d.run_reporter())
    };
    // The readiness checks in the background: the server check may wait for a timeout. A source
    // check holds the camera and microphone only until they deliver three buffers.
    {
        let d = d.clone();
        std::thread::spawn(move || {
            let checks = crate::doctor::run(&d.config, Some(&d.client));
            for c in checks.iter().filter(|c| !c.ok) {
                tracing::warn!(check = %c.name, problem = %c.detail, "readiness check failed");
            }
            *d.checks.lock().expect("daemon lock") = checks;
        });
    }
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
    if matches!(*d.current.lock().expect("daemon lock"), Slot::Active(_)) {
        if let Err(ApiError(_, e)) = d.stop() {
            tracing::error!(error = %e, "the recording did not stop cleanly");
        }
    }
    d.finished.store(true, Ordering::Release);
    d.wake_reporter();
    if let Err(e) = uploader.join().expect("uploader thread panicked") {
        tracing::warn!(error = %format!("{e:#}"), "uploads continue at the next start");
    }
    reporter.join().expect("reporter thread panicked");
    Ok(())
}
