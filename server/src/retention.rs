//! Retention: recordings are kept only as long as the school's policy says, and teachers who leave
//! are deleted for good after a grace period, with a signed receipt.
//!
//! The planner ([`plan`], [`delete_after`]) is a pure function of the time, the policy and the
//! rows. The sweeper ([`sweep`]) applies it: each recording is deleted in its own transaction
//! with its audit entry (see [`crate::deletion`]), so a sweep cut short by a crash or restart
//! resumes where it stopped. Leaving teachers are handled by [`crate::offboarding`], which the
//! sweeper runs too.

use crate::locks::Take;
use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};

use crate::accounts::DAY;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Delete every recording this many days after it was made.
    pub keep_days: u32,
    /// Delete recordings never shared with anyone this many days after they were made.
    pub unshared_days: Option<u32>,
    /// Days between marking a teacher as leaving and deleting everything of theirs.
    pub grace_days: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            keep_days: 365,
            unshared_days: None,
            grace_days: 7,
        }
    }
}

impl Policy {
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=3650).contains(&self.keep_days) {
            return Err("keep_days must be between 1 and 3650".into());
        }
        if let Some(d) = self.unshared_days {
            if d == 0 || d > self.keep_days {
                return Err("unshared_days must be between 1 and keep_days".into());
            }
        }
        if self.grace_days > 90 {
            return Err("grace_days must be between 0 and 90".into());
        }
        Ok(())
    }
}

/// What the planner needs to know about one recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub id: String,
    pub created_at: i64,
    pub ever_shared: bool,
    pub held: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Older than `keep_days`.
    Expired,
    /// Never shared, and older than `unshared_days`.
    NeverShared,
}

impl Reason {
    pub fn audit_action(self) -> &'static str {
        match self {
            Reason::Expired => "retention-delete",
            Reason::NeverShared => "retention-delete-unshared",
        }
    }
}

/// When `row` falls due under `policy` (and why), or `None` while it is held.
pub fn delete_after(policy: &Policy, row: &Row) -> Option<(i64, Reason)> {
    if row.held {
        return None;
    }
    let expired = row.created_at + i64::from(policy.keep_days) * DAY;
    let unshared = policy
        .unshared_days
        .filter(|_| !row.ever_shared)
        .map(|d| row.created_at + i64::from(d) * DAY);
    Some(match unshared {
        Some(u) if u < expired => (u, Reason::NeverShared),
        _ => (expired, Reason::Expired),
    })
}

/// The recordings due for deletion at `now`, oldest first.
pub fn plan(now: i64, policy: &Policy, rows: &[Row]) -> Vec<(String, Reason)> {
    let mut due: Vec<(i64, &Row, Reason)> = rows
        .iter()
        .filter_map(|r| delete_after(policy, r).map(|(at, why)| (at, r, why)))
        .filter(|(at, _, _)| *at <= now)
        .collect();
    due.sort_by_key(|(_, r, _)| (r.created_at, r.id.clone()));
    due.into_iter()
        .map(|(_, r, why)| (r.id.clone(), why))
        .collect()
}

pub fn load_policy(c: &Connection) -> rusqlite::Result<Policy> {
    c.query_row(
        "SELECT keep_days, unshared_days, grace_days FROM retention_policy WHERE id = 1",
        [],
        |r| {
            Ok(Policy {
                keep_days: r.get(0)?,
                unshared_days: r.get(1)?,
                grace_days: r.get(2)?,
            })
        },
    )
}

pub fn save_policy(c: &Connection, p: &Policy) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE retention_policy SET keep_days = ?1, unshared_days = ?2, grace_days = ?3 WHERE id = 1",
        params![p.keep_days, p.unshared_days, p.grace_days],
    )?;
    Ok(())
}

/// One recording's planner row.
pub fn row(c: &Connection, rec: &str) -> rusqlite::Result<Row> {
    c.query_row(
        "SELECT id, created_at, ever_shared, hold_reason IS NOT NULL FROM recordings WHERE id = ?1",
        [rec],
        row_from,
    )
}

fn row_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        id: r.get(0)?,
        created_at: r.get(1)?,
        ever_shared: r.get(2)?,
        held: r.get(3)?,
    })
}

fn all_rows(c: &Connection) -> rusqlite::Result<Vec<Row>> {
    let mut stmt =
        c.prepare("SELECT id, created_at, ever_shared, hold_reason IS NOT NULL FROM recordings")?;
    let rows = stmt.query_map([], row_from)?.collect();
    rows
}

/// Sets or clears (`None`) an admin's hold on a recording. Returns false if there is no such
/// recording.
pub fn set_hold(
    c: &Connection,
    audit_key: &[u8; 32],
    actor: &str,
    rec: &str,
    reason: Option<&str>,
) -> rusqlite::Result<bool> {
    let tx = rusqlite::Transaction::new_unchecked(c, rusqlite::TransactionBehavior::Immediate)?;
    let n = tx.execute(
        "UPDATE recordings SET hold_reason = ?1 WHERE id = ?2",
        params![reason, rec],
    )?;
    if n == 1 {
        // The reason may name a pupil or a concern: it stays in the recordings table (deleted with
        // the recording), not in the permanent audit log.
        let action = if reason.is_some() {
            "hold"
        } else {
            "release-hold"
        };
        crate::audit::append(&tx, audit_key, actor, action, rec)?;
    }
    tx.commit()?;
    Ok(n == 1)
}

