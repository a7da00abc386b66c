//! The room's booked lessons on the device: kept from the server (and on disk, for when it is out
//! of reach), offered on the screen and by the light when a slot begins, started by a tap or the
//! button, stopped at the slot's end after a warning, and reported ("recorded" or "not recorded").

use super::*;
use lessonlens_proto::wire::{Booking, BookingOutcome};

/// Where the device keeps the room's bookings (in the identity folder).
pub(super) const BOOKINGS_FILE: &str = "bookings.json";
/// The most bookings kept (a week of a busy room is a few dozen).
const MAX_BOOKINGS: usize = 200;
/// How long before a booked slot's end the screen warns that the recording will stop (seconds).
const WARN_BEFORE_END: i64 = 120;

/// What the device keeps on disk: the bookings, those settled (started, or ended with nobody
/// starting them), and how each went until the server has been told. All three survive a restart,
/// so a lesson recorded before one is never reported as "not recorded" after it.
#[derive(Default, Serialize, Deserialize)]
pub(super) struct Kept {
    pub(super) bookings: Vec<Booking>,
    #[serde(default)]
    pub(super) settled: std::collections::BTreeSet<i64>,
    #[serde(default)]
    pub(super) outcomes: Vec<(i64, Option<RecordingId>)>,
}

/// Why booked lessons cannot start, if the clocks are further apart than the `doctor` allows.
fn clocks_apart(server_minus_here: Option<i64>) -> Option<String> {
    let off = server_minus_here?.unsigned_abs();
    (off > crate::doctor::MAX_SKEW.as_secs()).then(|| {
        format!(
            "This device's clock is {off} s off the server's, so booked lessons cannot start until it is right. Enable NTP (`timedatectl set-ntp true`) on this device, or tell your school's IT team."
        )
    })
}

impl Daemon {
    /// The server's time as this device reckons it: its own clock and the offset the channel
    /// measured (none yet: its own clock).
    pub(super) fn server_now(&self) -> i64 {
        crate::upload::now() + self.clock_offset.known().unwrap_or(0)
    }

    /// Why booked lessons cannot start now, if the two clocks are too far apart.
    pub(super) fn clock_problem(&self) -> Option<String> {
        clocks_apart(self.clock_offset.known())
    }

    /// The booked lesson whose slot is running and that nobody has started, if the clocks agree.
    pub(super) fn booked_now(&self) -> Option<Booking> {
        if self.clock_problem().is_some() {
            return None;
        }
        let now = self.server_now();
        let kept = self.kept.lock().expect("daemon lock");
        kept.bookings
            .iter()
            .find(|b| b.starts_at <= now && now < b.ends_at && !kept.settled.contains(&b.id))
            .cloned()
    }

    /// Writes what is kept to disk (a failure is logged: the server sends the bookings again).
    fn save_kept(&self, kept: &Kept) {
        if let Err(e) = save(&self.config.identity_dir.join(BOOKINGS_FILE), kept) {
            tracing::warn!(error = %format!("{e:#}"), "cannot keep the bookings on disk");
        }
    }

    /// Booking `id` ended with nobody starting it: "not recorded".
    fn settle_unstarted(&self, kept: &mut Kept, id: i64) {
        if kept.settled.insert(id) {
            tracing::info!(booking = id, "a booked lesson nobody started: not recorded");
            kept.outcomes.push((id, None));
            self.save_kept(kept);
        }
    }

    /// Starts the booked lesson whose slot is running (a tap on the screen, or the button),
    /// sealed to the booked teacher.
    pub(crate) fn start_booked(self: &Arc<Self>) -> Result<RecordingId, ApiError> {
        let booking = self.booked_now().ok_or_else(|| {
            ApiError(
                StatusCode::CONFLICT,
                "no booked lesson is waiting to start now".into(),
            )
        })?;
        let id = booking.id;
        // Taken before the start, so a tap and a press at once start it once, and the slot's
        // end cannot call it "not recorded" while it starts; given back if the start fails.
        if !self.kept.lock().expect("daemon lock").settled.insert(id) {
            return Err(ApiError(
                StatusCode::CONFLICT,
                "the booked lesson has already started".into(),
            ));
        }
        let started = self.start(&Who::Booked(booking));
        let mut kept = self.kept.lock().expect("daemon lock");
        match started {
            Ok(recording) => {
                kept.outcomes.push((id, Some(recording)));
                self.save_kept(&kept);
                Ok(recording)
            }
            Err(e) => {
                kept.settled.remove(&id);
                Err(e)
            }
        }
    }

    /// Booking `id`, started as `recording` by a start that was undone, is waiting to be started
    /// again, unless the server has been told already that it was recorded.
    pub(super) fn give_back(&self, id: i64, recording: RecordingId) {
        let mut kept = self.kept.lock().expect("daemon lock");
        let told = kept.outcomes.len();
        kept.outcomes.retain(|o| *o != (id, Some(recording)));
        if kept.outcomes.len() < told {
            kept.settled.remove(&id);
            self.save_kept(&kept);
        }
    }

