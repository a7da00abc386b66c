//! Id newtypes. A recording id is a random UUID made by the device when a lesson starts, so a device
//! that is offline can still name its recordings without asking the server.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Identifies one recorded lesson across device, server and browser.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RecordingId(uuid::Uuid);

impl RecordingId {
    /// A fresh random id. The caller supplies the randomness so this crate stays free of I/O.
    pub fn from_random_bytes(bytes: [u8; 16]) -> Self {
        RecordingId(uuid::Builder::from_random_bytes(bytes).into_uuid())
    }

    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        RecordingId(uuid::Uuid::from_bytes(bytes))
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }
}

impl fmt::Display for RecordingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for RecordingId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s).map(RecordingId)
    }
}

/// Position of a segment within its recording. Index 0 is the initialisation segment (the fMP4
/// `ftyp` + `moov` header); media fragments are numbered from 1.
pub type SegmentIndex = u32;

/// The index of the initialisation segment.
pub const INIT_SEGMENT: SegmentIndex = 0;

/// The index a recording's poster frame (a small JPEG of its first frame) is sealed, uploaded and
/// stored under. It travels and is deleted like a segment, but is not media: it is never in the
/// manifest, the playlist or a download. Reserved, so no media segment can take its place.
pub const POSTER_INDEX: SegmentIndex = SegmentIndex::MAX;
