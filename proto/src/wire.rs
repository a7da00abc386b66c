//! JSON bodies exchanged over HTTP. Kept here so device, server and tests agree on one definition.

use crate::ids::{RecordingId, SegmentIndex};
use crate::manifest::Span;
use serde::{Deserialize, Serialize};

/// Header a device sends with each segment upload: lowercase hex SHA-256 of the body.
pub const SHA256_HEADER: &str = "x-lessonlens-sha256";

/// The server's answer to a stored segment. The device deletes its spool copy only when `sha256`
/// equals the hash of what it sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub recording: RecordingId,
    pub index: SegmentIndex,
    pub sha256: String,
    pub bytes: u64,
}

/// The server's answer to a stored manifest: its hash (so the device knows the server has exactly
/// what it sent) and the segments still missing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestReceipt {
    pub recording: RecordingId,
    pub sha256: String,
    /// The first missing segments, at most [`MISSING_LISTED`] (what devices before
    /// `missing_spans` read).
    pub missing: Vec<SegmentIndex>,
    /// Every missing segment, as spans `[first, last]`.
    #[serde(default)]
    pub missing_spans: Vec<Span>,
}

/// How many missing indices a [`ManifestReceipt`] lists one by one.
pub const MISSING_LISTED: usize = 1000;

/// A teacher's public key as the device fetches it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeacherKey {
    pub username: String,
    pub public_key: String,
    /// The teacher's name as people know it, for the device's screen while they record.
    #[serde(default)]
    pub display_name: String,
}

/// A device enrolling (on the web listener, before it has a certificate): the one-time code an
/// admin gave it and a certificate signing request (PEM) for the key pair it made itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollRequest {
    pub code: String,
    pub csr: String,
}

/// A device renewing its certificate (on the device listener) with a request for a fresh key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewRequest {
    pub csr: String,
}

/// What a device tells the server about itself every minute and when a recording starts or stops,
/// for the admin's device list. It names no teacher.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceReport {
    /// The capture software's version.
    pub version: String,
    /// "idle", "starting", "recording", "paused" or "stopping".
    pub state: String,
    /// Sealed bytes in the spool waiting for upload.
    pub bytes_waiting: u64,
    /// When the server last acknowledged a segment from this device (Unix seconds).
    pub last_upload_at: Option<i64>,
    /// The H.264 encoder of the current or last recording.
    pub video_encoder: Option<String>,
    /// Why the last recording ended on its own, if it did.
    pub last_error: Option<String>,
    /// What the watchdogs see while recording (a silent microphone, a black or frozen camera).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// The key the current recording is sealed to (its fingerprint, hex), so the server knows
    /// whose lesson is running: its teacher may pause and stop it from the web.
    #[serde(default)]
    pub recipient: Option<String>,
    /// The server's clock minus the device's, in seconds, as the device last measured it.
    #[serde(default)]
    pub clock_offset_seconds: Option<i64>,
}

/// The first event on a device's channel (`GET /api/device/v1/channel`): the server's clock, which
/// the device compares with its own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelHello {
    /// Unix seconds.
    pub server_time: i64,
}

/// What a remote command asks a device to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RemoteAction {
    Start,
    Pause,
    Resume,
    Stop,
}

/// A command sent to a device over its channel. It runs at once or not at all: a device refuses a
/// command older than a few seconds by the server's clock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteCommand {
    /// The device answers `POST /api/device/v1/commands/{id}` with a [`CommandOutcome`].
    pub id: String,
    pub action: RemoteAction,
    /// For a start: the teacher whose key the recording is sealed to.
    #[serde(default)]
    pub teacher: Option<TeacherKey>,
    /// Who sent it, as the device's screen shows it ("Tom Teacher", "an admin").
    pub by: String,
    /// When the server sent it (Unix seconds, the server's clock).
    pub sent_at: i64,
}

/// A booked lesson as its room's device keeps it: the slot, and the teacher it is sealed to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Booking {
    pub id: i64,
    /// Unix seconds, the server's clock.
    pub starts_at: i64,
    pub ends_at: i64,
    pub teacher: TeacherKey,
}

/// How a booked lesson went, as its device tells the server once the slot has begun or ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingOutcome {
    /// The recording, if the lesson was recorded; none: nobody started it.
    pub recording: Option<RecordingId>,
}

/// What a device answers to a [`RemoteCommand`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandOutcome {
    /// The error in words a teacher can act on, if it did not run.
    pub error: Option<String>,
    /// The recording a start began.
    #[serde(default)]
    pub recording: Option<RecordingId>,
}

/// A certificate the school CA issued to a device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceCertificate {
    /// The device's name, as the admin gave it.
    pub device: String,
    /// The device's certificate (PEM).
    pub certificate: String,
    /// The school CA certificate (PEM), which the device trusts from now on.
    pub ca_certificate: String,
    /// When the certificate expires (Unix seconds); the device renews well before.
    pub not_after: i64,
}

/// What the server says when it refuses a request: a message for a person, nothing internal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

/// A recording as listed for its viewer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordingSummary {
    pub id: RecordingId,
    pub created_at: i64,
    pub device: String,
    pub segments: u32,
    pub duration_seconds: f64,
    /// "recording", "complete" or "incomplete".
    pub status: String,
    /// The segments a complete recording would still need, as spans `[first, last]`.
    pub missing: Vec<Span>,
    /// How many segments `missing` covers.
    pub missing_segments: u32,
    /// Segments whose stored bytes differ from the hash the device listed in its manifest.
    pub mismatched: Vec<SegmentIndex>,
    /// Whether the device sent a poster frame (`/api/recordings/{id}/poster.jpg`).
    #[serde(default)]
    pub poster: bool,
    /// Whether the device sent talk time (`/api/recordings/{id}/talk`).
    #[serde(default)]
    pub talk: bool,
}