/// What a sweep did.
#[derive(Debug, Default, Serialize)]
pub struct Swept {
    pub deleted: crate::deletion::Removed,
    pub teachers_deleted: Vec<String>,
}

/// Applies the policy at `now`: deletes due recordings (one transaction and audit entry each),
/// then finishes the deletion of teachers whose grace period is over, then removes the files. The
/// database and the vault are taken per step (see [`crate::locks`]), so requests go on meanwhile.
pub fn sweep(
    db: &impl Take<Connection>,
    vault: &impl Take<crate::vault::Vault>,
    blobs: &dyn crate::blobs::BlobStore,
    audit_key: &[u8; 32],
    now: i64,
) -> anyhow::Result<Swept> {
    let due = {
        let c = db.take()?;
        plan(now, &load_policy(&c)?, &all_rows(&c)?)
    };
    let mut swept = Swept::default();
    for (rec, why) in due {
        let r = crate::deletion::delete_rows(
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
    crate::deletion::sweep_blobs(db, blobs)?;
    swept.teachers_deleted = crate::offboarding::finish_due(db, vault, blobs, audit_key, now)?;
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

    fn r(id: &str, age_days: i64, ever_shared: bool, held: bool) -> Row {
        Row {
            id: id.into(),
            created_at: 1_000 * DAY - age_days * DAY,
            ever_shared,
            held,
        }
    }

    #[test]
    fn plans_expired_and_unshared_recordings_and_skips_held_ones() {
        let now = 1_000 * DAY;
        let policy = Policy {
            keep_days: 365,
            unshared_days: Some(30),
            grace_days: 7,
        };
        let rows = [
            r("old", 400, true, false),
            r("old-held", 400, true, true),
            r("young-shared", 40, true, false),
            r("young-unshared", 40, false, false),
            r("fresh-unshared", 10, false, false),
            r("exactly-a-year", 365, true, false),
        ];
        assert_eq!(
            plan(now, &policy, &rows),
            vec![
                ("old".to_string(), Reason::Expired),
                ("exactly-a-year".to_string(), Reason::Expired),
                ("young-unshared".to_string(), Reason::NeverShared),
            ]
        );
        // Without the unshared rule only age counts; a day earlier nothing is a year old.
        let plain = Policy {
            unshared_days: None,
            ..policy
        };
        assert_eq!(
            plan(now - DAY, &plain, &rows),
            vec![("old".to_string(), Reason::Expired)]
        );
        assert_eq!(delete_after(&policy, &rows[1]), None, "held");
        assert_eq!(
            delete_after(&policy, &rows[4]),
            Some((rows[4].created_at + 30 * DAY, Reason::NeverShared))
        );
    }

    #[test]
    fn policies_are_validated() {
        assert!(Policy::default().validate().is_ok());
        let bad = [
            Policy {
                keep_days: 0,
                ..Policy::default()
            },
            Policy {
                unshared_days: Some(400),
                ..Policy::default()
            },
            Policy {
                unshared_days: Some(0),
                ..Policy::default()
            },
            Policy {
                grace_days: 365,
                ..Policy::default()
            },
        ];
        for p in bad {
            assert!(p.validate().is_err(), "{p:?}");
        }
    }

    /// A blob store that notes whether the database or the vault was locked while it removed a
    /// file (an object store may take seconds per file).
    struct Probe<'a> {
        inner: crate::blobs::LocalBlobs,
        db: &'a std::sync::Mutex<Connection>,
        vault: &'a std::sync::Mutex<crate::vault::Vault>,
        removed: std::sync::atomic::AtomicUsize,
        locked: std::sync::atomic::AtomicBool,
    }

    impl crate::blobs::BlobStore for Probe<'_> {
        fn begin(&self) -> std::io::Result<crate::blobs::Incoming> {
            self.inner.begin()
        }
        fn commit(&self, incoming: crate::blobs::Incoming) -> std::io::Result<String> {
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
        use crate::accounts::{self, Role};
        use crate::blobs::BlobStore;
        use std::sync::atomic::Ordering;
        let tmp = tempfile::tempdir().unwrap();
        let conn = crate::db::open(&tmp.path().join("db")).unwrap();
        let master =
            crate::vault::MasterKey::load_or_create(&tmp.path().join("master.key")).unwrap();
        let vault = crate::vault::Vault::open(&tmp.path().join("vault.db"), master).unwrap();
        let inner = crate::blobs::LocalBlobs::open(&tmp.path().join("blobs")).unwrap();
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
        crate::offboarding::mark_leaving(&conn, &[7; 32], "cli", &bob, None, 0, now).unwrap();
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
