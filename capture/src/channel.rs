//! The device's live channel to the server: one long request (server-sent events) on the
//! mutual-TLS device listener. The server says its time first (`hello`), which the device keeps
//! as the offset between the two clocks, then sends remote commands (`command`), each of which
//! runs at once and is answered with an ordinary request. A dropped channel is opened again,
//! waiting longer after each failure (1 s, doubling, at most 30 s).

use crate::upload::UploadError;
use lessonlens_proto::wire::{Booking, ChannelHello, CommandOutcome, RemoteCommand};
use std::io::BufRead;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The server's clock minus this device's, in seconds, as the last `hello` said.
#[derive(Default)]
pub struct ClockOffset(AtomicI64, AtomicBool);

impl ClockOffset {
    pub fn seconds(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }

    /// The offset, once a `hello` has said it.
    pub fn known(&self) -> Option<i64> {
        self.1.load(Ordering::Relaxed).then(|| self.seconds())
    }

    fn set(&self, seconds: i64) {
        self.0.store(seconds, Ordering::Relaxed);
        self.1.store(true, Ordering::Relaxed);
    }
}

/// The longest event read (a week of a busy room's bookings is a few tens of KB).
const MAX_EVENT: usize = 256 * 1024;

/// One server-sent event: its name and its data.
#[derive(Debug, PartialEq, Eq)]
struct Event {
    name: String,
    data: String,
}

/// Reads events from `reader` until it ends, handing each to `on_event`. Comment lines (the
/// server's keep-alives) and unknown fields are skipped; an event's data is at most [`MAX_EVENT`] bytes.
fn read_events(reader: impl BufRead, mut on_event: impl FnMut(Event)) -> std::io::Result<()> {
    let (mut name, mut data) = (String::new(), String::new());
    for line in reader.lines() {
        let line = line?;
        if line.is_empty() {
            if !data.is_empty() {
                on_event(Event {
                    name: std::mem::take(&mut name),
                    data: std::mem::take(&mut data),
                });
            }
            name.clear();
        } else if let Some(v) = line.strip_prefix("event:") {
            name = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("data:") {
            if data.len() + v.len() > MAX_EVENT {
                return Err(std::io::Error::other("an event longer than 256 KB"));
            }
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(v.trim_start());
        }
    }
    Ok(())
}

/// What the channel needs of the rest of the device: the connection, and whoever carries out
/// commands.
pub trait Ends: Send + Sync + 'static {
    /// Opens the long request (see `upload::Client::open_channel`).
    fn open(&self) -> Result<Box<dyn BufRead + Send>, UploadError>;
    /// Tells the server how command `id` went.
    fn answer(&self, id: &str, outcome: &CommandOutcome) -> Result<(), UploadError>;
    /// Carries out a command; `server_minus_here` is the clocks' offset in seconds.
    fn run(&self, command: RemoteCommand, server_minus_here: i64) -> CommandOutcome;
    /// The clocks' offset the last `hello` measured.
    fn offset(&self) -> &ClockOffset;
    /// The room's bookings for the coming week, as the server sent them.
    fn bookings(&self, list: Vec<Booking>);
    /// The server was not told this outcome (it no longer waited for it, or could not be
    /// reached): undo what it began, so nothing records that the web app believes failed.
    fn unanswered(&self, outcome: &CommandOutcome);
}

/// Keeps the channel open until `shutdown`, running each command and sending the server its
/// outcome.
pub fn spawn(ends: Arc<impl Ends>, shutdown: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut wait = Duration::from_secs(1);
        while !shutdown.load(Ordering::Relaxed) {
            match ends.open() {
                Ok(reader) => {
                    tracing::info!("channel to the server open");
                    wait = Duration::from_secs(1);
                    let read = read_events(reader, |event| match event.name.as_str() {
                        "hello" => {
                            if let Ok(h) = serde_json::from_str::<ChannelHello>(&event.data) {
                                let here = crate::upload::now();
                                ends.offset().set(h.server_time - here);
                            }
                        }
                        "command" => match serde_json::from_str::<RemoteCommand>(&event.data) {
                            Ok(command) => {
                                let id = command.id.clone();
                                let outcome = ends.run(command, ends.offset().seconds());
                                match ends.answer(&id, &outcome) {
                                    Ok(()) => {}
                                    Err(UploadError::Refused { status: 404, .. }) => {
                                        ends.unanswered(&outcome)
                                    }
                                    Err(e) => {
                                        tracing::warn!(error = %e, "could not answer a remote command");
                                        ends.unanswered(&outcome)
                                    }
                                }
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "a remote command that does not parse")
                            }
                        },
                        "bookings" => match serde_json::from_str::<Vec<Booking>>(&event.data) {
                            Ok(list) => ends.bookings(list),
                            Err(e) => tracing::warn!(error = %e, "bookings that do not parse"),
                        },
                        _ => {}
                    });
                    if let Err(e) = read {
                        tracing::info!(error = %e, "channel to the server closed");
                    }
                }
                Err(e) => tracing::debug!(error = %e, "cannot open the channel to the server"),
            }
            let until = std::time::Instant::now() + wait;
            while std::time::Instant::now() < until && !shutdown.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
            }
            wait = (wait * 2).min(Duration::from_secs(30));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_read_as_the_server_sends_them() {
        let text = ": keep-alive\n\nevent: hello\ndata: {\"server_time\": 5}\n\nevent: command\ndata: a\ndata: b\nid: 7\n\n";
        let mut got = Vec::new();
        read_events(text.as_bytes(), |e| got.push(e)).unwrap();
        assert_eq!(
            got,
            [
                Event {
                    name: "hello".into(),
                    data: "{\"server_time\": 5}".into()
                },
                Event {
                    name: "command".into(),
                    data: "a\nb".into()
                },
            ]
        );
        let huge = format!("data: {}\n\n", "x".repeat(300 * 1024));
        assert!(read_events(huge.as_bytes(), |_| {}).is_err());
    }
}
