//! What a running recording sounds and looks like right now, for the device screen: the level of
//! each microphone (from GStreamer's `level` element), a small camera preview (made in memory on
//! demand, never written anywhere), whether the first segment is sealed yet, and the watchdogs
//! that notice a silent microphone or a black or frozen picture.
//!
//! One [`Live`] belongs to one recording, so nothing of a previous teacher's lesson (a preview
//! frame, a level) outlives it.

use crate::config::WatchdogConfig;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a request for the preview keeps the preview branch making frames.
const PREVIEW_WANTED_FOR: Duration = Duration::from_secs(3);

/// Below this peak (dBFS) a microphone is sending digital silence: every sample zero, as from a
/// muted or unplugged input, never from a live room.
const DIGITAL_SILENCE_DB: f64 = -100.0;

/// A picture whose sampled brightness averages below this (of 0-255 luma; black is 16) is black.
const BLACK_LUMA: u32 = 24;

/// One microphone's latest level.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Level {
    /// The source's name in the pipeline (`microphone`, `room-microphone`).
    pub source: String,
    /// Loudness over the last interval, dBFS (0 is full scale; -100 stands for silence).
    pub rms_db: f64,
    pub peak_db: f64,
}

/// Every kind of [`Warning`], for `/metrics`.
pub const WARNING_KINDS: [&str; 6] = [
    "microphone_silent",
    "microphone_quiet",
    "room_microphone_silent",
    "room_microphone_quiet",
    "camera_black",
    "camera_frozen",
];

/// A problem a watchdog found while recording. The recording goes on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Warning {
    /// `microphone_silent`, `microphone_quiet`, `camera_black` or `camera_frozen`.
    pub kind: String,
    /// What a teacher can do about it.
    pub message: String,
}

/// The state of one recording that changes many times a second.
pub struct Live {
    epoch: Instant,
    inner: Mutex<Inner>,
    /// Bumped when the state changes (sealed, paused), so the screen's event stream sends at
    /// once; `levels` when a microphone's level arrives.
    state: tokio::sync::watch::Sender<u64>,
    levels: tokio::sync::watch::Sender<u64>,
    /// Until when (ms after `epoch`) someone is looking at the preview.
    preview_wanted_until_ms: AtomicU64,
    /// Set once the first media segment is sealed into the spool: only then is the lesson
    /// "recording".
    sealed: AtomicBool,
}

struct Inner {
    levels: Vec<Level>,
    preview: Option<Arc<Vec<u8>>>,
    watchdog: Watchdog,
}

impl Live {
    /// For a recording from `microphones` microphones (1 or 2, see `pipeline::MICROPHONES`).
    pub fn new(
        config: &WatchdogConfig,
        microphones: usize,
        state: tokio::sync::watch::Sender<u64>,
        levels: tokio::sync::watch::Sender<u64>,
    ) -> Live {
        let epoch = Instant::now();
        Live {
            epoch,
            inner: Mutex::new(Inner {
                levels: Vec::new(),
                preview: None,
                watchdog: Watchdog::new(config.clone(), microphones, epoch),
            }),
            state,
            levels,
            preview_wanted_until_ms: AtomicU64::new(0),
            sealed: AtomicBool::new(false),
        }
    }

