//! Claiming a lesson recorded offline. The device sealed it to the school's unassigned key and
//! kept the teacher's code sealed to that key too. The teacher types the code again; if it is
//! theirs and the lesson's, each segment's data key is re-sealed to the teacher (the content is
//! not touched) as new blobs, and one transaction hands the recording over and queues the old
//! blobs for removal, so a crash in between leaves the recording whole (and unassigned).

use crate::domain::people::{User, UserId};
use crate::store::blobs::BlobStore;
use crate::store::locks::Take;
use crate::store::vault::Vault;
use crate::store::{accounts, deletion, recordings, segments};
use lessonlens_proto::manifest::open_claim;
use lessonlens_proto::{Manifest, RecordingId, SecretKey, SegmentIndex};
use rusqlite::Connection;

/// What a teacher is told when the code is not theirs.
pub const NOT_YOUR_CODE: &str = "that is not your device code";
/// What a teacher is told when their code did not start the lesson.
pub const NOT_STARTED_WITH_YOUR_CODE: &str = "this lesson was not started with your code";

#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error("{}", NOT_YOUR_CODE)]
    NotYourCode,
    #[error("{}", NOT_STARTED_WITH_YOUR_CODE)]
    NotStartedWithYourCode,
    /// No such offline lesson (or not an offline one, or its manifest has not arrived).
    #[error("not found")]
    NotFound,
    #[error("this lesson was claimed a moment ago; refresh the page")]
    Taken,
    #[error(transparent)]
    Store(#[from] std::io::Error),
    #[error(transparent)]
    Db(#[from] rusqlite::Error),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Whether `code` is the one the device kept for the lesson, sealed to the unassigned key (opened
/// here, compared in constant time). Claims from older devices were kept as tags, which
/// `tagged` says match or not.
fn claim_matches(
    unassigned: &SecretKey,
    rec: RecordingId,
    claim: Option<&str>,
    code: &str,
    tagged: bool,
) -> bool {
    use subtle::ConstantTimeEq;
    let Some(claim) = claim else {
        return false;
    };
    match open_claim(unassigned, rec, claim) {
        Some(sealed) => sealed.as_bytes().ct_eq(code.as_bytes()).into(),
        None => tagged,
    }
}

/// Where the claim runs: the store, and whose lessons recorded offline are.
pub struct Place<'a, D, V> {
    pub db: &'a D,
    pub vault: &'a V,
    pub blobs: &'a dyn BlobStore,
    pub audit_key: &'a [u8; 32],
    /// The unassigned account's id.
    pub unassigned: UserId,
}

/// `teacher` claims offline lesson `rec` with `code`. `on_match` runs once the code is known to
/// be right (the caller's limit on wrong codes takes that attempt back).
pub fn claim<D: Take<Connection>, V: Take<Vault>>(
    at: &Place<'_, D, V>,
    teacher: &User,
    rec: RecordingId,
    code: &str,
    on_match: impl FnOnce(),
) -> Result<(), ClaimError> {
    let tag = at.vault.take()?.code_tag(code);
    let (mut manifest, stored) = {
        let c = at.db.take()?;
        if accounts::user_by_code(&c, &tag)?.map(|u| u.id) != Some(teacher.id) {
            return Err(ClaimError::NotYourCode);
        }
        let manifest = recordings::owner_and_manifest(&c, rec)?
            .filter(|(owner, _)| *owner == at.unassigned)
            .and_then(|(_, m)| m)
            .and_then(|m| Manifest::parse(m.as_bytes()).ok())
            .ok_or(ClaimError::NotFound)?;
        (manifest, segments::blobs_of(&c, rec)?)
    };
    let (from, to, tagged) = {
        let v = at.vault.take()?;
        (
            v.secret_key(at.unassigned)?.ok_or(ClaimError::NotFound)?,
            v.public_key(teacher.id)?.ok_or(ClaimError::NotFound)?,
            v.tagged_claim_matches(manifest.claim.as_deref().unwrap_or_default(), rec, code),
        )
    };
    if !claim_matches(&from, rec, manifest.claim.as_deref(), code, tagged) {
        return Err(ClaimError::NotStartedWithYourCode);
    }
    on_match();

    // Re-seal each data key to the teacher, as new blobs.
    let mut rewrapped: Vec<(SegmentIndex, String, String, u64)> = Vec::new();
    for (index, old) in stored {
        let sealed = at.blobs.read(&old)?;
        let new = lessonlens_proto::envelope::rewrap(
            &sealed,
            &from,
            &to,
            &mut rand_core::TryRngCore::unwrap_err(rand_core::OsRng),
        )
        .map_err(|e| anyhow::anyhow!("segment {index} of {rec}: {e}"))?;
        let mut incoming = at.blobs.begin()?;
        incoming.write(&new)?;
        let sha = at.blobs.commit(incoming)?;
        rewrapped.push((index, old, sha, new.len() as u64));
    }

    let handed_over = {
        let c = at.db.take()?;
        let tx =
            rusqlite::Transaction::new_unchecked(&c, rusqlite::TransactionBehavior::Immediate)?;
        // Two claims at once: the one that commits first wins; the other's new blobs are referred
        // to by nothing and go, and it is told the lesson is taken.
        if recordings::device_and_owner(&tx, rec)?.map(|(_, owner)| owner) != Some(at.unassigned) {
            for (_, _, new, _) in &rewrapped {
                deletion::queue_blob(&tx, new)?;
            }
            tx.commit()?;
            false
        } else {
            for (index, old, new, bytes) in &rewrapped {
                segments::replace_blob(&tx, rec, *index, new, *bytes)?;
                deletion::queue_blob(&tx, old)?;
                if let Some(s) = manifest.segments.iter_mut().find(|s| s.index == *index) {
                    s.sha256 = new.clone();
                }
            }
            // The manifest now describes what is stored: the re-sealed segments, to the teacher.
            manifest.recipient = to.fingerprint();
            manifest.claim = None;
            recordings::hand_over(
                &tx,
                rec,
                teacher.id,
                &String::from_utf8_lossy(&manifest.to_json()),
            )?;
            crate::store::audit::append(
                &tx,
                at.audit_key,
                &teacher.audit_id,
                "claim-offline-recording",
                &rec.to_string(),
            )?;
            tx.commit()?;
            true
        }
    };
    deletion::sweep_blobs(at.db, at.blobs)?;
    if handed_over {
        Ok(())
    } else {
        Err(ClaimError::Taken)
    }
}
