//! Commands from the web app, over the channel to the server (see `crate::channel`).

use super::*;
use std::sync::atomic::Ordering;

/// How old a command from the web app may be when it arrives (seconds, the server's clock).
const COMMAND_TOO_OLD: i64 = 5;
/// How long a start from the web app waits for the device's start-up checks.
const CHECKS_WAIT: Duration = Duration::from_secs(5);

/// Why a command sent at `sent_at` (the server's clock) is not carried out at `now` (this
/// device's clock, `server_minus_here` behind the server's), if it is too old or from the future.
fn too_old(sent_at: i64, now: i64, server_minus_here: i64) -> Option<String> {
    let age = now + server_minus_here - sent_at;
    (!(-COMMAND_TOO_OLD..=COMMAND_TOO_OLD).contains(&age)).then(|| {
        format!("the command reached the room {age} s after it was sent, so it was not carried out; try again")
    })
}

impl Daemon {
    /// Whether the start-up checks are done, waiting for them up to `within`.
    fn checks_settled(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while !self.checks_done.load(Ordering::Acquire) {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        true
    }

    /// Runs a command from the web app that came over the channel. It runs at once or not at
    /// all: one sent more than [`COMMAND_TOO_OLD`] seconds ago by the server's clock (with the
    /// offset the channel measured) is refused.
    pub(crate) fn remote(
        self: &Arc<Self>,
        command: lessonlens_proto::wire::RemoteCommand,
        server_minus_here: i64,
    ) -> lessonlens_proto::wire::CommandOutcome {
        use lessonlens_proto::wire::{CommandOutcome, RemoteAction};
        let refused = |error: String| CommandOutcome {
            error: Some(error),
            recording: None,
        };
        if let Some(why) = too_old(command.sent_at, crate::upload::now(), server_minus_here) {
            return refused(why);
        }
        tracing::info!(action = ?command.action, "a command from the web app");
        let by = command.by.clone();
        let done = match command.action {
            // A start waits a few seconds at most for the start-up checks (they hold the camera
            // and microphone for a moment); longer, and the device says so and the teacher tries
            // again, rather than begin after the web app gave up.
            RemoteAction::Start if !self.checks_settled(CHECKS_WAIT) => {
                return refused(
                    "the room's device is still starting up; try again in a few seconds".into(),
                )
            }
            RemoteAction::Start => match command.teacher {
                // The booked teacher starting their own booked lesson from the web: it is the
                // booked lesson (it ends with the slot, and counts as recorded).
                Some(teacher)
                    if self
                        .booked_now()
                        .is_some_and(|b| b.teacher.username == teacher.username) =>
                {
                    self.start_booked().map(Some)
                }
                Some(teacher) => self
                    .start(&Who::Remote {
                        teacher,
                        by: command.by,
                    })
                    .map(Some),
                None => return refused("a start names no teacher".into()),
            },
            RemoteAction::Pause => self.set_paused(true).map(|_| None),
            RemoteAction::Resume => self.set_paused(false).map(|_| None),
            RemoteAction::Stop => self.stop().map(|_| {
                self.notify(&format!("Stopped from the web by {}.", clean(&by)));
                None
            }),
        };
        match done {
            Ok(recording) => CommandOutcome {
                error: None,
                recording,
            },
            Err(ApiError(_, e)) => refused(e),
        }
    }
}

/// A name from the server, as the screen may show it: one line, at most 100 characters.
fn clean(name: &str) -> String {
    name.chars().filter(|c| !c.is_control()).take(100).collect()
}

/// The channel's ends: the daemon's client, and the daemon to carry commands out (which needs
/// the daemon shared, as a start hands it to the recording thread).
impl crate::channel::Ends for Arc<Daemon> {
    fn open(&self) -> Result<Box<dyn std::io::BufRead + Send>, upload::UploadError> {
        self.client.open_channel()
    }

    fn answer(
        &self,
        id: &str,
        outcome: &lessonlens_proto::wire::CommandOutcome,
    ) -> Result<(), upload::UploadError> {
        self.client.answer(id, outcome)
    }

    fn run(
        &self,
        command: lessonlens_proto::wire::RemoteCommand,
        server_minus_here: i64,
    ) -> lessonlens_proto::wire::CommandOutcome {
        self.remote(command, server_minus_here)
    }

    fn offset(&self) -> &crate::channel::ClockOffset {
        &self.clock_offset
    }

    fn bookings(&self, list: Vec<lessonlens_proto::wire::Booking>) {
        self.set_bookings(list)
    }

    fn unanswered(&self, outcome: &lessonlens_proto::wire::CommandOutcome) {
        // The web app was not told that this start worked: it must not record on. Only that
        // recording stops; a lesson started since by someone else records on.
        if let Some(recording) = outcome.recording {
            let booked = match &*self.current.lock().expect("daemon lock") {
                Slot::Active(a) if a.recording == recording => a.booking.as_ref().map(|b| b.id),
                _ => None,
            };
            tracing::warn!(%recording, "the web app was not told of this start: stopping it");
            if let Err(ApiError(_, e)) = self.stop_recording(Some(recording)) {
                tracing::info!(error = %e, "the unanswered start was not running");
            }
            // A booked lesson started this way may be started again in its slot.
            if let Some(id) = booked {
                self.give_back(id, recording);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_command_runs_only_within_seconds_of_being_sent_by_the_servers_clock() {
        // Sent at 1000 by the server's clock; this device's clock is 30 s behind.
        assert!(super::too_old(1000, 972, 30).is_none());
        assert!(
            super::too_old(1000, 975, 30).is_none(),
            "5 s late is still in time"
        );
        assert!(super::too_old(1000, 976, 30).unwrap().contains("6 s after"));
        assert!(super::too_old(1000, 960, 30).is_some(), "from the future");
    }
}
