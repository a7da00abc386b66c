//! The capture service's state: one recording at a time, the uploader and the reporter, and the
//! button and light. It records when told to: by the device screen or the CLI through the control
//! API ([`crate::control`]), or by the record button. [`crate::service`] wires them together.
//!
//! The state it reports is truthful: "starting" until the first segment of the lesson is sealed
//! into the spool, and only then "recording". The screen, `status`, the light and the admin's
//! device list all read it from [`Daemon::status`].

mod bookings;
mod remote;

use crate::config::Config;
use crate::live::{Level, Live, Warning};
use crate::recorder::{self, Captured, Controls, Who};
use crate::spool::Spool;
use crate::status::Stats;
use crate::upload::{self, Client, UploadError};
use axum::http::StatusCode;
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
    /// The key it is sealed to, whose fingerprint the report carries (whose lesson it is).
    recipient: lessonlens_proto::KeyFingerprint,
    /// What the screen shows of the teacher: their display name, and nothing else.
    display_name: String,
    /// Who started it from the web app, if it was started there.
    started_by: Option<String>,
    /// The booked slot it records, which ends it.
    booking: Option<Box<lessonlens_proto::wire::Booking>>,
    /// Sealed to the school's unassigned key because the server could not be reached.
    offline: bool,
    live: Arc<Live>,
    started: Instant,
    controls: Controls,
    /// Set once a stop was asked for; the thread is flushing the last segment.
    stopping: bool,
    thread: JoinHandle<anyhow::Result<Captured>>,
}

/// What the one recording slot holds. `Starting` keeps a second start out while the first one
/// talks to the server, without holding the lock over the network.
enum Slot {
    Idle,
    Starting,
    Active(Active),
}

/// The recording that ended last, until it is uploaded: what the screen shows after a stop.
struct Finished {
    recording: RecordingId,
    /// Media segments sealed, when known (a recording that failed does not say).
    segments: Option<u32>,
    /// Sealed to the school's unassigned key: the teacher claims it with their code.
    offline: bool,
    ended_at: Instant,
    /// When the spool was seen empty of it, so the screen can go back to idle a little later.
    uploaded_at: Option<Instant>,
}

/// How long "Uploaded" stays in `status` before the device forgets the last recording, and how
/// long the last recording is shown at most while it waits to upload.
const FORGET_AFTER_UPLOAD: Duration = Duration::from_secs(30);
const FORGET_WAITING: Duration = Duration::from_secs(120);

pub struct Daemon {
    pub(crate) config: Config,
    client: Client,
    spool: Spool,
    stats: Arc<Stats>,
    /// The device's name, as the admin enrolled it: the room the screen names.
    room: String,
    /// Bumped on every change the screen should show at once (state, levels, warnings).
    pub(crate) changes: tokio::sync::watch::Sender<u64>,
    /// Bumped whenever a microphone's level arrives (10 times a second while recording).
    pub(crate) level_changes: tokio::sync::watch::Sender<u64>,
    finished_last: Mutex<Option<Finished>>,
    /// Set at SIGTERM/SIGINT: the screen's event streams end so the server can shut down.
    pub(crate) shutdown: Arc<AtomicBool>,
    /// Event streams open to screens (see `control::events`).
    pub(crate) event_streams: std::sync::atomic::AtomicUsize,
    /// Set while the server refuses this device's certificate.
    device_refused: AtomicBool,
    /// A short message for the screen (e.g. after a button press while idle), until it expires.
    notice: Mutex<Option<(String, Instant)>>,
    /// One recording at a time.
    current: Mutex<Slot>,
    /// Why the last recording ended by itself (camera gone, disk full, budget), for `status`.
    last_error: Mutex<Option<String>>,
    /// The `doctor` checks, run once at start (see `Daemon::open`).
    checks: Mutex<Vec<crate::doctor::Check>>,
    /// Set once the start-up checks are done: until then they may hold the camera and microphone.
    checks_done: AtomicBool,
    /// Set at shutdown so the uploader finishes.
    finished: AtomicBool,
    /// Wakes the reporter early (a recording started, paused or stopped; shutdown).
    report_now: (Mutex<bool>, Condvar),
    /// The server's clock minus this device's, as the channel last measured it.
    clock_offset: crate::channel::ClockOffset,
    /// The room's bookings for the coming week, those settled and how they went until the server
    /// has been told (kept on disk too: see `bookings`).
    kept: Mutex<bookings::Kept>,
}

