//! Deleting recordings for good: by their owner, by the retention sweeper, or when a teacher leaves.
//!
//! One transaction removes the rows (segments, comments and shares go with the recording), records
//! each deletion in the audit log, and lists the ciphertext files to remove in `blob_deletions`.
//! The files are removed after the commit; a crash in between leaves the list, which is worked off
//! at the next start. So a deletion is all-or-nothing in the database and finished on disk even
//! after a power cut.

use crate::domain::clock;
use crate::store::locks::Take;
use rusqlite::{params, Connection, Transaction, TransactionBehavior};

/// What a deletion removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Removed {
    pub recordings: u64,
    pub segments: u64,
    pub bytes: u64,
}

/// Removes `recs` from the database in one transaction, with one audit entry each
/// (`actor` did `action` to the recording), and queues their blobs for removal.
pub fn delete_rows(
    conn: &Connection,
    audit_key: &[u8; 32],
    recs: &[String],
    actor: &str,
    action: &str,
) -> rusqlite::Result<Removed> {
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let removed = delete_rows_in(&tx, audit_key, recs, actor, action)?;
    tx.commit()?;
    Ok(removed)
}

/// [`delete_rows`] inside the caller's write transaction, so the caller can record what was
/// removed in the same commit.
pub fn delete_rows_in(
    tx: &Transaction<'_>,
    audit_key: &[u8; 32],
    recs: &[String],
    actor: &str,
    action: &str,
) -> rusqlite::Result<Removed> {
    let mut removed = Removed::default();
    for rec in recs {
        let (segments, bytes): (u64, Option<u64>) = tx.query_row(
            "SELECT COUNT(*), SUM(bytes) FROM segments WHERE recording_id = ?1",
            [rec],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        tx.execute(
            "INSERT OR IGNORE INTO blob_deletions (sha256) SELECT sha256 FROM segments WHERE recording_id = ?1",
            [rec],
        )?;
        if tx.execute("DELETE FROM recordings WHERE id = ?1", [rec])? == 1 {
            tx.execute(
                "INSERT OR IGNORE INTO deleted_recordings (id, deleted_at) VALUES (?1, ?2)",
                params![rec, clock::now()],
            )?;
            crate::store::audit::append(tx, audit_key, actor, action, rec)?;
            removed.recordings += 1;
            removed.segments += segments;
            removed.bytes += bytes.unwrap_or(0);
        }
    }
    Ok(removed)
}

/// Lists blob `sha` for removal (by [`sweep_blobs`], after the caller's commit).
pub fn queue_blob(c: &Connection, sha: &str) -> rusqlite::Result<()> {
    c.execute(
        "INSERT OR IGNORE INTO blob_deletions (sha256) VALUES (?1)",
        [sha],
    )?;
    Ok(())
}

/// Removes the files listed in `blob_deletions`, then their entries. Safe to run again at any point.
/// The database is taken only to list the files and to strike each one off, not while the store
/// removes it (an object store may take seconds).
pub fn sweep_blobs(
    db: &impl Take<Connection>,
    blobs: &dyn crate::store::blobs::BlobStore,
) -> anyhow::Result<usize> {
    let pending: Vec<String> = {
        let c = db.take()?;
        let mut stmt = c.prepare("SELECT sha256 FROM blob_deletions")?;
        let list = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        list
    };
    for sha in &pending {
        match blobs.remove(sha) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!("cannot remove blob {sha}")))
            }
        }
        db.take()?
            .execute("DELETE FROM blob_deletions WHERE sha256 = ?1", params![sha])?;
    }
    Ok(pending.len())
}
