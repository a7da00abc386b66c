//! The audit log: an append-only table of who did what to which account or recording, and when
//! (sign-ins, views, admin actions). Each entry carries an HMAC, under a key derived from the
//! master key, over the previous entry's tag and its own fields. Someone who can write to the
//! database but has no master key cannot edit or remove an entry in the middle, or strip the tags,
//! without `lessonlens-server audit-verify` noticing. (Cutting entries off the end is not
//! detectable from the chain alone; an exported head tag, kept elsewhere, would cover that.)

use crate::domain::clock;
use crate::domain::people::UserId;
use crate::store::vault::hmac_sha256;
use rusqlite::{params, Connection, OptionalExtension};

fn entry_hash(
    key: &[u8; 32],
    prev: &[u8],
    id: i64,
    at: i64,
    actor: &str,
    action: &str,
    target: &str,
) -> Vec<u8> {
    let (id, at) = (id.to_be_bytes(), at.to_be_bytes());
    let mut parts: Vec<&[u8]> = vec![b"lessonlens-audit-v1", prev, &id, &at];
    // Length-prefixed, so fields cannot be shifted from one into the next.
    let lens: Vec<[u8; 8]> = [actor, action, target]
        .iter()
        .map(|f| (f.len() as u64).to_be_bytes())
        .collect();
    for (len, field) in lens.iter().zip([actor, action, target]) {
        parts.push(len);
        parts.push(field.as_bytes());
    }
    hmac_sha256(key, &parts).to_vec()
}

/// Appends an entry in its own write transaction. Call with the one database connection (writes
/// are serialised by its lock).
pub fn record(
    conn: &Connection,
    key: &[u8; 32],
    actor: &str,
    action: &str,
    target: &str,
) -> rusqlite::Result<()> {
    // IMMEDIATE takes the write lock before reading the chain's head, so two writers (the server
    // and an admin CLI command) cannot both link to the same entry.
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    append(&tx, key, actor, action, target)?;
    tx.commit()
}