/// How often the device reports to the server when nothing changes.
const REPORT_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    /// "idle", "starting", "recording", "paused" or "stopping". "starting" lasts until the first
    /// segment is sealed into the spool: only then does anything say "recording".
    pub state: String,
    /// The room (the device's enrolled name).
    pub room: String,
    pub recording: Option<RecordingId>,
    /// The teacher's username (or, offline, that the lesson waits to be claimed).
    pub teacher: Option<String>,
    /// What the screen shows of the teacher: their display name only.
    pub teacher_name: Option<String>,
    /// Who started the running recording from the web app, if someone did.
    pub started_by: Option<String>,
    /// A booked lesson whose slot has begun and that nobody has started yet.
    pub booked: Option<BookedNow>,
    /// The server's clock minus this device's, once the channel has said it.
    pub clock_offset_seconds: Option<i64>,
    /// The running recording is sealed to the school's unassigned key (the server could not be
    /// reached): the teacher claims it later with the same code.
    pub offline: bool,
    pub elapsed_seconds: Option<u64>,
    /// Each microphone's latest level while recording.
    pub levels: Vec<Level>,
    /// What the watchdogs see while recording.
    pub warnings: Vec<Warning>,
    pub segments_spooled: u64,
    pub segments_uploaded: u64,
    /// Recordings (wholly or partly) waiting for upload, and their bytes.
    pub recordings_waiting: usize,
    pub bytes_waiting: u64,
    pub budget_left_bytes: u64,
    pub server_reachable: bool,
    pub video_encoder: Option<String>,
    /// Why the last recording ended on its own, if it did.
    pub last_error: Option<String>,
    /// The recording stopped last, until shortly after it is uploaded.
    pub last_recording: Option<LastRecording>,
    /// A short message for the screen, such as what the record button does while idle.
    pub notice: Option<String>,
    /// Set while the server refuses this device: what it means and what to do.
    pub device_refused: Option<String>,
    /// The `doctor` checks run at start (empty until they finish).
    pub checks: Vec<crate::doctor::Check>,
}

/// A booked lesson waiting for a tap or the button.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BookedNow {
    pub id: i64,
    /// The booked teacher's name, for the screen.
    pub teacher_name: String,
    /// When the slot ends (Unix seconds, the server's clock).
    pub ends_at: i64,
}

/// Upload progress of the recording stopped last. Nothing in it says whose it was.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LastRecording {
    pub recording: RecordingId,
    /// Media segments sealed, when known.
    pub segments: Option<u32>,
    /// Sealed to the school's key while offline: to be claimed with the teacher's code.
    pub offline: bool,
    pub segments_waiting: usize,
    pub uploaded: bool,
}

/// Start by username, by the teacher's device code, or the booked lesson whose slot is running
/// (exactly one).
#[derive(Deserialize)]
pub(crate) struct StartRequest {
    pub(crate) teacher: Option<String>,
    pub(crate) code: Option<zeroize::Zeroizing<String>>,
    #[serde(default)]
    pub(crate) booked: bool,
}

impl Slot {
    /// "recording" only once the first segment is sealed into the spool.
    fn state(&self) -> &'static str {
        match self {
            Slot::Idle => "idle",
            Slot::Starting => "starting",
            Slot::Active(a) if a.stopping => "stopping",
            Slot::Active(a) if a.controls.paused() => "paused",
            Slot::Active(a) if !a.live.sealed() => "starting",
            Slot::Active(_) => "recording",
        }
    }
}

