//! Signed deletion receipts, kept for the school's records (the signing is
//! `ops::offboarding`'s; a receipt names no person, only pseudonyms and counts).

use rusqlite::{params, Connection, OptionalExtension};

/// Keeps receipt `id` (its signed JSON text), made at `now`.
pub fn keep(c: &Connection, id: &str, now: i64, text: &str) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO deletion_receipts (id, created_at, receipt) VALUES (?1, ?2, ?3)",
        params![id, now, text],
    )?;
    Ok(())
}

/// Every receipt's text, newest first.
pub fn texts(c: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = c.prepare("SELECT receipt FROM deletion_receipts ORDER BY created_at DESC")?;
    let texts = stmt.query_map([], |r| r.get(0))?.collect();
    texts
}

/// Every receipt's id and time, oldest first.
pub fn list(c: &Connection) -> rusqlite::Result<Vec<(String, i64)>> {
    let mut stmt = c.prepare("SELECT id, created_at FROM deletion_receipts ORDER BY created_at")?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect();
    rows
}

/// Receipt `id`'s text, if there is one.
pub fn find(c: &Connection, id: &str) -> rusqlite::Result<Option<String>> {
    c.query_row(
        "SELECT receipt FROM deletion_receipts WHERE id = ?1",
        [id],
        |r| r.get(0),
    )
    .optional()
}
