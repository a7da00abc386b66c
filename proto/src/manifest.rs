//! The recording manifest: what the device says about a whole recording when it stops (or when it
//! finds a recording left open by a crash). With it the server can tell a complete recording from an
//! incomplete one, and a lost or swapped segment from a present one.

use crate::ids::{RecordingId, SegmentIndex};
use crate::keys::{KemT, KeyFingerprint, PublicKey, SecretKey};
use hpke::aead::AesGcm256;
use hpke::kdf::HkdfSha256;
use hpke::{Deserializable, Kem, OpModeR, OpModeS, Serializable};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use zeroize::Zeroizing;

pub const MANIFEST_VERSION: u32 = 1;

/// What a real lesson can be. A device's numbers are untrusted: the server refuses a manifest or
/// a segment beyond these, so that nothing it stores or derives grows with a number a device sent.
pub mod limits {
    use crate::ids::SegmentIndex;

    /// The longest recording: a whole day.
    pub const MAX_RECORDING_US: u64 = 24 * 3600 * 1_000_000;
    /// The longest segment (the capture cuts 1-6 s segments).
    pub const MAX_SEGMENT_US: u64 = 60 * 1_000_000;
    /// The highest media segment index: a day of 1 s segments. The poster's reserved index is
    /// checked apart.
    pub const MAX_SEGMENT_INDEX: SegmentIndex = 86_400;
    /// Earliest and latest plausible start of a recording (2020-01-01, 2100-01-01), Unix seconds.
    /// A start outside (a device whose clock was never set) is not stored; the server's time of
    /// arrival stands in, and the lesson itself is kept.
    pub const STARTED_AT: std::ops::RangeInclusive<i64> = 1_577_836_800..=4_102_444_800;

    /// `started_at` if it is plausible.
    pub fn plausible_start(started_at: i64) -> Option<i64> {
        STARTED_AT.contains(&started_at).then_some(started_at)
    }

    /// Checks one segment's index and times against the limits; says which is out of range.
    pub fn check_segment(
        index: SegmentIndex,
        start_us: u64,
        duration_us: u64,
    ) -> Result<(), String> {
        if index > MAX_SEGMENT_INDEX {
            return Err(format!(
                "segment index {index} is beyond the last a lesson can have ({MAX_SEGMENT_INDEX})"
            ));
        }
        if duration_us > MAX_SEGMENT_US {
            return Err(format!(
                "segment {index} lasts {duration_us} us, longer than a segment can ({MAX_SEGMENT_US} us)"
            ));
        }
        if start_us > MAX_RECORDING_US {
            return Err(format!(
                "segment {index} starts {start_us} us into the lesson, later than a lesson can last"
            ));
        }
        Ok(())
    }
}

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
    /// key: the code the teacher typed, sealed by [`seal_claim`] (or, from older devices,
    /// [`claim_hash`]), so that they can later show it is theirs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<String>,
}

/// What a device records for an offline recording instead of the code a teacher typed: the code
/// sealed (HPKE, as a segment's data key) to the school's unassigned key, bound to the recording,
/// as hex (encapsulated key, then ciphertext and tag). Only the server's key vault opens it: a 4-8
/// digit code cannot be found by guessing against it, on a stolen device or a copied database.
pub fn seal_claim<R: rand_core::RngCore + rand_core::CryptoRng>(
    recipient: &PublicKey,
    recording: RecordingId,
    code: &str,
    rng: &mut R,
) -> Result<String, crate::envelope::SealError> {
    let (encapped, sealed) = hpke::single_shot_seal::<AesGcm256, HkdfSha256, KemT, R>(
        &OpModeS::Base,
        &recipient.0,
        &claim_info(recording),
        code.as_bytes(),
        b"",
        rng,
    )
    .map_err(|_| crate::envelope::SealError::Hpke)?;
    let mut out = encapped.to_bytes().to_vec();
    out.extend_from_slice(&sealed);
    Ok(hex::encode(out))
}

/// The code [`seal_claim`] sealed, if `sk` opens it for this recording.
pub fn open_claim(
    sk: &SecretKey,
    recording: RecordingId,
    claim: &str,
) -> Option<Zeroizing<String>> {
    let bytes = hex::decode(claim).ok()?;
    const ENCAPPED: usize = 32;
    if bytes.len() <= ENCAPPED || bytes.len() > ENCAPPED + 8 + 16 {
        return None;
    }
    let encapped =
        <<KemT as Kem>::EncappedKey as Deserializable>::from_bytes(&bytes[..ENCAPPED]).ok()?;
    let code = hpke::single_shot_open::<AesGcm256, HkdfSha256, KemT>(
        &OpModeR::Base,
        &sk.secret,
        &encapped,
        &claim_info(recording),
        &bytes[ENCAPPED..],
        b"",
    )
    .ok()?;
    String::from_utf8(code).ok().map(Zeroizing::new)
}

fn claim_info(recording: RecordingId) -> Vec<u8> {
    let mut info = b"lessonlens-claim-v2".to_vec();
    info.extend_from_slice(recording.as_bytes());
    info
}

/// Whether `claim` is an older device's [`claim_hash`] (64 hex digits) rather than a sealed
/// claim (at least 104 hex digits).
pub fn is_claim_hash(claim: &str) -> bool {
    claim.len() == 64 && claim.bytes().all(|b| b.is_ascii_hexdigit())
}

/// What devices recorded before [`seal_claim`]: SHA-256 (hex) over a fixed prefix, the recording
/// id and the code. Trying every code reverses it in seconds, so the server never keeps one: it
/// keeps an HMAC of it under a key from its master key instead, and claims are checked against
/// that. Never made now.
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
    #[error("manifest is out of range: {0}")]
    OutOfRange(String),
}

