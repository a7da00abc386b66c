//! The recording manifest: what the device says about a whole recording when it stops (or when it
//! finds a recording left open by a crash). With it the server can tell a complete recording from an
//! incomplete one, and a lost or swapped segment from a present one.

use crate::ids::{RecordingId, SegmentIndex};
use crate::keys::KeyFingerprint;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

pub const MANIFEST_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestSegment {
    pub index: SegmentIndex,
    /// SHA-256 of the sealed envelope, lowercase hex.
    pub sha256: String,
    pub start_us: u64,
    pub duration_us: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub recording: RecordingId,
    pub recipient: KeyFingerprint,
    /// Wall-clock start, seconds since the Unix epoch, as the device saw it.
    pub started_at: i64,
    /// Every segment the device sealed, init segment (index 0) included.
    pub segments: Vec<ManifestSegment>,
    /// True when the recording ended with a clean stop (EOS); false when the device recovered it
    /// after a crash or power cut.
    pub clean_stop: bool,
    /// For a recording made while the server was unreachable, sealed to the school's unassigned
    /// key: [`claim_hash`] of the code the teacher typed, so that they can later show it is theirs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<String>,
}

/// What a device records for an offline recording, instead of the code a teacher typed: SHA-256
/// (hex) over a fixed prefix, the recording id and the code.
pub fn claim_hash(recording: RecordingId, code: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"lessonlens-claim-v1");
    h.update(recording.as_bytes());
    h.update(code.as_bytes());
    hex::encode(h.finalize())
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    #[error("manifest is not valid JSON for format version {MANIFEST_VERSION}: {0}")]
    Json(String),
    #[error("manifest version {0} is not supported")]
    Version(u32),
    #[error("manifest lists segment {0} twice")]
    DuplicateSegment(SegmentIndex),
    #[error("manifest segment {0} has a malformed sha256")]
    BadHash(SegmentIndex),
}

impl Manifest {
    pub fn parse(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let m: Manifest =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Json(e.to_string()))?;
        if m.version != MANIFEST_VERSION {
            return Err(ManifestError::Version(m.version));
        }
        let mut seen = BTreeSet::new();
        for s in &m.segments {
            if !seen.insert(s.index) {
                return Err(ManifestError::DuplicateSegment(s.index));
            }
            if s.sha256.len() != 64 || !s.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ManifestError::BadHash(s.index));
            }
        }
        Ok(m)
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("manifest serializes")
    }

    /// Indices a complete recording must have: 0 ..= the highest index listed.
    pub fn missing_from(&self, present: &BTreeSet<SegmentIndex>) -> Vec<SegmentIndex> {
        let top = self.segments.iter().map(|s| s.index).max();
        match top {
            None => Vec::new(),
            Some(top) => (0..=top).filter(|i| !present.contains(i)).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            version: MANIFEST_VERSION,
            recording: RecordingId::from_random_bytes([7; 16]),
            recipient: KeyFingerprint([1; 16]),
            started_at: 1_700_000_000,
            segments: vec![
                ManifestSegment {
                    index: 0,
                    sha256: "a".repeat(64),
                    start_us: 0,
                    duration_us: 0,
                },
                ManifestSegment {
                    index: 1,
                    sha256: "b".repeat(64),
                    start_us: 0,
                    duration_us: 2_000_000,
                },
            ],
            clean_stop: true,
            claim: None,
        }
    }

    #[test]
    fn round_trips_through_json() {
        let m = sample();
        assert_eq!(Manifest::parse(&m.to_json()).unwrap(), m);
    }

    #[test]
    fn rejects_duplicates_and_bad_hashes() {
        let mut m = sample();
        m.segments[1].index = 0;
        assert_eq!(
            Manifest::parse(&m.to_json()),
            Err(ManifestError::DuplicateSegment(0))
        );
        let mut m = sample();
        m.segments[1].sha256 = "zz".into();
        assert_eq!(
            Manifest::parse(&m.to_json()),
            Err(ManifestError::BadHash(1))
        );
        let mut m = sample();
        m.version = 9;
        assert_eq!(
            Manifest::parse(&m.to_json()),
            Err(ManifestError::Version(9))
        );
    }

    #[test]
    fn reports_missing_segments() {
        let m = sample();
        let present: BTreeSet<_> = [1].into_iter().collect();
        assert_eq!(m.missing_from(&present), vec![0]);
        let all: BTreeSet<_> = [0, 1].into_iter().collect();
        assert!(m.missing_from(&all).is_empty());
    }
}