impl Daemon {
    /// Collects a recording thread that ended by itself (pipeline error, disk full, budget), so
    /// the slot does not claim "recording" forever.
    fn reap(&self, slot: &mut Slot) {
        // Only a thread that has returned is joined: one still on its way out may be waiting for
        // a lock the caller holds.
        let ended = matches!(slot, Slot::Active(a) if !a.stopping && a.thread.is_finished());
        if !ended {
            return;
        }
        let Slot::Active(a) = std::mem::replace(slot, Slot::Idle) else {
            return;
        };
        // Said to the teacher on the screen: no recording id, and what to do first.
        let (why, segments) = match a.thread.join() {
            Ok(Ok(c)) => (
                format!(
                    "It ended after {} segment(s): the device's storage for lessons waiting to upload is full. \
                     Everything recorded is kept. Check the connection to the school server.",
                    c.segments
                ),
                Some(c.segments),
            ),
            Ok(Err(e)) => (capitalised(&format!("{e:#}")), None),
            Err(_) => (
                "The recording stopped because of a fault in the recorder. What was recorded is kept. \
                 Start a new recording; if this happens again, tell the school's IT technician."
                    .into(),
                None,
            ),
        };
        tracing::error!(recording = %a.recording, reason = %why, "recording ended without a stop");
        *self.last_error.lock().expect("daemon lock") = Some(why);
        self.remember_finished(a.recording, segments, a.offline);
    }

    fn remember_finished(&self, recording: RecordingId, segments: Option<u32>, offline: bool) {
        *self.finished_last.lock().expect("daemon lock") = Some(Finished {
            recording,
            segments,
            offline,
            ended_at: Instant::now(),
            uploaded_at: None,
        });
        self.changed();
    }

    /// What the reporter watches for change: the state and how many warnings there are.
    fn report_key(&self) -> (String, usize) {
        let slot = self.current.lock().expect("daemon lock");
        let warnings = match &*slot {
            Slot::Active(a) if slot.state() == "recording" => a.live.warnings().len(),
            _ => 0,
        };
        (slot.state().to_string(), warnings)
    }

    /// What the light shows, without walking the spool.
    pub(crate) fn light_signal(&self) -> crate::light::Signal {
        let mut slot = self.current.lock().expect("daemon lock");
        self.reap(&mut slot);
        let state = slot.state();
        let warning = match &*slot {
            Slot::Active(a) if state == "recording" => !a.live.warnings().is_empty(),
            _ => false,
        };
        drop(slot);
        crate::light::Signal {
            state,
            warning,
            error: self.last_error.lock().expect("daemon lock").is_some()
                || self.device_refused.load(Ordering::Relaxed),
            booked: state == "idle" && self.booked_now().is_some(),
        }
    }

    /// Tells the screen's event stream that something changed.
    pub(crate) fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The recording stopped last and how far its upload is; forgotten a while after it is
    /// uploaded, so the screen goes back to idle and keeps nothing of it.
    fn last_recording(&self) -> Option<LastRecording> {
        let mut last = self.finished_last.lock().expect("daemon lock");
        let f = last.as_mut()?;
        let waiting = self.spool.segments_waiting(f.recording);
        if waiting.is_none() && f.uploaded_at.is_none() {
            f.uploaded_at = Some(Instant::now());
        }
        // Uploaded a while ago, or still waiting (offline) long after the lesson: the backlog on
        // the idle screen says the rest.
        if f.uploaded_at
            .is_some_and(|t| t.elapsed() > FORGET_AFTER_UPLOAD)
            || f.ended_at.elapsed() > FORGET_WAITING
        {
            *last = None;
            return None;
        }
        Some(LastRecording {
            recording: f.recording,
            segments: f.segments,
            offline: f.offline,
            segments_waiting: waiting.unwrap_or(0),
            uploaded: waiting.is_none(),
        })
    }