    /// Keeps the room's bookings the server sent, here and on disk.
    pub(super) fn set_bookings(&self, mut list: Vec<Booking>) {
        list.truncate(MAX_BOOKINGS);
        list.retain(|b| {
            b.ends_at > b.starts_at && crate::recorder::valid_username(&b.teacher.username)
        });
        tracing::info!(bookings = list.len(), "bookings received");
        let mut kept = self.kept.lock().expect("daemon lock");
        let ids: std::collections::BTreeSet<i64> = list.iter().map(|b| b.id).collect();
        // A kept slot that ended while this device was off or out of reach, and that the new
        // list no longer holds, is still "not recorded" (one that was cancelled is just gone).
        if self.clock_offset.known().is_some() {
            let now = self.server_now();
            let ended: Vec<i64> = kept
                .bookings
                .iter()
                .filter(|b| !ids.contains(&b.id) && b.ends_at <= now)
                .map(|b| b.id)
                .collect();
            for id in ended {
                self.settle_unstarted(&mut kept, id);
            }
        }
        // Settled ids of bookings that are gone are forgotten; outcomes wait to be sent.
        kept.settled.retain(|id| ids.contains(id));
        kept.bookings = list;
        self.save_kept(&kept);
        drop(kept);
        self.changed();
    }

    /// Runs the room's bookings until shutdown: a booked lesson that was started stops at its
    /// slot's end, after a warning two minutes before; a slot that ended with nobody starting it
    /// is "not recorded".
    pub(super) fn run_bookings(self: Arc<Self>) {
        let mut shown: Option<i64> = None;
        while !self.shutdown.load(Ordering::Relaxed) {
            let now = self.server_now();
            let running = match &*self.current.lock().expect("daemon lock") {
                Slot::Active(a) if !a.stopping => a.booking.clone().map(|b| (a.recording, b)),
                _ => None,
            };
            if let Some((recording, b)) = running {
                if now >= b.ends_at {
                    tracing::info!(booking = b.id, "the booked slot has ended: stopping");
                    if let Err(ApiError(_, e)) = self.stop_recording(Some(recording)) {
                        tracing::warn!(error = %e, "could not stop the booked lesson");
                    }
                } else if now >= b.ends_at - WARN_BEFORE_END {
                    let left = b.ends_at - now;
                    *self.notice.lock().expect("daemon lock") = Some((
                        format!(
                            "The booked slot ends in {} min {:02} s: the recording stops then.",
                            left / 60,
                            left % 60
                        ),
                        Instant::now() + Duration::from_secs(2),
                    ));
                    self.changed();
                }
            }
            // Slots that ended with nobody starting them (by a clock the server has confirmed:
            // an unchecked clock running ahead would settle lessons still to come).
            if self.clock_offset.known().is_some() {
                let mut kept = self.kept.lock().expect("daemon lock");
                let ended: Vec<i64> = kept
                    .bookings
                    .iter()
                    .filter(|b| b.ends_at <= now && !kept.settled.contains(&b.id))
                    .map(|b| b.id)
                    .collect();
                for id in ended {
                    self.settle_unstarted(&mut kept, id);
                }
            }
            // The screen and the light follow the booked slot as it begins and ends.
            let booked = self.booked_now().map(|b| b.id);
            if booked != shown {
                shown = booked;
                self.changed();
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Tells the server how booked lessons went, oldest first, until shutdown; after a failure
    /// it waits longer each time (up to 30 s), so a server out of reach is not hammered and
    /// nothing else waits for it.
    pub(super) fn send_outcomes(self: Arc<Self>) {
        let mut wait = Duration::from_secs(1);
        while !self.shutdown.load(Ordering::Relaxed) {
            let next = self
                .kept
                .lock()
                .expect("daemon lock")
                .outcomes
                .first()
                .copied();
            let sent = match next {
                None => false,
                Some((id, recording)) => {
                    match self
                        .client
                        .booking_outcome(id, &BookingOutcome { recording })
                    {
                        // Told, or the booking is gone: either way, done with.
                        Ok(()) | Err(UploadError::Refused { status: 404, .. }) => {
                            let mut kept = self.kept.lock().expect("daemon lock");
                            kept.outcomes.retain(|o| o.0 != id);
                            self.save_kept(&kept);
                            true
                        }
                        Err(_) => false,
                    }
                }
            };
            wait = if sent {
                Duration::from_millis(100)
            } else if next.is_some() {
                (wait * 2).clamp(Duration::from_secs(1), Duration::from_secs(30))
            } else {
                Duration::from_secs(1)
            };
            let until = Instant::now() + wait;
            while Instant::now() < until && !self.shutdown.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// What is kept on disk, or nothing (missing or unreadable: the server sends the bookings again).
pub(super) fn load(path: &std::path::Path) -> Kept {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Writes what is kept durably: a temp file, synced, renamed over the old one.
fn save(path: &std::path::Path, kept: &Kept) -> anyhow::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec(kept)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    // The rename itself is durable only once the folder is synced.
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn booked_lessons_wait_for_clocks_that_agree() {
        assert!(super::clocks_apart(None).is_none(), "not yet measured");
        assert!(super::clocks_apart(Some(60)).is_none());
        assert!(super::clocks_apart(Some(-60)).is_none());
        let off = super::clocks_apart(Some(-61)).unwrap();
        assert!(
            off.contains("61 s off") && off.contains("timedatectl"),
            "{off}"
        );
    }
}
