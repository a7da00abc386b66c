//! Ingest: what a device uploads, checked and kept. A segment is checked (its header, its label,
//! the numbers in it, its length and hash), matched to the teacher whose key it is sealed to,
//! written to the blob store and then recorded in one transaction, which is the commit point. A
//! manifest is parsed, bounded, and stored as parsed. The same upload again gets the same
//! receipt; anything for a recording that was deleted is answered as kept and not kept.

use crate::domain::clock;
use crate::domain::people::UserId;
use crate::store::blobs::{BlobStore, Incoming};
use crate::store::locks::Take;
use crate::store::vault::Vault;
use crate::store::{recordings, segments};
use lessonlens_proto::envelope::{Label, SegmentHeader};
use lessonlens_proto::wire::{ManifestReceipt, Receipt};
use lessonlens_proto::{Manifest, RecordingId, SegmentIndex};
use rusqlite::Connection;
use sha2::{Digest, Sha256};

/// The most recordings one device may begin in a day: far more than a classroom has lessons, and a
/// bound on how many a hostile device can put in teachers' libraries and the offline list.
pub const MAX_NEW_RECORDINGS_PER_DAY: i64 = 100;

/// What a device is told when its recording belongs to another device.
pub const OTHER_DEVICE: &str = "this recording belongs to another device";
/// What a device is told past [`MAX_NEW_RECORDINGS_PER_DAY`].
pub const TOO_MANY_RECORDINGS: &str = "this device has begun more recordings in the last day than a classroom can; it keeps this one and tries again later; an admin should look at the device";

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Refused for good; the device quarantines it.
    #[error("{0}")]
    Invalid(String),
    #[error("{}", OTHER_DEVICE)]
    OtherDevice,
    #[error("{0}")]
    Conflict(String),
    #[error("{}", TOO_MANY_RECORDINGS)]
    TooManyRecordings,
    /// The blob store failed (a full disk, storage out of reach): worth trying again.
    #[error(transparent)]
    Store(#[from] std::io::Error),
    #[error(transparent)]
    Db(#[from] rusqlite::Error),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

type Result<T> = std::result::Result<T, IngestError>;

/// Everything checked about a received segment before it is kept.
pub fn check_upload(
    incoming: &Incoming,
    rec: RecordingId,
    index: SegmentIndex,
    claimed: &str,
) -> Result<SegmentHeader> {
    let header = SegmentHeader::parse(incoming.head())
        .map_err(|e| IngestError::Invalid(format!("not a valid segment: {e}")))?;
    if header.label
        != (Label {
            recording: rec,
            index,
        })
    {
        return Err(IngestError::Invalid(format!(
            "segment says it is segment {} of {} but was uploaded as segment {index} of {rec}",
            header.label.index, header.label.recording
        )));
    }
    // The poster and talk time have reserved indices; every other number is bounded by what a
    // lesson can be.
    let numbered = if lessonlens_proto::SegmentKind::of(index, 0, false).attachment() {
        0
    } else {
        index
    };
    if numbered != index && (header.start_us, header.duration_us) != (0, 0) {
        return Err(IngestError::Invalid(
            "a poster frame or talk time has no place on the lesson's timeline, but this one claims one".into(),
        ));
    }
    lessonlens_proto::manifest::limits::check_segment(
        numbered,
        header.start_us,
        header.duration_us,
    )
    .map_err(IngestError::Invalid)?;
    if incoming.len() != header.envelope_len() {
        return Err(IngestError::Invalid(format!(
            "segment is {} bytes but its header promises {}: truncated or padded in transit; the device keeps it and retries",
            incoming.len(),
            header.envelope_len()
        )));
    }
    if incoming.sha256_so_far() != claimed {
        return Err(IngestError::Invalid(
            "body does not match its sha256 header; the device keeps it and retries".into(),
        ));
    }
    Ok(header)
}

/// Refuses a recording that belongs to another device or another teacher.
fn check_claim(existing: Option<(i64, UserId)>, device: i64, owner: UserId) -> Result<()> {
    match existing {
        Some((d, _)) if d != device => Err(IngestError::OtherDevice),
        Some((_, o)) if o != owner => Err(IngestError::Conflict(
            "this segment is sealed to a different teacher than the rest of the recording".into(),
        )),
        _ => Ok(()),
    }
}

/// Makes the recording's row for `device` if it does not exist yet, after [`check_claim`] and
/// within [`MAX_NEW_RECORDINGS_PER_DAY`].
fn claim_recording(
    c: &Connection,
    rec: RecordingId,
    device: i64,
    owner: UserId,
    started_at: Option<i64>,
) -> Result<()> {
    let existing = recordings::device_and_owner(c, rec)?;
    check_claim(existing, device, owner)?;
    if existing.is_none() {
        let now = clock::now();
        if recordings::begun_by_device_since(c, device, now - clock::DAY)?
            >= MAX_NEW_RECORDINGS_PER_DAY
        {
            return Err(IngestError::TooManyRecordings);
        }
        recordings::insert(c, rec, owner, device, now, started_at)?;
    }
    Ok(())
}

/// The same bytes again get the same receipt; different bytes for a stored segment are refused.
fn same_or_conflict(
    rec: RecordingId,
    index: SegmentIndex,
    stored: String,
    claimed: &str,
    bytes: u64,
) -> Result<Receipt> {
    if stored == claimed {
        return Ok(Receipt {
            recording: rec,
            index,
            sha256: stored,
            bytes,
        });
    }
    Err(IngestError::Conflict(format!(
        "segment {index} of {rec} is already stored with different content"
    )))
}

/// Keeps segment `index` of `rec` from `device`, received into `incoming` with the hash the
/// device `claimed`. The database and the vault are taken one step at a time.
#[allow(clippy::too_many_arguments)]
pub fn store_segment(
    db: &impl Take<Connection>,
    vault: &impl Take<Vault>,
    blobs: &dyn BlobStore,
    device: i64,
    rec: RecordingId,
    index: SegmentIndex,
    claimed: &str,
    incoming: Incoming,
) -> Result<Receipt> {
    let header = check_upload(&incoming, rec, index, claimed)?;
    let owner = vault.take()?.owner_of(&header.recipient)?.ok_or_else(|| {
        IngestError::Invalid(
            "segment is sealed to a key this server does not know; re-sync the device's teacher keys".into(),
        )
    })?;
    let bytes = incoming.len();
    // An upload the server already holds (the device missed our receipt) is answered without
    // writing anything, after checking that the recording is this device's and this teacher's.
    {
        let c = db.take()?;
        if recordings::was_deleted(&c, rec)? {
            return same_or_conflict(rec, index, claimed.to_string(), claimed, bytes);
        }
        check_claim(recordings::device_and_owner(&c, rec)?, device, owner)?;
        if let Some(stored) = segments::sha_of(&c, rec, index)? {
            return same_or_conflict(rec, index, stored, claimed, bytes);
        }
    }
    let sha = blobs.commit(incoming)?;
    // Claim, insert and read back in one transaction: the row is the commit point, and two
    // concurrent uploads of the same segment cannot both insert.
    let stored = (|| -> Result<Option<String>> {
        let c = db.take()?;
        let tx = c.unchecked_transaction()?;
        // Deleted while this upload was on its way: keep nothing.
        if recordings::was_deleted(&tx, rec)? {
            return Ok(None);
        }
        claim_recording(&tx, rec, device, owner, None)?;
        let stored = segments::insert(&tx, rec, index, &sha, bytes, &header)?;
        tx.commit()?;
        Ok(Some(stored))
    })();
    let discard = |sha: &str| {
        // No row refers to this blob (its bytes name this very segment): remove it.
        let _ = blobs.remove(sha);
    };
    match stored {
        Ok(Some(stored)) if stored == sha => Ok(Receipt {
            recording: rec,
            index,
            sha256: sha,
            bytes,
        }),
        Ok(Some(stored)) => {
            // Lost a race to different bytes for the same segment.
            discard(&sha);
            same_or_conflict(rec, index, stored, claimed, bytes)
        }
        Ok(None) => {
            discard(&sha);
            same_or_conflict(rec, index, sha, claimed, bytes)
        }
        Err(e) => {
            discard(&sha);
            Err(e)
        }
    }
}

/// Keeps `rec`'s manifest from `device` (the bytes as sent, `body`): what is stored is what was
/// parsed, with an older device's claim hash replaced by the vault's tag of it. Answers with the
/// manifest's hash and the segments still missing.
pub fn store_manifest(
    db: &impl Take<Connection>,
    vault: &impl Take<Vault>,
    device: i64,
    rec: RecordingId,
    body: &[u8],
) -> Result<ManifestReceipt> {
    let mut manifest = Manifest::parse(body).map_err(|e| IngestError::Invalid(e.to_string()))?;
    if manifest.recording != rec {
        return Err(IngestError::Invalid(format!(
            "manifest is for {} but was uploaded for {rec}",
            manifest.recording
        )));
    }
    let owner = {
        let v = vault.take()?;
        manifest.claim = Option::take(&mut manifest.claim).map(|c| v.keepable_claim(c));
        v.owner_of(&manifest.recipient)?
    }
    .ok_or_else(|| IngestError::Invalid("manifest names a key this server does not know".into()))?;
    let json = String::from_utf8_lossy(&manifest.to_json()).into_owned();
    let started_at = lessonlens_proto::manifest::limits::plausible_start(manifest.started_at);
    let missing = {
        let c = db.take()?;
        if recordings::was_deleted(&c, rec)? {
            Vec::new()
        } else {
            claim_recording(&c, rec, device, owner, started_at)?;
            recordings::set_manifest(&c, rec, &json, manifest.clean_stop, started_at)?;
            manifest.missing_from(&segments::indices(&c, rec)?)
        }
    };
    tracing::info!(
        recording = %rec,
        missing = lessonlens_proto::manifest::count(&missing),
        clean_stop = manifest.clean_stop,
        "manifest stored"
    );
    Ok(ManifestReceipt {
        recording: rec,
        sha256: hex::encode(Sha256::digest(body)),
        missing: lessonlens_proto::manifest::first_indices(
            &missing,
            lessonlens_proto::wire::MISSING_LISTED,
        ),
        missing_spans: missing,
    })
}