    /// Shows `text` on the screen for a few seconds.
    pub(crate) fn notify(&self, text: &str) {
        *self.notice.lock().expect("daemon lock") =
            Some((text.to_string(), Instant::now() + Duration::from_secs(6)));
        self.changed();
    }

    /// The recording's live state, if one is running.
    pub(crate) fn live(&self) -> Option<Arc<Live>> {
        match &*self.current.lock().expect("daemon lock") {
            Slot::Active(a) => Some(a.live.clone()),
            _ => None,
        }
    }

    pub fn status(&self) -> Status {
        // The spool is walked before the slot is locked, so a stop or pause never waits for it.
        let waiting = self.spool.usage_bytes();
        let recordings_waiting = self.spool.recordings_waiting();
        let mut slot = self.current.lock().expect("daemon lock");
        self.reap(&mut slot);
        let active = match &*slot {
            Slot::Active(a) => Some(a),
            _ => None,
        };
        let state = slot.state();
        let live = active.map(|a| a.live.clone());
        let status = Status {
            state: state.into(),
            room: self.room.clone(),
            recording: active.map(|a| a.recording),
            teacher: active.map(|a| a.teacher.clone()),
            teacher_name: active.map(|a| a.display_name.clone()),
            started_by: active.and_then(|a| a.started_by.clone()),
            booked: None,
            clock_offset_seconds: self.clock_offset.known(),
            offline: active.is_some_and(|a| a.offline),
            elapsed_seconds: active.map(|a| a.started.elapsed().as_secs()),
            levels: live.as_ref().map(|l| l.levels()).unwrap_or_default(),
            warnings: match (&live, state) {
                (Some(l), "recording") => l.warnings(),
                _ => Vec::new(),
            },
            segments_spooled: self.stats.spooled(),
            segments_uploaded: self.stats.uploaded(),
            recordings_waiting,
            bytes_waiting: waiting,
            budget_left_bytes: self.config.spool_budget_bytes().saturating_sub(waiting),
            server_reachable: self.stats.reachable(),
            video_encoder: self.stats.encoder().map(str::to_string),
            last_error: self.last_error.lock().expect("daemon lock").clone(),
            last_recording: None,
            notice: None,
            device_refused: self
                .device_refused
                .load(Ordering::Relaxed)
                .then(|| DEVICE_REFUSED.to_string()),
            checks: self.checks.lock().expect("daemon lock").clone(),
        };
        drop(slot);
        let notice = {
            let mut n = self.notice.lock().expect("daemon lock");
            if n.as_ref().is_some_and(|(_, until)| Instant::now() > *until) {
                *n = None;
            }
            n.as_ref().map(|(text, _)| text.clone())
        };
        let booked = if status.state == "idle" {
            self.booked_now().map(|b| BookedNow {
                id: b.id,
                teacher_name: crate::upload::Teacher::from_wire(b.teacher)
                    .map(|t| t.display_name)
                    .unwrap_or_default(),
                ends_at: b.ends_at,
            })
        } else {
            None
        };
        Status {
            last_recording: self.last_recording(),
            notice: notice.or_else(|| self.clock_problem()),
            booked,
            ..status
        }
    }

    /// What the server's device list shows: no recording id, and of the teacher only the
    /// fingerprint of the key the lesson is sealed to (the server knows whose it is).
    fn report(&self) -> DeviceReport {
        let recipient = match &*self.current.lock().expect("daemon lock") {
            Slot::Active(a) => Some(a.recipient.to_string()),
            _ => None,
        };
        let s = self.status();
        DeviceReport {
            version: env!("CARGO_PKG_VERSION").into(),
            state: s.state,
            bytes_waiting: s.bytes_waiting,
            last_upload_at: self.stats.last_upload_at(),
            video_encoder: s.video_encoder,
            last_error: s.last_error,
            warnings: s.warnings.into_iter().map(|w| w.message).collect(),
            recipient,
            clock_offset_seconds: self.clock_offset.known(),
        }
    }

    fn wake_reporter(&self) {
        let (flag, cv) = &self.report_now;
        *flag.lock().expect("report lock") = true;
        cv.notify_one();
        self.changed();
    }

