//! Lessons shared with coaches by name, and the coaches a teacher can share with.

use crate::domain::clock;
use crate::domain::people::{Role, UserId};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

#[derive(Serialize)]
pub struct Person {
    pub username: String,
    pub display_name: String,
}

/// The coaches `rec` is shared with by name.
pub fn shared_with(c: &Connection, rec: &str) -> rusqlite::Result<Vec<Person>> {
    let mut stmt = c.prepare(
        "SELECT u.username, u.display_name FROM shares s JOIN users u ON u.id = s.coach_id
         WHERE s.recording_id = ?1 ORDER BY u.display_name",
    )?;
    let people = stmt
        .query_map([rec], |r| {
            Ok(Person {
                username: r.get(0)?,
                display_name: r.get(1)?,
            })
        })?
        .collect();
    people
}

/// Enabled coaches other than `user_id`, by name.
pub fn coaches_except(c: &Connection, user_id: UserId) -> rusqlite::Result<Vec<Person>> {
    let mut stmt = c.prepare(
        "SELECT username, display_name, roles FROM users WHERE disabled = 0 AND id != ?1
         ORDER BY display_name",
    )?;
    let rows: Vec<(String, String, String)> = stmt
        .query_map([user_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    Ok(rows
        .into_iter()
        .filter(|(_, _, roles)| roles.split(',').any(|r| r == Role::Coach.as_str()))
        .map(|(username, display_name, _)| Person {
            username,
            display_name,
        })
        .collect())
}

/// Shares `rec` with coach `coach_id` (again is no change).
pub fn add(c: &Connection, rec: &str, coach_id: UserId) -> rusqlite::Result<()> {
    c.execute(
        "INSERT OR IGNORE INTO shares (recording_id, coach_id, created_at) VALUES (?1, ?2, ?3)",
        params![rec, coach_id, clock::now()],
    )?;
    mark_shared(c, rec)
}

/// Stops sharing `rec` with the coach called `username`; gives their audit pseudonym, or `None`
/// if it was not shared with them.
pub fn remove(c: &Connection, rec: &str, username: &str) -> rusqlite::Result<Option<String>> {
    let coach: Option<(i64, String)> = c
        .query_row(
            "SELECT u.id, u.audit_id FROM shares s JOIN users u ON u.id = s.coach_id
             WHERE s.recording_id = ?1 AND u.username = ?2",
            params![rec, username],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((coach_id, audit_id)) = coach else {
        return Ok(None);
    };
    c.execute(
        "DELETE FROM shares WHERE recording_id = ?1 AND coach_id = ?2",
        params![rec, coach_id],
    )?;
    Ok(Some(audit_id))
}

/// Notes that `rec` was shared at least once (the retention policy may treat never-shared
/// recordings apart).
pub fn mark_shared(c: &Connection, rec: &str) -> rusqlite::Result<()> {
    c.execute("UPDATE recordings SET ever_shared = 1 WHERE id = ?1", [rec])?;
    Ok(())
}
