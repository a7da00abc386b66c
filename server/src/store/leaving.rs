//! Teachers who are leaving: when they were marked, when their data goes, and what their
//! deletion has removed so far (for the receipt). The steps are `ops::offboarding`'s.

use crate::domain::people::UserId;
use rusqlite::{params, Connection, OptionalExtension};

/// What the receipt needs from a finished deletion.
pub struct Progress {
    pub subject: String,
    pub marked_at: i64,
    pub started_at: i64,
    pub fingerprint: Option<String>,
    pub recordings: u64,
    pub segments: u64,
    pub bytes: u64,
}

/// Marks `user_id` (audit pseudonym `subject`) as leaving; false if they already are.
pub fn mark(
    c: &Connection,
    user_id: UserId,
    subject: &str,
    now: i64,
    delete_after: i64,
    fingerprint: Option<&str>,
) -> rusqlite::Result<bool> {
    Ok(c.execute(
        "INSERT OR IGNORE INTO leaving (user_id, subject, marked_at, delete_after, fingerprint)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![user_id, subject, now, delete_after, fingerprint],
    )? == 1)
}

/// When their deletion started: `None` if they are not leaving, `Some(None)` if it has not.
pub fn started(c: &Connection, user_id: UserId) -> rusqlite::Result<Option<Option<i64>>> {
    c.query_row(
        "SELECT started_at FROM leaving WHERE user_id = ?1",
        [user_id],
        |r| r.get(0),
    )
    .optional()
}

/// They are no longer leaving (cancelled, or their deletion finished).
pub fn remove(c: &Connection, user_id: UserId) -> rusqlite::Result<()> {
    c.execute("DELETE FROM leaving WHERE user_id = ?1", [user_id])?;
    Ok(())
}

/// Those whose grace period is over at `now`.
pub fn due(c: &Connection, now: i64) -> rusqlite::Result<Vec<UserId>> {
    let mut stmt = c.prepare("SELECT user_id FROM leaving WHERE delete_after <= ?1")?;
    let due = stmt.query_map([now], |r| r.get(0))?.collect();
    due
}

/// Their deletion has started (the first time this is called).
pub fn start(c: &Connection, user_id: UserId, now: i64) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE leaving SET started_at = COALESCE(started_at, ?1) WHERE user_id = ?2",
        params![now, user_id],
    )?;
    Ok(())
}

/// The fingerprint of their shredded key, for the receipt.
pub fn set_fingerprint(c: &Connection, user_id: UserId, fingerprint: &str) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE leaving SET fingerprint = ?1 WHERE user_id = ?2",
        params![fingerprint, user_id],
    )?;
    Ok(())
}

/// Adds what one step removed to their deletion's counts.
pub fn count(
    c: &Connection,
    user_id: UserId,
    removed: &crate::store::deletion::Removed,
) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE leaving SET recordings = recordings + ?1, segments = segments + ?2, bytes = bytes + ?3 WHERE user_id = ?4",
        params![removed.recordings, removed.segments, removed.bytes, user_id],
    )?;
    Ok(())
}

/// Their deletion so far.
pub fn progress(c: &Connection, user_id: UserId) -> rusqlite::Result<Progress> {
    c.query_row(
        "SELECT subject, marked_at, started_at, fingerprint, recordings, segments, bytes FROM leaving WHERE user_id = ?1",
        [user_id],
        |r| {
            Ok(Progress {
                subject: r.get(0)?,
                marked_at: r.get(1)?,
                started_at: r.get(2)?,
                fingerprint: r.get(3)?,
                recordings: r.get(4)?,
                segments: r.get(5)?,
                bytes: r.get(6)?,
            })
        },
    )
}

/// Deletes the account row; sessions, device codes, shares to them and their comments on others'
/// recordings go with it (ON DELETE CASCADE).
pub fn delete_account(c: &Connection, user_id: UserId) -> rusqlite::Result<()> {
    c.execute("DELETE FROM users WHERE id = ?1", [user_id])?;
    Ok(())
}

/// Their deletion is due by `now` at the latest.
pub fn due_by(c: &Connection, user_id: UserId, now: i64) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE leaving SET delete_after = ?1 WHERE user_id = ?2 AND delete_after > ?1",
        params![now, user_id],
    )?;
    Ok(())
}