    fn changed(&self) {
        self.state.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A `level` message from the pipeline.
    pub fn set_level(&self, level: Level) {
        {
            let mut inner = self.inner.lock().expect("live lock");
            let mic = crate::pipeline::MICROPHONES
                .iter()
                .position(|m| *m == level.source)
                .unwrap_or(0);
            inner.watchdog.heard(mic, level.peak_db, Instant::now());
            match inner.levels.iter_mut().find(|l| l.source == level.source) {
                Some(l) => *l = level,
                None => inner.levels.push(level),
            }
        }
        self.levels.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn levels(&self) -> Vec<Level> {
        self.inner.lock().expect("live lock").levels.clone()
    }

    /// A camera frame's sampled signature (see [`frame_signature`]).
    pub fn saw_frame(&self, signature: FrameSignature) {
        let mut inner = self.inner.lock().expect("live lock");
        inner.watchdog.saw(signature, Instant::now());
    }

    pub fn warnings(&self) -> Vec<Warning> {
        self.inner
            .lock()
            .expect("live lock")
            .watchdog
            .warnings(Instant::now())
    }

    /// The recording was paused or resumed: nothing arrives meanwhile, which is not a fault, and
    /// no frame from before the pause is shown. After a resume the lesson is "starting" again
    /// until the new pipeline's first segment is sealed.
    pub fn restart_watch(&self) {
        let mut inner = self.inner.lock().expect("live lock");
        inner.watchdog.restart(Instant::now());
        inner.levels.clear();
        inner.preview = None;
        drop(inner);
        self.sealed.store(false, Ordering::Release);
        self.changed();
    }

    pub fn set_sealed(&self) {
        if !self.sealed.swap(true, Ordering::AcqRel) {
            self.changed();
        }
    }

    pub fn sealed(&self) -> bool {
        self.sealed.load(Ordering::Acquire)
    }

    /// Someone asked for the preview: keep making frames for a few seconds.
    pub fn want_preview(&self) {
        let until = self.epoch.elapsed() + PREVIEW_WANTED_FOR;
        self.preview_wanted_until_ms
            .store(until.as_millis() as u64, Ordering::Release);
    }

    pub fn preview_wanted(&self) -> bool {
        (self.epoch.elapsed().as_millis() as u64)
            < self.preview_wanted_until_ms.load(Ordering::Acquire)
    }

    pub fn set_preview(&self, jpeg: Vec<u8>) {
        self.inner.lock().expect("live lock").preview = Some(Arc::new(jpeg));
    }

    pub fn preview(&self) -> Option<Arc<Vec<u8>>> {
        self.inner.lock().expect("live lock").preview.clone()
    }
}

/// A cheap summary of one camera frame: a hash and the mean of every 7th luma byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameSignature {
    pub hash: u64,
    pub mean_luma: u32,
}

/// Samples the luma plane of a frame (the first `width * height` bytes of I420). Two frames of a
/// live camera are never identical (sensor noise), so an identical signature means the same
/// picture is being delivered again: a frozen camera or capture card.
pub fn frame_signature(luma: &[u8]) -> FrameSignature {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let (mut sum, mut n) = (0u64, 0u64);
    for &b in luma.iter().step_by(7) {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        sum += u64::from(b);
        n += 1;
    }
    FrameSignature {
        hash,
        mean_luma: sum.checked_div(n).unwrap_or(0) as u32,
    }
}

/// The watchdogs' memory: since when each bad condition has held. Pure: time is passed in.
#[derive(Debug)]
pub struct Watchdog {
    config: WatchdogConfig,
    /// Each microphone's memory: the teacher's (or the only one), then the room's.
    ears: Vec<Ear>,
    /// Since when the picture has been black / unchanged.
    dark_since: Option<Instant>,
    same_since: Option<Instant>,
    last_frame: Option<FrameSignature>,
    /// Nothing heard or seen yet counts from here.
    started: Instant,
    seen_any: bool,
}

/// One microphone's memory.
#[derive(Debug, Clone, Default)]
struct Ear {
    /// Since when it has been quiet / digitally silent (`None`: it is not).
    quiet_since: Option<Instant>,
    silent_since: Option<Instant>,
    heard_any: bool,
}

impl Watchdog {
    /// For `microphones` microphones (1 or 2).
    pub fn new(config: WatchdogConfig, microphones: usize, now: Instant) -> Watchdog {
        Watchdog {
            config,
            ears: vec![Ear::default(); microphones.clamp(1, 2)],
            dark_since: None,
            same_since: None,
            last_frame: None,
            started: now,
            seen_any: false,
        }
    }

    pub fn restart(&mut self, now: Instant) {
        *self = Watchdog::new(self.config.clone(), self.ears.len(), now);
    }

    /// Microphone `mic`'s peak over the last interval.
    pub fn heard(&mut self, mic: usize, peak_db: f64, now: Instant) {
        let quiet_db = self.config.quiet_db;
        let Some(ear) = self.ears.get_mut(mic) else {
            return;
        };
        ear.heard_any = true;
        let silent = !peak_db.is_finite() || peak_db <= DIGITAL_SILENCE_DB;
        let quiet = silent || peak_db < quiet_db;
        ear.silent_since = if silent {
            ear.silent_since.or(Some(now))
        } else {
            None
        };
        ear.quiet_since = if quiet {
            ear.quiet_since.or(Some(now))
        } else {
            None
        };
    }

