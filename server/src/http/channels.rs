//! Each classroom device's live channel: one long request (server-sent events) on the
//! mutual-TLS device listener, over which the server sends remote commands. A command is
//! delivered at once or not at all: there is no queue, and a command nobody answers within
//! [`ANSWER_WITHIN`] fails in the web app with the reason.

use crate::domain::clock;
use lessonlens_proto::wire::{Booking, CommandOutcome, RemoteCommand};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// How long the web app waits for a device to carry out a command (a start opens the camera and
/// microphone first, which takes a few seconds).
pub const ANSWER_WITHIN: Duration = Duration::from_secs(12);

/// The open channels, by device id, and the commands waiting for their answer.
#[derive(Default)]
pub struct Channels {
    open: Mutex<HashMap<i64, Open>>,
    waiting: Mutex<HashMap<String, Waiting>>,
    next: std::sync::atomic::AtomicU64,
}

/// What the server sends down a channel.
#[derive(Debug)]
pub enum Push {
    Command(RemoteCommand),
    /// The room's bookings for the coming week (all of them, each time they change).
    Bookings(Vec<Booking>),
}

struct Open {
    tx: mpsc::Sender<Push>,
    since: i64,
    connection: u64,
}

struct Waiting {
    device: i64,
    answer: oneshot::Sender<CommandOutcome>,
}

/// A device's open channel; closing it (dropping this) takes it off the list, unless a newer
/// connection of the same device replaced it.
pub struct Connected {
    channels: Arc<Channels>,
    device: i64,
    connection: u64,
}

impl Drop for Connected {
    fn drop(&mut self) {
        let mut open = self.channels.open.lock().expect("channels lock");
        if open.get(&self.device).map(|o| o.connection) == Some(self.connection) {
            open.remove(&self.device);
        }
    }
}

/// Why a command did not run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SendError {
    #[error("the room's device is not connected to the server (switched off, or its network is down); nothing was sent")]
    Offline,
    #[error("the room's device did not answer within {} seconds; if it had begun, it stops by itself", ANSWER_WITHIN.as_secs())]
    NoAnswer,
    #[error("the room's device is still busy with earlier commands; try again in a moment")]
    Busy,
    #[error("{0}")]
    Refused(String),
}

impl Channels {
    /// Opens device `device`'s channel (a newer connection replaces an older one). The receiver
    /// gets its commands; the guard closes it.
    pub fn connect(self: &Arc<Self>, device: i64) -> (Connected, mpsc::Receiver<Push>) {
        let connection = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(16);
        self.open.lock().expect("channels lock").insert(
            device,
            Open {
                tx,
                since: clock::now(),
                connection,
            },
        );
        (
            Connected {
                channels: self.clone(),
                device,
                connection,
            },
            rx,
        )
    }

    /// Since when device `device`'s channel has been open, if it is.
    pub fn connected_since(&self, device: i64) -> Option<i64> {
        self.open
            .lock()
            .expect("channels lock")
            .get(&device)
            .map(|o| o.since)
    }

    /// Sends `command` to device `device` and waits for its answer.
    pub async fn send(
        &self,
        device: i64,
        command: RemoteCommand,
    ) -> Result<CommandOutcome, SendError> {
        let tx = self
            .open
            .lock()
            .expect("channels lock")
            .get(&device)
            .map(|o| o.tx.clone())
            .ok_or(SendError::Offline)?;
        let id = command.id.clone();
        let (answer, answered) = oneshot::channel();
        self.waiting
            .lock()
            .expect("channels lock")
            .insert(id.clone(), Waiting { device, answer });
        let result = async {
            tx.try_send(Push::Command(command)).map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => SendError::Busy,
                mpsc::error::TrySendError::Closed(_) => SendError::Offline,
            })?;
            match tokio::time::timeout(ANSWER_WITHIN, answered).await {
                Ok(Ok(outcome)) => match &outcome.error {
                    Some(e) => Err(SendError::Refused(e.clone())),
                    None => Ok(outcome),
                },
                _ => Err(SendError::NoAnswer),
            }
        }
        .await;
        self.waiting.lock().expect("channels lock").remove(&id);
        result
    }

    /// Closes device `device`'s channel (it was revoked): its stream ends at once.
    pub fn disconnect(&self, device: i64) {
        self.open.lock().expect("channels lock").remove(&device);
    }

    /// The devices whose channels are open.
    pub fn open_devices(&self) -> Vec<i64> {
        self.open
            .lock()
            .expect("channels lock")
            .keys()
            .copied()
            .collect()
    }

    /// Sends device `device` its bookings, if its channel is open (otherwise it gets them when it
    /// connects).
    pub fn push_bookings(&self, device: i64, bookings: Vec<Booking>) {
        if let Some(o) = self.open.lock().expect("channels lock").get(&device) {
            let _ = o.tx.try_send(Push::Bookings(bookings));
        }
    }

    /// Device `device` answers command `id`; false if no such command of its is waiting.
    pub fn answer(&self, device: i64, id: &str, outcome: CommandOutcome) -> bool {
        let mut waiting = self.waiting.lock().expect("channels lock");
        match waiting.get(id) {
            Some(w) if w.device == device => {}
            _ => return false,
        }
        let w = waiting.remove(id).expect("present");
        w.answer.send(outcome).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lessonlens_proto::wire::RemoteAction;

    fn command(id: &str) -> RemoteCommand {
        RemoteCommand {
            id: id.into(),
            action: RemoteAction::Stop,
            teacher: None,
            by: "Ada Admin".into(),
            sent_at: 0,
        }
    }

    #[tokio::test]
    async fn a_command_reaches_the_open_channel_and_only_its_device_answers() {
        let channels = Arc::new(Channels::default());
        assert_eq!(
            channels.send(1, command("a")).await,
            Err(SendError::Offline),
            "nothing is queued for a device that is not connected"
        );
        let (guard, mut rx) = channels.connect(1);
        assert!(channels.connected_since(1).is_some());
        let send = channels.send(1, command("b"));
        let device = async {
            let Some(Push::Command(got)) = rx.recv().await else {
                panic!("not a command")
            };
            assert_eq!(got.id, "b");
            assert!(!channels.answer(
                2,
                "b",
                CommandOutcome {
                    error: None,
                    recording: None
                }
            ));
            assert!(channels.answer(
                1,
                "b",
                CommandOutcome {
                    error: Some("no camera".into()),
                    recording: None
                }
            ));
        };
        let (sent, ()) = tokio::join!(send, device);
        assert_eq!(sent, Err(SendError::Refused("no camera".into())));
        // A newer connection replaces the older; the older one's closing leaves it open.
        let (newer, _rx2) = channels.connect(1);
        drop(guard);
        assert!(channels.connected_since(1).is_some());
        drop(newer);
        assert!(channels.connected_since(1).is_none());
    }
}