    /// Reports to the server every [`REPORT_EVERY`] and whenever woken, until shutdown. A report
    /// that does not arrive is not retried: the next one says the same and more. Whether it
    /// arrived is what the screen shows as the server being reachable while nothing uploads.
    fn run_reporter(&self) {
        let (flag, cv) = &self.report_now;
        while !self.finished.load(Ordering::Acquire) {
            if let Err(e) = self.client.refresh_unassigned_key() {
                tracing::debug!(error = %e, "could not refresh the school's unassigned key");
            }
            let report = self.report();
            let sent = (report.state.clone(), report.warnings.len());
            let result = self.client.report(&report);
            let refused = matches!(
                result,
                Err(UploadError::Refused {
                    status: 401 | 403,
                    ..
                })
            );
            if self.device_refused.swap(refused, Ordering::Relaxed) != refused {
                self.changed();
            }
            let reached = match result {
                Ok(()) => true,
                Err(e) => {
                    tracing::debug!(error = %e, "could not report to the server");
                    !matches!(e, UploadError::Unreachable(_))
                }
            };
            if self.stats.server_reachable.swap(reached, Ordering::Relaxed) != reached {
                self.changed();
            }
            // A change of state (the first segment sealed) or a watchdog warning that appears or
            // clears is reported within a moment, without a wake-up from every place it happens.
            // The state is read without the reporter's lock held: the recording thread takes that
            // lock (to wake this loop) while its caller may hold the slot.
            let deadline = Instant::now() + REPORT_EVERY;
            loop {
                let changed = self.report_key() != sent;
                let woken = flag.lock().expect("report lock");
                if *woken || changed || Instant::now() >= deadline {
                    break;
                }
                drop(
                    cv.wait_timeout(woken, Duration::from_millis(500))
                        .expect("report lock"),
                );
            }
            let mut woken = flag.lock().expect("report lock");
            *woken = false;
        }
    }