    pub fn saw(&mut self, frame: FrameSignature, now: Instant) {
        self.seen_any = true;
        self.dark_since = if frame.mean_luma < BLACK_LUMA {
            self.dark_since.or(Some(now))
        } else {
            None
        };
        let same = self.last_frame.is_some_and(|f| f.hash == frame.hash);
        self.same_since = if same {
            self.same_since.or(Some(now))
        } else {
            None
        };
        self.last_frame = Some(frame);
    }

    pub fn warnings(&self, now: Instant) -> Vec<Warning> {
        let held = |since: Option<Instant>, secs: u32| {
            since.is_some_and(|s| now.duration_since(s) >= Duration::from_secs(secs.into()))
        };
        let (mic, cam) = (self.config.quiet_seconds, self.config.picture_seconds);
        let mut out = Vec::new();
        for (n, ear) in self.ears.iter().enumerate() {
            // With two, each is named: the teacher's is "the microphone", as with one.
            let (kind, name) = match n {
                0 => ("microphone", "The microphone"),
                _ => ("room_microphone", "The room's microphone"),
            };
            // A microphone that sends nothing at all, for as long, counts as silent.
            let gone = !ear.heard_any && held(Some(self.started), mic);
            if held(ear.silent_since, mic) || gone {
                out.push(Warning {
                    kind: format!("{kind}_silent"),
                    message: format!(
                        "{name} has sent no sound at all for {}. It may be muted or unplugged: check its mute switch and cable. The recording goes on.",
                        span(mic)
                    ),
                });
            } else if held(ear.quiet_since, mic) {
                out.push(Warning {
                    kind: format!("{kind}_quiet"),
                    message: format!(
                        "{name} has heard nothing for {}. Check that it is switched on and near you. The recording goes on.",
                        span(mic)
                    ),
                });
            }
        }
        let cam_gone = !self.seen_any && held(Some(self.started), cam);
        if held(self.dark_since, cam) || cam_gone {
            out.push(Warning {
                kind: "camera_black".into(),
                message: format!(
                    "The camera's picture has been black for {}. Check that the lens is not covered and the camera is on. The recording goes on.",
                    span(cam)
                ),
            });
        } else if self.config.frozen_picture && held(self.same_since, cam) {
            out.push(Warning {
                kind: "camera_frozen".into(),
                message: format!(
                    "The camera's picture has not changed for {}. Check the camera and its cable. The recording goes on.",
                    span(cam)
                ),
            });
        }
        out
    }
}

/// "a minute", "30 seconds", "2 minutes".
fn span(seconds: u32) -> String {
    match seconds {
        60 => "a minute".into(),
        s if s % 60 == 0 => format!("{} minutes", s / 60),
        1 => "a second".into(),
        s => format!("{s} seconds"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dog() -> (Watchdog, Instant) {
        let now = Instant::now();
        let config = WatchdogConfig {
            quiet_db: -50.0,
            quiet_seconds: 60,
            picture_seconds: 30,
            frozen_picture: true,
        };
        (Watchdog::new(config, 1, now), now)
    }

    fn kinds(w: &Watchdog, at: Instant) -> Vec<String> {
        w.warnings(at).into_iter().map(|w| w.kind).collect()
    }

    /// A lit picture; a different one for each `n`.
    fn picture(n: u64) -> FrameSignature {
        FrameSignature {
            hash: n,
            mean_luma: 120,
        }
    }

    #[test]
    fn a_microphone_is_reported_only_after_the_whole_span() {
        let (mut w, t0) = dog();
        let s = |n| t0 + Duration::from_secs(n);
        w.heard(0, -20.0, t0);
        for i in 1..=59 {
            w.heard(0, -70.0, s(i));
            w.saw(picture(i), s(i));
        }
        assert!(kinds(&w, s(59)).is_empty(), "58 s of quiet is not a fault");
        w.heard(0, -70.0, s(61));
        w.saw(picture(61), s(61));
        assert_eq!(kinds(&w, s(61)), ["microphone_quiet"]);
        assert!(w.warnings(s(61))[0].message.contains("for a minute"));
        // One loud moment clears it.
        w.heard(0, -10.0, s(62));
        assert!(kinds(&w, s(62)).is_empty());
        // Digital silence is its own, clearer warning.
        w.heard(0, f64::NEG_INFINITY, s(63));
        w.heard(0, f64::NEG_INFINITY, s(130));
        w.saw(picture(130), s(130));
        assert_eq!(kinds(&w, s(130)), ["microphone_silent"]);
    }

    #[test]
    fn with_two_microphones_each_is_watched_and_named() {
        let t0 = Instant::now();
        let s = |n| t0 + Duration::from_secs(n);
        let mut w = Watchdog::new(WatchdogConfig::default(), 2, t0);
        for i in 0..=61 {
            // The teacher's lapel microphone hears the lesson; the room's is unplugged.
            w.heard(0, -20.0, s(i));
            w.heard(1, f64::NEG_INFINITY, s(i));
            w.saw(picture(i), s(i));
        }
        let warnings = w.warnings(s(61));
        assert_eq!(
            warnings.iter().map(|w| w.kind.as_str()).collect::<Vec<_>>(),
            ["room_microphone_silent"]
        );
        assert!(warnings[0].message.starts_with("The room's microphone"));
        // One that never sends anything is silent too, and the other is still fine.
        let mut w = Watchdog::new(WatchdogConfig::default(), 2, t0);
        for i in 0..=61 {
            w.heard(1, -20.0, s(i));
            w.saw(picture(i), s(i));
        }
        assert_eq!(kinds(&w, s(61)), ["microphone_silent"]);
    }

    #[test]
    fn a_source_that_sends_nothing_is_reported() {
        let (mut w, t0) = dog();
        let s = |n| t0 + Duration::from_secs(n);
        w.saw(picture(1), s(59));
        assert!(kinds(&w, s(59)).is_empty());
        assert_eq!(kinds(&w, s(60)), ["microphone_silent"]);
        // After a pause the clock starts again.
        w.restart(s(61));
        assert!(kinds(&w, s(62)).is_empty());
        // A camera that never delivers a frame counts as black.
        w.heard(0, -20.0, s(91));
        assert_eq!(kinds(&w, s(91)), ["camera_black"]);
    }

    #[test]
    fn black_and_frozen_pictures_are_told_apart() {
        let (mut w, t0) = dog();
        let s = |n| t0 + Duration::from_secs(n);
        for i in 0..40 {
            w.heard(0, -20.0, s(i));
            w.saw(picture(i), s(i));
        }
        assert!(kinds(&w, s(40)).is_empty(), "a changing picture is fine");
        for i in 40..=70 {
            w.heard(0, -20.0, s(i));
            w.saw(picture(7), s(i));
        }
        assert!(kinds(&w, s(70)).is_empty(), "29 s of one picture is fine");
        w.saw(picture(7), s(71));
        assert_eq!(kinds(&w, s(71)), ["camera_frozen"]);
        let dark = |h| FrameSignature {
            hash: h,
            mean_luma: 16,
        };
        for i in 72..=102 {
            w.heard(0, -20.0, s(i));
            w.saw(dark(i), s(i));
        }
        assert_eq!(kinds(&w, s(102)), ["camera_black"]);
    }

    #[test]
    fn a_still_slide_is_not_a_fault_when_the_frozen_check_is_off() {
        let t0 = Instant::now();
        let config = WatchdogConfig {
            frozen_picture: false,
            ..WatchdogConfig::default()
        };
        let mut w = Watchdog::new(config, 1, t0);
        for i in 0..=40 {
            let at = t0 + Duration::from_secs(i);
            w.heard(0, -20.0, at);
            w.saw(picture(7), at);
        }
        assert!(kinds(&w, t0 + Duration::from_secs(40)).is_empty());
    }

    #[test]
    fn signatures_see_a_change_anywhere_in_the_picture() {
        let mut frame = vec![100u8; 320 * 180];
        let a = frame_signature(&frame);
        assert_eq!(a.mean_luma, 100);
        frame[7 * 1000] = 101;
        assert_ne!(frame_signature(&frame).hash, a.hash);
        assert_eq!(frame_signature(&[16u8; 64]).mean_luma, 16);
    }
}
