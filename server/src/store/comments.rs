//! Timestamped comments, replies and the owner's private reflections, and the school's tags.

use crate::domain::clock;
use crate::domain::people::UserId;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

/// The school's comment tags (its framework for lesson observation).
pub fn all_tags(c: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = c.prepare("SELECT name FROM tags ORDER BY name")?;
    let tags = stmt.query_map([], |r| r.get(0))?.collect();
    tags
}

#[derive(Serialize)]
pub struct Comment {
    pub id: i64,
    pub parent_id: Option<i64>,
    pub at_seconds: f64,
    pub body: String,
    pub tag: Option<String>,
    /// The owner's reflection: only the owner ever receives these.
    pub private: bool,
    pub author: String,
    pub mine: bool,
    pub created_at: i64,
}

/// The comments on `rec` as `viewer` sees them: private reflections only for the owner.
pub fn list(
    c: &Connection,
    rec: &str,
    viewer: UserId,
    is_owner: bool,
) -> rusqlite::Result<Vec<Comment>> {
    let mut stmt = c.prepare(
        "SELECT c.id, c.parent_id, c.at_ms, c.body, c.tag, c.private, u.display_name, c.author_id, c.created_at
         FROM comments c JOIN users u ON u.id = c.author_id
         WHERE c.recording_id = ?1 AND (c.private = 0 OR ?2)
         ORDER BY c.at_ms, c.id",
    )?;
    let list = stmt
        .query_map(params![rec, is_owner], |r| {
            Ok(Comment {
                id: r.get(0)?,
                parent_id: r.get(1)?,
                at_seconds: r.get::<_, i64>(2)? as f64 / 1000.0,
                body: r.get(3)?,
                tag: r.get(4)?,
                private: r.get(5)?,
                author: r.get(6)?,
                mine: r.get::<_, UserId>(7)? == viewer,
                created_at: r.get(8)?,
            })
        })?
        .collect();
    list
}

/// The time (ms) of the shared top-level comment `parent` of `rec`, which a reply goes under.
pub fn reply_time(c: &Connection, rec: &str, parent: i64) -> rusqlite::Result<Option<i64>> {
    c.query_row(
        "SELECT at_ms FROM comments WHERE id = ?1 AND recording_id = ?2 AND private = 0 AND parent_id IS NULL",
        params![parent, rec],
        |r| r.get(0),
    )
    .optional()
}

/// A new comment (checked by the caller); gives its id.
pub struct NewComment<'a> {
    pub rec: &'a str,
    pub author: UserId,
    pub parent_id: Option<i64>,
    pub at_ms: i64,
    pub body: &'a str,
    pub tag: Option<&'a str>,
    pub private: bool,
}

pub fn add(c: &Connection, new: &NewComment<'_>) -> rusqlite::Result<i64> {
    c.execute(
        "INSERT INTO comments (recording_id, author_id, parent_id, at_ms, body, tag, private, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![new.rec, new.author, new.parent_id, new.at_ms, new.body, new.tag, new.private, clock::now()],
    )?;
    Ok(c.last_insert_rowid())
}

/// Deletes `author`'s comment `id` on `rec` for good (its text is wiped from the files); false
/// if there is no such comment of theirs.
pub fn delete(c: &Connection, rec: &str, id: i64, author: UserId) -> rusqlite::Result<bool> {
    let n = c.execute(
        "DELETE FROM comments WHERE id = ?1 AND recording_id = ?2 AND author_id = ?3",
        params![id, rec, author],
    )?;
    if n == 1 {
        crate::store::db::forget(c)?;
    }
    Ok(n == 1)
}
