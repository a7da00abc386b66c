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

/// The index a recording's talk time ([`crate::talk`]) is sealed, uploaded and stored under:
/// like the poster, it travels and is deleted with the lesson but is not media.
pub const TALK_INDEX: SegmentIndex = SegmentIndex::MAX - 1;

/// The lowest index that is not a media segment's but something sealed with the lesson (the
/// talk time and the poster). Every media index is far below (see `manifest::limits`).
pub const FIRST_ATTACHMENT: SegmentIndex = TALK_INDEX;
const _: () = assert!(crate::manifest::limits::MAX_SEGMENT_INDEX < FIRST_ATTACHMENT);

/// What a stored segment is, from its index and the timing its envelope authenticates. The one
/// place this rule is written: the playlist, the gaps on the timeline and the MP4 download all
/// ask here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentKind {
    /// The recording's first initialisation segment (index 0).
    Init,
    /// An initialisation segment a device made after a privacy pause: no media time, not final.
    Reinit,
    /// A media fragment.
    Media,
    /// The empty end marker a clean stop appends (no media time, final).
    EndMarker,
    /// The poster frame ([`POSTER_INDEX`]).
    Poster,
    /// The talk time ([`TALK_INDEX`]).
    Talk,
}

impl SegmentKind {
    pub fn of(index: SegmentIndex, duration_us: u64, final_segment: bool) -> SegmentKind {
        match index {
            INIT_SEGMENT => SegmentKind::Init,
            POSTER_INDEX => SegmentKind::Poster,
            TALK_INDEX => SegmentKind::Talk,
            _ if duration_us > 0 => SegmentKind::Media,
            _ if final_segment => SegmentKind::EndMarker,
            _ => SegmentKind::Reinit,
        }
    }

    /// Sealed with the lesson but not part of its media: never in the manifest, the playlist
    /// or a download.
    pub fn attachment(self) -> bool {
        matches!(self, SegmentKind::Poster | SegmentKind::Talk)
    }

    /// An initialisation segment: the start of a playable part.
    pub fn starts_part(self) -> bool {
        matches!(self, SegmentKind::Init | SegmentKind::Reinit)
    }
}

#[cfg(test)]
mod segment_kind_tests {
    use super::*;

    #[test]
    fn every_kind_of_segment_is_told_apart() {
        assert_eq!(SegmentKind::of(0, 0, false), SegmentKind::Init);
        assert_eq!(SegmentKind::of(3, 2_000_000, false), SegmentKind::Media);
        assert_eq!(SegmentKind::of(3, 2_000_000, true), SegmentKind::Media);
        assert_eq!(SegmentKind::of(7, 0, false), SegmentKind::Reinit);
        assert_eq!(SegmentKind::of(9, 0, true), SegmentKind::EndMarker);
        assert_eq!(SegmentKind::of(POSTER_INDEX, 0, false), SegmentKind::Poster);
        assert_eq!(SegmentKind::of(TALK_INDEX, 0, false), SegmentKind::Talk);
        assert!(SegmentKind::Talk.attachment() && SegmentKind::Poster.attachment());
        assert!(!SegmentKind::Media.attachment() && !SegmentKind::Init.attachment());
        assert!(SegmentKind::Reinit.starts_part() && !SegmentKind::Media.starts_part());
    }
}