impl Manifest {
    pub fn parse(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let m: Manifest =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Json(e.to_string()))?;
        if m.version != MANIFEST_VERSION {
            return Err(ManifestError::Version(m.version));
        }
        // Each index is at most MAX_SEGMENT_INDEX and listed once, so this also bounds the list.
        let mut seen = BTreeSet::new();
        for s in &m.segments {
            limits::check_segment(s.index, s.start_us, s.duration_us)
                .map_err(ManifestError::OutOfRange)?;
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

    /// The segments a complete recording must have (0 ..= the highest index listed) that are not
    /// in `present`, as inclusive spans `[first, last]`. The work and the answer grow with the
    /// segments stored, never with the numbers a device wrote in its manifest.
    pub fn missing_from(&self, present: &BTreeSet<SegmentIndex>) -> Vec<Span> {
        let Some(top) = self.segments.iter().map(|s| s.index).max() else {
            return Vec::new();
        };
        let mut spans = Vec::new();
        let mut next = 0;
        for &i in present.range(..=top) {
            if i > next {
                spans.push([next, i - 1]);
            }
            next = i + 1;
        }
        if next <= top {
            spans.push([next, top]);
        }
        spans
    }
}

/// Consecutive missing segments, first and last included.
pub type Span = [SegmentIndex; 2];

/// How many segments `spans` cover.
pub fn count(spans: &[Span]) -> u32 {
    spans.iter().map(|[a, b]| b - a + 1).sum()
}

/// The first `n` indices `spans` cover, in order.
pub fn first_indices(spans: &[Span], n: usize) -> Vec<SegmentIndex> {
    spans.iter().flat_map(|&[a, b]| a..=b).take(n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;

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

    /// Issue 14.5: the claim is the code sealed to the unassigned key, not a hash anyone can
    /// reverse by trying the 10^4..10^8 codes.
    #[test]
    fn a_sealed_claim_opens_only_with_the_key_and_for_its_recording() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        let (sk, pk) = SecretKey::generate(&mut rng);
        let (other, _) = SecretKey::generate(&mut rng);
        let rec = RecordingId::from_random_bytes([7; 16]);
        let claim = seal_claim(&pk, rec, "4821", &mut rng).unwrap();
        assert!(!claim.contains(&claim_hash(rec, "4821")));
        assert_eq!(open_claim(&sk, rec, &claim).unwrap().as_str(), "4821");
        assert!(open_claim(&other, rec, &claim).is_none());
        assert!(open_claim(&sk, RecordingId::from_random_bytes([8; 16]), &claim).is_none());
        assert!(open_claim(&sk, rec, "zz").is_none());
        // Two seals of one code differ, so equal codes cannot be spotted across lessons.
        assert_ne!(seal_claim(&pk, rec, "4821", &mut rng).unwrap(), claim);
    }

    /// Issue 14.3: a manifest naming a segment near 2^32 made the server build a list of four
    /// billion missing indices on every library page.
    #[test]
    fn refuses_numbers_no_real_lesson_has() {
        let mut m = sample();
        m.segments[1].index = 4_294_967_000;
        assert!(matches!(
            Manifest::parse(&m.to_json()),
            Err(ManifestError::OutOfRange(_))
        ));
        let mut m = sample();
        m.segments[1].duration_us = u64::MAX;
        assert!(matches!(
            Manifest::parse(&m.to_json()),
            Err(ManifestError::OutOfRange(_))
        ));
        let mut m = sample();
        m.segments[1].start_us = u64::MAX / 2;
        assert!(matches!(
            Manifest::parse(&m.to_json()),
            Err(ManifestError::OutOfRange(_))
        ));
        assert_eq!(limits::plausible_start(i64::MIN), None);
        assert_eq!(limits::plausible_start(1_800_000_000), Some(1_800_000_000));
        let mut m = sample();
        m.segments[1].index = limits::MAX_SEGMENT_INDEX;
        assert!(Manifest::parse(&m.to_json()).is_ok());
    }

    #[test]
    fn reports_missing_segments() {
        let m = sample();
        let present: BTreeSet<_> = [1].into_iter().collect();
        assert_eq!(m.missing_from(&present), vec![[0, 0]]);
        let all: BTreeSet<_> = [0, 1].into_iter().collect();
        assert!(m.missing_from(&all).is_empty());
    }

    /// Issue 14.3: a manifest listing the last index a lesson can have, with nothing uploaded,
    /// made a list of 86,401 indices on every library page. Now it is one span; the answer grows
    /// only with what was stored.
    #[test]
    fn missing_segments_are_spans_whatever_the_manifest_says() {
        let mut m = sample();
        m.segments[1].index = limits::MAX_SEGMENT_INDEX;
        let none = BTreeSet::new();
        assert_eq!(m.missing_from(&none), vec![[0, limits::MAX_SEGMENT_INDEX]]);
        assert_eq!(count(&m.missing_from(&none)), limits::MAX_SEGMENT_INDEX + 1);
        let some: BTreeSet<_> = [0, 5, 6, 9, limits::MAX_SEGMENT_INDEX, crate::POSTER_INDEX]
            .into_iter()
            .collect();
        let spans = m.missing_from(&some);
        assert_eq!(
            spans,
            vec![[1, 4], [7, 8], [10, limits::MAX_SEGMENT_INDEX - 1]]
        );
        assert_eq!(count(&spans), 4 + 2 + limits::MAX_SEGMENT_INDEX - 10);
        assert_eq!(first_indices(&spans, 7), vec![1, 2, 3, 4, 7, 8, 10]);
    }
}
