//! Groups of coaches, their members and the lessons shared with them, as the database keeps
//! them. Who may watch through a group is decided by [`crate::domain::access`]; the rule's SQL
//! form is [`crate::store::access::MEMBER_WHEN_SHARED`].

use crate::domain::clock;
use crate::domain::people::UserId;
use crate::store::access::{MEMBER_WHEN_SHARED, NEXT_SEQ};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

#[derive(Serialize)]
pub struct Group {
    pub id: i64,
    pub name: String,
    /// Its members with an enabled account.
    pub members: Vec<Member>,
}

#[derive(Serialize)]
pub struct Member {
    pub username: String,
    pub display_name: String,
    /// For a group a lesson is shared with: whether they were in it when it was shared (and so
    /// may watch). Always true in the list of groups.
    pub can_watch: bool,
}

/// Every group with its members, or only those shared with `rec`.
pub fn groups(c: &Connection, rec: Option<&str>) -> rusqlite::Result<Vec<Group>> {
    let mut stmt = c.prepare(
        "SELECT g.id, g.name FROM coach_groups g
         WHERE ?1 IS NULL OR g.id IN (SELECT group_id FROM group_shares WHERE recording_id = ?1)
         ORDER BY g.name",
    )?;
    let heads: Vec<(i64, String)> = stmt
        .query_map([rec], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut members = c.prepare(&format!(
        "SELECT u.username, u.display_name, u.roles,
                ?2 IS NULL OR EXISTS (SELECT 1 FROM group_shares g
                                      WHERE g.recording_id = ?2 AND g.group_id = m.group_id
                                        AND {})
         FROM coach_group_members m
         JOIN users u ON u.id = m.user_id WHERE m.group_id = ?1 AND u.disabled = 0
         ORDER BY u.display_name",
        MEMBER_WHEN_SHARED
    ))?;
    heads
        .into_iter()
        .map(|(id, name)| {
            Ok(Group {
                id,
                name,
                // Only those who may watch through the group: enabled, and still coaches.
                members: members
                    .query_map(params![id, rec], |r| {
                        let roles: String = r.get(2)?;
                        let person = Member {
                            username: r.get(0)?,
                            display_name: r.get(1)?,
                            can_watch: r.get(3)?,
                        };
                        Ok(roles.split(',').any(|x| x == "coach").then_some(person))
                    })?
                    .filter_map(Result::transpose)
                    .collect::<Result<_, _>>()?,
            })
        })
        .collect()
}

/// Group `id`'s id and name, if it exists.
pub fn find(c: &Connection, id: i64) -> rusqlite::Result<Option<(i64, String)>> {
    c.query_row(
        "SELECT id, name FROM coach_groups WHERE id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
}

/// Makes a group; `None` if one of that name (ignoring case) exists.
pub fn create(c: &Connection, name: &str) -> rusqlite::Result<Option<i64>> {
    let added = c.execute(
        "INSERT OR IGNORE INTO coach_groups (name, created_at) VALUES (?1, ?2)",
        params![name, clock::now()],
    )?;
    Ok((added == 1).then(|| c.last_insert_rowid()))
}

pub fn remove(c: &Connection, id: i64) -> rusqlite::Result<()> {
    c.execute("DELETE FROM coach_groups WHERE id = ?1", [id])?;
    Ok(())
}

/// Adds a member, ordered by the change about to be audited (see [`NEXT_SEQ`]).
pub fn add_member(c: &Connection, group: i64, user_id: UserId) -> rusqlite::Result<()> {
    c.execute(
        &format!(
            "INSERT OR IGNORE INTO coach_group_members (group_id, user_id, added_seq) VALUES (?1, ?2, {NEXT_SEQ})"
        ),
        params![group, user_id],
    )?;
    Ok(())
}

/// Takes the member called `username` out of the group; gives their id and audit pseudonym, or
/// `None` if they were not in it.
pub fn remove_member(
    c: &Connection,
    group: i64,
    username: &str,
) -> rusqlite::Result<Option<(i64, String)>> {
    let member: Option<(i64, String)> = c
        .query_row(
            "SELECT u.id, u.audit_id FROM coach_group_members m JOIN users u ON u.id = m.user_id
             WHERE m.group_id = ?1 AND u.username = ?2",
            params![group, username],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    if let Some((id, _)) = &member {
        c.execute(
            "DELETE FROM coach_group_members WHERE group_id = ?1 AND user_id = ?2",
            params![group, id],
        )?;
    }
    Ok(member)
}

/// Shares `rec` with a group, or again: sharing again lets in whoever joined since.
pub fn share(c: &Connection, rec: &str, group: i64) -> rusqlite::Result<()> {
    c.execute(
        &format!(
            "INSERT INTO group_shares (recording_id, group_id, created_at, shared_seq) VALUES (?1, ?2, ?3, {NEXT_SEQ})
             ON CONFLICT (recording_id, group_id) DO UPDATE
                 SET created_at = excluded.created_at, shared_seq = excluded.shared_seq"
        ),
        params![rec, group, clock::now()],
    )?;
    crate::store::shares::mark_shared(c, rec)
}

/// Stops sharing `rec` with a group; false if it was not shared with it.
pub fn unshare(c: &Connection, rec: &str, group: i64) -> rusqlite::Result<bool> {
    Ok(c.execute(
        "DELETE FROM group_shares WHERE recording_id = ?1 AND group_id = ?2",
        params![rec, group],
    )? == 1)
}