/// Appends an entry inside the caller's write transaction (begun IMMEDIATE), so the entry and the
/// change it records commit together or not at all.
pub fn append(
    tx: &rusqlite::Transaction<'_>,
    key: &[u8; 32],
    actor: &str,
    action: &str,
    target: &str,
) -> rusqlite::Result<()> {
    let prev: Vec<u8> = tx
        .query_row(
            "SELECT hash FROM audit WHERE hash IS NOT NULL ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or_else(|| vec![0; 32]);
    let at = clock::now();
    tx.execute(
        "INSERT INTO audit (at, actor, action, target) VALUES (?1, ?2, ?3, ?4)",
        params![at, actor, action, target],
    )?;
    let id = tx.last_insert_rowid();
    tx.execute(
        "UPDATE audit SET hash = ?1 WHERE id = ?2",
        params![entry_hash(key, &prev, id, at, actor, action, target), id],
    )?;
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
pub struct Verified {
    pub chained: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditError {
    #[error("audit entry {0} was altered, or an entry before it was removed")]
    Broken(i64),
    #[error("audit entry {0} has no tag: tags were stripped")]
    Unhashed(i64),
    #[error("cannot read the audit log: {0}")]
    Db(String),
}

/// Walks the whole log and checks every link.
pub fn verify(conn: &Connection, key: &[u8; 32]) -> Result<Verified, AuditError> {
    let db = |e: rusqlite::Error| AuditError::Db(e.to_string());
    let mut stmt = conn
        .prepare("SELECT id, at, actor, action, target, hash FROM audit ORDER BY id")
        .map_err(db)?;
    let mut rows = stmt.query([]).map_err(db)?;
    let mut prev: Option<Vec<u8>> = None;
    let mut out = Verified { chained: 0 };
    while let Some(r) = rows.next().map_err(db)? {
        let id: i64 = r.get(0).map_err(db)?;
        let hash: Option<Vec<u8>> = r.get(5).map_err(db)?;
        let Some(hash) = hash else {
            // Every entry is written with its tag; one without was stripped (or predates the
            // chain, which no release has).
            return Err(AuditError::Unhashed(id));
        };
        let (at, actor, action, target): (i64, String, String, String) = (
            r.get(1).map_err(db)?,
            r.get(2).map_err(db)?,
            r.get(3).map_err(db)?,
            r.get(4).map_err(db)?,
        );
        let link = prev.take().unwrap_or_else(|| vec![0; 32]);
        if entry_hash(key, &link, id, at, &actor, &action, &target) != hash {
            return Err(AuditError::Broken(id));
        }
        prev = Some(hash);
        out.chained += 1;
    }
    Ok(out)
}

#[derive(serde::Serialize)]
pub struct View {
    pub display_name: String,
    pub last_viewed: i64,
    pub views: i64,
}

/// "Who watched this": everyone but `owner` whose views of `rec` the log holds, last first.
pub fn views(c: &Connection, rec: &str, owner: UserId) -> rusqlite::Result<Vec<View>> {
    let mut stmt = c.prepare(
        "SELECT u.display_name, MAX(a.at), COUNT(*) FROM audit a JOIN users u ON u.audit_id = a.actor
         WHERE a.action = 'view' AND a.target = ?1 AND u.id != ?2
         GROUP BY u.id ORDER BY MAX(a.at) DESC",
    )?;
    let list = stmt
        .query_map(params![rec, owner], |r| {
            Ok(View {
                display_name: r.get(0)?,
                last_viewed: r.get(1)?,
                views: r.get(2)?,
            })
        })?
        .collect();
    list
}

/// Whether `actor` has a "view" of `target` logged after `since` (views are coalesced).
pub fn viewed_since(
    c: &Connection,
    target: &str,
    actor: &str,
    since: i64,
) -> rusqlite::Result<bool> {
    c.query_row(
        "SELECT EXISTS (SELECT 1 FROM audit WHERE target = ?1 AND actor = ?2 AND action = 'view' AND at > ?3)",
        params![target, actor, since],
        |r| r.get(0),
    )
}

/// An entry as the admin's log shows it.
#[derive(serde::Serialize)]
pub struct AuditRow {
    pub id: i64,
    pub at: i64,
    /// The person's display name while their account exists; otherwise the pseudonym or the
    /// system part that acted ("cli", "retention", "offboarding").
    pub actor: String,
    pub action: String,
    pub target: String,
}

/// The audit log, newest first: `limit` entries after skipping `offset`, only those whose person,
/// action or target contains `filter` (any, when empty; letters compared without case for ASCII
/// only, as SQLite's LIKE does).
pub fn rows(
    c: &Connection,
    filter: &str,
    limit: i64,
    offset: i64,
) -> rusqlite::Result<Vec<AuditRow>> {
    // LIKE with the filter's own % and _ taken literally.
    let pattern = format!(
        "%{}%",
        filter
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    let mut stmt = c.prepare(
        "SELECT a.id, a.at, COALESCE(u.display_name, a.actor) AS who, a.action, a.target
         FROM audit a LEFT JOIN users u ON u.audit_id = a.actor
         WHERE ?1 = '' OR COALESCE(u.display_name, a.actor) LIKE ?2 ESCAPE '\\'
            OR a.action LIKE ?2 ESCAPE '\\' OR a.target LIKE ?2 ESCAPE '\\'
         ORDER BY a.id DESC LIMIT ?3 OFFSET ?4",
    )?;
    let rows = stmt
        .query_map(params![filter, pattern, limit, offset], |r| {
            Ok(AuditRow {
                id: r.get(0)?,
                at: r.get(1)?,
                actor: r.get(2)?,
                action: r.get(3)?,
                target: r.get(4)?,
            })
        })?
        .collect();
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];

    fn db() -> (tempfile::TempDir, Connection) {
        let tmp = tempfile::tempdir().unwrap();
        let conn = crate::store::db::open(&tmp.path().join("db")).unwrap();
        (tmp, conn)
    }

    #[test]
    fn an_intact_log_verifies_and_any_edit_or_removal_is_found() {
        let (_t, conn) = db();
        for i in 0..5 {
            record(&conn, &KEY, "alice", "view", &format!("rec-{i}")).unwrap();
        }
        assert_eq!(verify(&conn, &KEY), Ok(Verified { chained: 5 }));
        assert_eq!(
            verify(&conn, &[8; 32]),
            Err(AuditError::Broken(1)),
            "another key cannot vouch for it"
        );

        conn.execute("UPDATE audit SET target = 'rec-x' WHERE id = 3", [])
            .unwrap();
        assert_eq!(verify(&conn, &KEY), Err(AuditError::Broken(3)));
        conn.execute("UPDATE audit SET target = 'rec-2' WHERE id = 3", [])
            .unwrap();
        assert!(verify(&conn, &KEY).is_ok());

        conn.execute("DELETE FROM audit WHERE id = 2", []).unwrap();
        assert_eq!(
            verify(&conn, &KEY),
            Err(AuditError::Broken(3)),
            "the next entry no longer links"
        );
    }

    #[test]
    fn stripping_the_tags_is_found() {
        let (_t, conn) = db();
        record(&conn, &KEY, "alice", "login", "").unwrap();
        record(&conn, &KEY, "alice", "view", "r").unwrap();
        conn.execute("UPDATE audit SET hash = NULL", []).unwrap();
        assert_eq!(verify(&conn, &KEY), Err(AuditError::Unhashed(1)));
    }

    #[test]
    fn the_audit_log_pages_and_filters_on_the_database() {
        let tmp = tempfile::tempdir().unwrap();
        let c = crate::store::db::open(&tmp.path().join("db")).unwrap();
        let key = [7u8; 32];
        for i in 0..120 {
            let action = if i % 10 == 0 { "unshare" } else { "view" };
            super::record(&c, &key, "alice", action, &format!("rec-{i}")).unwrap();
        }
        super::record(&c, &key, "bob", "view", "100%_done").unwrap();
        let ids =
            |rows: Vec<super::AuditRow>| rows.iter().map(|r| r.target.clone()).collect::<Vec<_>>();
        let first = ids(super::rows(&c, "", 50, 0).unwrap());
        assert_eq!(first.len(), 50);
        assert_eq!(first[0], "100%_done", "newest first");
        let third = ids(super::rows(&c, "", 50, 100).unwrap());
        assert_eq!(third.len(), 21);
        assert_eq!(third.last().unwrap(), "rec-0");
        // A filter matches person, action or target, on the whole log, not one page.
        let unshared = super::rows(&c, "unshare", 50, 0).unwrap();
        assert_eq!(unshared.len(), 12);
        assert!(unshared.iter().all(|r| r.action == "unshare"));
        assert_eq!(
            ids(super::rows(&c, "rec-11", 50, 0).unwrap()),
            [
                "rec-119", "rec-118", "rec-117", "rec-116", "rec-115", "rec-114", "rec-113",
                "rec-112", "rec-111", "rec-110", "rec-11"
            ]
        );
        // % and _ in a filter are the characters themselves, not wildcards.
        assert_eq!(ids(super::rows(&c, "%_", 50, 0).unwrap()), ["100%_done"]);
        assert!(super::rows(&c, "0%", 50, 0).unwrap().len() == 1);
    }
}
