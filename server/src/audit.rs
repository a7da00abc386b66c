//! The audit log: an append-only table of who did what to which account or recording, and when
//! (sign-ins, views, admin actions). Each entry carries the SHA-256 of the previous entry's hash
//! and its own fields, so editing or removing an entry in the middle breaks the chain, which
//! `lessonlens-server audit verify` reports. (Cutting entries off the end is not detectable from
//! the chain alone; an exported head hash, kept elsewhere, covers that.)

use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};

fn entry_hash(prev: &[u8], id: i64, at: i64, actor: &str, action: &str, target: &str) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(b"lessonlens-audit-v1");
    h.update(prev);
    h.update(id.to_be_bytes());
    h.update(at.to_be_bytes());
    // Length-prefixed, so fields cannot be shifted from one into the next.
    for field in [actor, action, target] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    h.finalize().to_vec()
}

/// Appends an entry. Call with the one database connection (writes are serialised by its lock).
pub fn record(conn: &Connection, actor: &str, action: &str, target: &str) -> rusqlite::Result<()> {
    // IMMEDIATE takes the write lock before reading the chain's head, so two writers (the server
    // and an admin CLI command) cannot both link to the same entry.
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    let prev: Vec<u8> = tx
        .query_row(
            "SELECT hash FROM audit WHERE hash IS NOT NULL ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or_else(|| vec![0; 32]);
    let at = crate::accounts::now();
    tx.execute(
        "INSERT INTO audit (at, actor, action, target) VALUES (?1, ?2, ?3, ?4)",
        params![at, actor, action, target],
    )?;
    let id = tx.last_insert_rowid();
    tx.execute(
        "UPDATE audit SET hash = ?1 WHERE id = ?2",
        params![entry_hash(&prev, id, at, actor, action, target), id],
    )?;
    tx.commit()
}

#[derive(Debug, PartialEq, Eq)]
pub struct Verified {
    pub chained: u64,
    /// Entries from before the chain existed (schema migration 3).
    pub unchained: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditError {
    #[error("audit entry {0} was altered, or an entry before it was removed")]
    Broken(i64),
    #[error("audit entry {0} has no hash after the chain began")]
    Unhashed(i64),
    #[error("cannot read the audit log: {0}")]
    Db(String),
}

/// Walks the whole log and checks every link.
pub fn verify(conn: &Connection) -> Result<Verified, AuditError> {
    let db = |e: rusqlite::Error| AuditError::Db(e.to_string());
    let mut stmt = conn
        .prepare("SELECT id, at, actor, action, target, hash FROM audit ORDER BY id")
        .map_err(db)?;
    let mut rows = stmt.query([]).map_err(db)?;
    let mut prev: Option<Vec<u8>> = None;
    let mut out = Verified {
        chained: 0,
        unchained: 0,
    };
    while let Some(r) = rows.next().map_err(db)? {
        let id: i64 = r.get(0).map_err(db)?;
        let hash: Option<Vec<u8>> = r.get(5).map_err(db)?;
        let Some(hash) = hash else {
            if prev.is_some() {
                return Err(AuditError::Unhashed(id));
            }
            out.unchained += 1;
            continue;
        };
        let (at, actor, action, target): (i64, String, String, String) = (
            r.get(1).map_err(db)?,
            r.get(2).map_err(db)?,
            r.get(3).map_err(db)?,
            r.get(4).map_err(db)?,
        );
        let link = prev.take().unwrap_or_else(|| vec![0; 32]);
        if entry_hash(&link, id, at, &actor, &action, &target) != hash {
            return Err(AuditError::Broken(id));
        }
        prev = Some(hash);
        out.chained += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, Connection) {
        let tmp = tempfile::tempdir().unwrap();
        let conn = crate::db::open(&tmp.path().join("db")).unwrap();
        (tmp, conn)
    }

    #[test]
    fn an_intact_log_verifies_and_any_edit_or_removal_is_found() {
        let (_t, conn) = db();
        for i in 0..5 {
            record(&conn, "alice", "view", &format!("rec-{i}")).unwrap();
        }
        assert_eq!(
            verify(&conn),
            Ok(Verified {
                chained: 5,
                unchained: 0
            })
        );

        conn.execute("UPDATE audit SET target = 'rec-x' WHERE id = 3", [])
            .unwrap();
        assert_eq!(verify(&conn), Err(AuditError::Broken(3)));
        conn.execute("UPDATE audit SET target = 'rec-2' WHERE id = 3", [])
            .unwrap();
        assert!(verify(&conn).is_ok());

        conn.execute("DELETE FROM audit WHERE id = 2", []).unwrap();
        assert_eq!(
            verify(&conn),
            Err(AuditError::Broken(3)),
            "the next entry no longer links"
        );
    }

    #[test]
    fn entries_from_before_the_chain_are_counted_apart() {
        let (_t, conn) = db();
        conn.execute(
            "INSERT INTO audit (at, actor, action, target) VALUES (1, 'cli', 'user-add', '1')",
            [],
        )
        .unwrap();
        record(&conn, "alice", "login", "").unwrap();
        assert_eq!(
            verify(&conn),
            Ok(Verified {
                chained: 1,
                unchained: 1
            })
        );
        conn.execute(
            "INSERT INTO audit (at, actor, action, target) VALUES (2, 'x', 'y', 'z')",
            [],
        )
        .unwrap();
        assert_eq!(verify(&conn), Err(AuditError::Unhashed(3)));
    }
}