    pub(crate) fn start(self: &Arc<Self>, who: &Who) -> Result<RecordingId, ApiError> {
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
                        // No name: whoever asks may not be the teacher who is recording.
                        format!(
                            "a recording is already running (for {} s); stop it first",
                            a.started.elapsed().as_secs()
                        ),
                    ));
                }
            }
        }
        self.changed();
        // The start-up checks open the camera and microphone for a moment; a start in the first
        // seconds after boot waits for them rather than fight them for the devices.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.checks_done.load(Ordering::Acquire) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let begun = recorder::begin(&self.config, &self.client, &self.spool, who);
        let mut slot = self.current.lock().expect("daemon lock");
        let begun = match begun {
            Ok(b) => b,
            Err(e) => {
                *slot = Slot::Idle;
                drop(slot);
                // The reporter finds out at once whether the server is there and takes this
                // device, for the screen.
                self.wake_reporter();
                return Err(refusal(e));
            }
        };
        let recording = begun.recording;
        let controls = Controls::default();
        let live = Arc::new(Live::new(
            &self.config.watchdog,
            crate::pipeline::microphones(&self.config).len(),
            self.changes.clone(),
            self.level_changes.clone(),
        ));
        let (d, c2, l2) = (self.clone(), controls.clone(), live.clone());
        let running = controls.running.clone();
        let recipient = begun.recipient;
        let fingerprint = recipient.fingerprint();
        let thread = std::thread::spawn(move || {
            let result = recorder::capture(
                &d.config, &d.spool, recording, recipient, &c2, None, &d.stats, &l2,
            );
            // A recording that ends by itself (camera gone, disk full) is told to the server at
            // once: the reporter's status reaps this thread and says why.
            d.wake_reporter();
            result
        });
        *self.last_error.lock().expect("daemon lock") = None;
        *self.finished_last.lock().expect("daemon lock") = None;
        *slot = Slot::Active(Active {
            recording,
            recipient: fingerprint,
            teacher: begun.teacher,
            display_name: begun.display_name,
            started_by: match who {
                Who::Remote { by, .. } => {
                    Some(by.chars().filter(|c| !c.is_control()).take(100).collect())
                }
                _ => None,
            },
            booking: match who {
                Who::Booked(b) => Some(Box::new(b.clone())),
                _ => None,
            },
            offline: begun.offline,
            live,
            started: Instant::now(),
            controls,
            stopping: false,
            thread,
        });
        drop(slot);
        self.wake_reporter();
        // Answer once the camera and microphone are open, so a start that cannot record (device
        // missing or busy) is refused with the reason instead of a light that goes out again.
        let deadline = Instant::now() + Duration::from_secs(15);
        while !running.load(Ordering::Acquire) && Instant::now() < deadline {
            let mut slot = self.current.lock().expect("daemon lock");
            self.reap(&mut slot);
            if matches!(*slot, Slot::Idle) {
                let why = self.last_error.lock().expect("daemon lock").clone();
                return Err(ApiError(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    why.unwrap_or_else(|| "the recording ended at once".into()),
                ));
            }
            drop(slot);
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(recording)
    }

    /// Privacy pause (`true`) or resume (`false`). Nothing is recorded while paused; the
    /// recording stays open and the pause shows in the playlist as a discontinuity.
    pub(crate) fn set_paused(&self, paused: bool) -> Result<serde_json::Value, ApiError> {
        let mut slot = self.current.lock().expect("daemon lock");
        self.reap(&mut slot);
        match &*slot {
            Slot::Active(a) if !a.stopping => {
                if a.controls.paused() == paused {
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
                // Before the flag flips, so no status between the two says "recording" on the
                // strength of a segment sealed before the pause.
                a.live.restart_watch();
                a.controls.pause.store(paused, Ordering::Release);
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

    /// The record button. A short press pauses or resumes a running recording, a long one stops
    /// it. While idle a press only says how to start (a code on the screen), because a button
    /// cannot say who is recording.
    pub(crate) fn button(self: &Arc<Self>, press: crate::button::Press) {
        let paused = match &*self.current.lock().expect("daemon lock") {
            Slot::Active(a) if !a.stopping => Some(a.controls.paused()),
            Slot::Idle => None,
            _ => return,
        };
        let Some(paused) = paused else {
            // While idle a press starts the booked lesson whose slot is running, if there is one
            // (the booking says who it is); otherwise it only says how to start.
            if self.booked_now().is_some() {
                if let Err(ApiError(_, e)) = self.start_booked() {
                    tracing::warn!(error = %e, "the record button could not start the booked lesson");
                }
            } else {
                self.notify("To start recording, type your code on the screen.");
            }
            return;
        };
        let done = match press {
            crate::button::Press::Short => self.set_paused(!paused).map(|_| ()),
            crate::button::Press::Long => self.stop().map(|_| ()),
        };
        if let Err(ApiError(_, e)) = done {
            tracing::warn!(error = %e, "the record button's press did nothing");
        }
    }

    pub(crate) fn stop(&self) -> Result<serde_json::Value, ApiError> {
        self.stop_recording(None)
    }

    /// Stops the running recording, or (with `only`) that recording and no other: a check and
    /// the stop under one lock, so a lesson started meanwhile by someone else records on.
    pub(super) fn stop_recording(
        &self,
        only: Option<RecordingId>,
    ) -> Result<serde_json::Value, ApiError> {
        {
            let mut slot = self.current.lock().expect("daemon lock");
            self.reap(&mut slot);
            match &mut *slot {
                Slot::Active(a) if only.is_some_and(|r| r != a.recording) => {
                    return Err(ApiError(
                        StatusCode::CONFLICT,
                        "another recording is running now".into(),
                    ))
                }
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
        self.changed();
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
        let joined = active.thread.join();
        let captured = match joined {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                self.remember_finished(active.recording, None, active.offline);
                return Err(ApiError(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("{e:#}"),
                ));
            }
            Err(_) => {
                self.remember_finished(active.recording, None, active.offline);
                return Err(ApiError(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the recording thread panicked".into(),
                ));
            }
        };
        tracing::info!(recording = %active.recording, segments = captured.segments, "recording stopped");
        self.remember_finished(active.recording, Some(captured.segments), active.offline);
        self.wake_reporter();
        Ok(serde_json::json!({
            "recording": active.recording,
            "teacher": active.teacher,
            "segments": captured.segments,
            "media_seconds": captured.media_us as f64 / 1e6,
        }))
    }

    pub(crate) fn metrics(&self) -> String {
        let s = self.status();
        let (latency_sum, latency_count) = self.stats.receipt_latency();
        let mut text = format!(
            "# HELP lessonlens_recording 1 while a lesson is being recorded.\n# TYPE lessonlens_recording gauge\nlessonlens_recording {}\n\
             # HELP lessonlens_segments_spooled_total Segments sealed into the spool.\n# TYPE lessonlens_segments_spooled_total counter\nlessonlens_segments_spooled_total {}\n\
             # HELP lessonlens_segments_uploaded_total Segments acknowledged by the server.\n# TYPE lessonlens_segments_uploaded_total counter\nlessonlens_segments_uploaded_total {}\n\
             # HELP lessonlens_spool_bytes Bytes waiting in the spool.\n# TYPE lessonlens_spool_bytes gauge\nlessonlens_spool_bytes {}\n\
             # HELP lessonlens_spool_budget_left_bytes Spool budget left.\n# TYPE lessonlens_spool_budget_left_bytes gauge\nlessonlens_spool_budget_left_bytes {}\n\
             # HELP lessonlens_server_reachable 1 when the last upload reached the server.\n# TYPE lessonlens_server_reachable gauge\nlessonlens_server_reachable {}\n\
             # HELP lessonlens_receipt_latency_seconds From a segment's media being complete to the server's receipt.\n# TYPE lessonlens_receipt_latency_seconds summary\n\
             lessonlens_receipt_latency_seconds_sum {}\nlessonlens_receipt_latency_seconds_count {}\n\
             # HELP lessonlens_watchdog_warning 1 while a watchdog sees a problem in the running recording.\n# TYPE lessonlens_watchdog_warning gauge\n",
            u8::from(s.state == "recording"),
            s.segments_spooled,
            s.segments_uploaded,
            s.bytes_waiting,
            s.budget_left_bytes,
            u8::from(s.server_reachable),
            latency_sum,
            latency_count,
        );
        for kind in crate::live::WARNING_KINDS {
            let on = s.warnings.iter().any(|w| w.kind == kind);
            text.push_str(&format!(
                "lessonlens_watchdog_warning{{kind=\"{kind}\"}} {}\n",
                u8::from(on)
            ));
        }
        text
    }
}

fn capitalised(text: &str) -> String {
    let mut c = text.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// What the screen says when the server refuses this device's certificate (revoked, expired,
/// replaced by another machine's).
const DEVICE_REFUSED: &str = "The school server no longer accepts this device (it refused the device's certificate). \
     Lessons already recorded are kept here and nothing is lost. Ask the school's IT technician to enrol this device again.";

/// Why a start was refused, in the words the screen shows. A code the server does not know, or
/// too many wrong ones, is answered with the server's own sentence; anything else with the whole
/// chain of causes.
fn refusal(e: anyhow::Error) -> ApiError {
    if let Some(UploadError::Refused { status, message }) = e.downcast_ref::<UploadError>() {
        if matches!(status, 401 | 403) {
            return ApiError(StatusCode::UNPROCESSABLE_ENTITY, DEVICE_REFUSED.into());
        }
        let code = match status {
            429 => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        if matches!(status, 400 | 422 | 429) {
            return ApiError(code, message.clone());
        }
    }
    ApiError(StatusCode::UNPROCESSABLE_ENTITY, format!("{e:#}"))
}

/// The service's background threads, joined by [`Daemon::finish`].
pub struct Workers {
    uploader: JoinHandle<anyhow::Result<()>>,
    reporter: JoinHandle<()>,
}

impl Daemon {
    /// Opens the spool (closing recordings a crash left open) and the server connection, and
    /// starts the uploader, the reporter, the start-up checks, and the button and light if the
    /// config names them. They run until [`Daemon::finish`].
    pub fn open(
        config: Config,
        shutdown: Arc<AtomicBool>,
    ) -> anyhow::Result<(Arc<Daemon>, Workers)> {
        crate::pipeline::init()?;
        let client = Client::new(&config)?;
        let bookings_file = config.identity_dir.join(bookings::BOOKINGS_FILE);
        let spool = Spool::open(&config.spool_dir)?;
        // Recordings left open by a crash are closed as incomplete and queued (logged one by one).
        spool.recover()?;
        let d = Arc::new(Daemon {
            config,
            room: client.name.clone(),
            client,
            spool,
            changes: tokio::sync::watch::channel(0).0,
            level_changes: tokio::sync::watch::channel(0).0,
            finished_last: Mutex::new(None),
            notice: Mutex::new(None),
            device_refused: AtomicBool::new(false),
            event_streams: std::sync::atomic::AtomicUsize::new(0),
            shutdown: shutdown.clone(),
            stats: Arc::new(Stats::default()),
            current: Mutex::new(Slot::Idle),
            last_error: Mutex::new(None),
            checks: Mutex::new(Vec::new()),
            checks_done: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            report_now: (Mutex::new(false), Condvar::new()),
            clock_offset: Default::default(),
            kept: Mutex::new(bookings::load(&bookings_file)),
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
        // Not joined at the end: it may be waiting on the server, and holds nothing to flush.
        crate::channel::spawn(Arc::new(d.clone()), shutdown.clone());
        {
            let d = d.clone();
            std::thread::spawn(move || d.run_bookings());
        }
        {
            let d = d.clone();
            std::thread::spawn(move || d.send_outcomes());
        }
        if let Some(button) = d.config.button.clone() {
            let on_press = d.clone();
            crate::button::spawn(button, shutdown.clone(), move |p| on_press.button(p))?;
        }
        if let Some(light) = d.config.light.clone() {
            let signal = d.clone();
            crate::light::spawn(light, shutdown, move || signal.light_signal());
        }
        // The readiness checks in the background: the server check may wait for a timeout. A
        // source check holds the camera and microphone only until they deliver three buffers.
        {
            let d = d.clone();
            std::thread::spawn(move || {
                let checks = crate::doctor::run(&d.config, Some(&d.client));
                for c in checks.iter().filter(|c| !c.ok) {
                    tracing::warn!(check = %c.name, problem = %c.detail, "readiness check failed");
                }
                *d.checks.lock().expect("daemon lock") = checks;
                d.checks_done.store(true, Ordering::Release);
                d.changed();
            });
        }
        Ok((d, Workers { uploader, reporter }))
    }

    /// At shutdown: a running recording is stopped with EOS and kept, and the uploader gets a few
    /// seconds to send what it can.
    pub fn finish(&self, workers: Workers) {
        if matches!(*self.current.lock().expect("daemon lock"), Slot::Active(_)) {
            if let Err(ApiError(_, e)) = self.stop() {
                tracing::error!(error = %e, "the recording did not stop cleanly");
            }
        }
        self.finished.store(true, Ordering::Release);
        self.wake_reporter();
        if let Err(e) = workers.uploader.join().expect("uploader thread panicked") {
            tracing::warn!(error = %format!("{e:#}"), "uploads continue at the next start");
        }
        workers.reporter.join().expect("reporter thread panicked");
    }
}

/// Error text for the CLI and the screen: what happened and what to do.
pub struct ApiError(pub StatusCode, pub String);

impl axum::response::IntoResponse for ApiError {
    fn into_response(self) -> axum::response::Response {
        (self.0, axum::Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}
