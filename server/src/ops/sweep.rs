//! The retention sweep: recordings are deleted as the school's policy says, and teachers who
//! leave are deleted for good after a grace period, with a signed receipt. Each recording is
//! deleted in its own transaction with its audit entry (see [`crate::store::deletion`]), so a sweep
//! cut short by a crash or restart resumes where it stopped. Leaving teachers are handled by
//! [`crate::ops::offboarding`], which the sweep runs too.

use crate::domain::retention::plan;
use crate::store::locks::Take;
use crate::store::retention::{all_rows, load_policy};
use rusqlite::Connection;
use serde::Serialize;

/// What a sweep did.
#[derive(Debug, Default, Serialize)]
pub struct Swept {
    pub deleted: crate::store::deletion::Removed,
    pub teachers_deleted: Vec<String>,
}

/// Applies the policy at `now`: deletes due recordings (one transaction and audit entry each),
/// then finishes the deletion of teachers whose grace period is over, then removes the files. The
/// database and the vault are taken per step (see [`crate::store::locks`]), so requests go on meanwhile.
pub fn sweep(
    db: &impl Take<Connection>,
    vault: &impl Take<crate::store::vault::Vault>,
    blobs: &dyn crate::store::blobs::BlobStore,
    audit_key: &[u8; 32],
    now: i64,
) -> anyhow::Result<Swept> {
    let due = {
        let c = db.take()?;
        plan(now, &load_policy(&c)?, &all_rows(&c)?)
    };
    let mut swept = Swept::default();
    for (rec, why) in due {
        let r = crate::store::deletion::delete_rows(
            &*db.take()?,
            audit_key,
            std::slice::from_ref(&rec),
            "retention",
            why.audit_action(),
        )?;
        swept.deleted.recordings += r.recordings;
        swept.deleted.segments += r.segments;
        swept.deleted.bytes += r.bytes;
    }
    crate::store::deletion::sweep_blobs(db, blobs)?;
    swept.teachers_deleted = crate::ops::offboarding::finish_due(db, vault, blobs, audit_key, now)?;
    if swept.deleted.recordings > 0 || !swept.teachers_deleted.is_empty() {
        tracing::info!(
            recordings = swept.deleted.recordings,
            teachers = swept.teachers_deleted.len(),
            "retention sweep deleted data"
        );
    }
    Ok(swept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::clock::DAY;

    /// A blob store that notes whether the database or the vault was locked while it removed a
    /// file (an object store may take seconds per file).
    struct Probe<'a> {
        inner: crate::store::blobs::LocalBlobs,
        db: &'a std::sync::Mutex<Connection>,
        vault: &'a std::sync::Mutex<crate::store::vault::Vault>,
        removed: std::sync::atomic::AtomicUsize,
        locked: std::sync::atomic::AtomicBool,
    }

    impl crate::store::blobs::BlobStore for Probe<'_> {
        fn begin(&self) -> std::io::Result<crate::store::blobs::Incoming> {
            self.inner.begin()
        }
        fn commit(&self, incoming: crate::store::blobs::Incoming) -> std::io::Result<String> {
            self.inner.commit(incoming)
        }
        fn read(&self, sha: &str) -> std::io::Result<Vec<u8>> {
            self.inner.read(sha)
        }
        fn remove(&self, sha: &str) -> std::io::Result<()> {
            use std::sync::atomic::Ordering;
            if self.db.try_lock().is_err() || self.vault.try_lock().is_err() {
                self.locked.store(true, Ordering::SeqCst);
            }
            self.removed.fetch_add(1, Ordering::SeqCst);
            self.inner.remove(sha)
        }
        fn describe(&self) -> String {
            self.inner.describe()
        }
    }

    /// Issue 14.7: the sweep held the database and vault locks for a whole sweep, object-store
    /// deletions included, so every request waited. Now no lock is held while a file is removed,
    /// for an expired recording and for a leaving teacher's.
    #[test]
    fn a_sweep_holds_no_lock_while_it_removes_files() {
        use crate::domain::people::Role;
        use crate::store::accounts::{self};
        use crate::store::blobs::BlobStore;
        use std::sync::atomic::Ordering;
        let tmp = tempfile::tempdir().unwrap();
        let conn = crate::store::db::open(&tmp.path().join("db")).unwrap();
        let master =
            crate::store::vault::MasterKey::load_or_create(&tmp.path().join("master.key")).unwrap();
        let vault = crate::store::vault::Vault::open(&tmp.path().join("vault.db"), master).unwrap();
        let inner = crate::store::blobs::LocalBlobs::open(&tmp.path().join("blobs")).unwrap();
        conn.execute(
            "INSERT INTO devices (id, name, created_at) VALUES (1, 'room-1', 0)",
            [],
        )
        .unwrap();
        let now = 1_000 * DAY;
        for (who, created_at) in [("alice", 0), ("bob", now)] {
            let id =
                accounts::add_user(&conn, who, who, "a-long-password", &[Role::Teacher]).unwrap();
            vault.create_key(id, 0).unwrap();
            let rec = format!("{who}-lesson");
            conn.execute(
                "INSERT INTO recordings (id, owner_id, device_id, created_at) VALUES (?1, ?2, 1, ?3)",
                rusqlite::params![rec, id, created_at],
            )
            .unwrap();
            for index in 0..3 {
                let mut incoming = inner.begin().unwrap();
                incoming.write(format!("{rec} {index}").as_bytes()).unwrap();
                let sha = inner.commit(incoming).unwrap();
                conn.execute(
                    "INSERT INTO segments (recording_id, idx, sha256, bytes, start_us, duration_us, final, stored_at)
                     VALUES (?1, ?2, ?3, 1, 0, 0, 0, 0)",
                    rusqlite::params![rec, index, sha],
                )
                .unwrap();
            }
        }
        // Alice's lesson is past the school's 365 days; Bob is leaving today.
        let bob = accounts::find_user(&conn, "bob").unwrap().unwrap();
        crate::ops::offboarding::mark_leaving(&conn, &[7; 32], "cli", &bob, None, 0, now).unwrap();
        let (db, vault) = (std::sync::Mutex::new(conn), std::sync::Mutex::new(vault));
        let probe = Probe {
            inner,
            db: &db,
            vault: &vault,
            removed: Default::default(),
            locked: Default::default(),
        };
        let swept = sweep(&db, &vault, &probe, &[7; 32], now).unwrap();
        assert_eq!(swept.deleted.recordings, 1);
        assert_eq!(swept.teachers_deleted.len(), 1);
        assert_eq!(probe.removed.load(Ordering::SeqCst), 6);
        assert!(
            !probe.locked.load(Ordering::SeqCst),
            "a lock was held while a file was removed"
        );
    }
}
