//! Everything the database holds about one person, gathered for a subject access export
//! (UK GDPR article 15): their account, lessons, comments and the audit log's entries about them.
//! `ops::export` writes it, with the videos, into the archive.

use crate::domain::people::User;
use crate::domain::segments::Seg;
use anyhow::Context;
use lessonlens_proto::RecordingId;
use rusqlite::{params, Connection};
use serde_json::{json, Value};

fn query(
    c: &Connection,
    sql: &str,
    p: impl rusqlite::Params,
    cols: &[&str],
) -> rusqlite::Result<Value> {
    let mut stmt = c.prepare(sql)?;
    let rows = stmt.query_map(p, |r| {
        let mut o = serde_json::Map::new();
        for (i, name) in cols.iter().enumerate() {
            let v: rusqlite::types::Value = r.get(i)?;
            o.insert(
                (*name).to_string(),
                match v {
                    rusqlite::types::Value::Null => Value::Null,
                    rusqlite::types::Value::Integer(n) => json!(n),
                    rusqlite::types::Value::Real(f) => json!(f),
                    rusqlite::types::Value::Text(t) => json!(t),
                    rusqlite::types::Value::Blob(_) => Value::Null,
                },
            );
        }
        Ok(Value::Object(o))
    })?;
    Ok(Value::Array(rows.collect::<Result<_, _>>()?))
}

/// The JSON parts of a subject access archive, and each lesson's id, time and segments.
#[allow(clippy::type_complexity)]
pub fn gather(
    c: &Connection,
    user: &User,
    now: i64,
) -> anyhow::Result<(Vec<(&'static str, Value)>, Vec<(String, i64, Vec<Seg>)>)> {
    let account = query(
        c,
        "SELECT username, display_name, email, staff_id, roles, created_at, disabled, audit_id FROM users WHERE id = ?1",
        [user.id],
        &["username", "display_name", "email", "staff_id", "roles", "created_at", "disabled", "audit_pseudonym"],
    )?;
    let mut account = account
        .as_array()
        .and_then(|a| a.first().cloned())
        .context("the account is gone")?;
    account["exported_at"] = json!(now);
    account["coach_groups"] = query(
        c,
        "SELECT g.name FROM coach_group_members m JOIN coach_groups g ON g.id = m.group_id WHERE m.user_id = ?1",
        [user.id],
        &["group"],
    )?;
    // Their bookings: when and where they booked a room, and how each went.
    account["bookings"] = query(
        c,
        "SELECT d.name, b.starts_at, b.ends_at, b.created_at, b.outcome, b.recording_id
         FROM bookings b JOIN devices d ON d.id = b.device_id WHERE b.teacher_id = ?1 ORDER BY b.starts_at",
        [user.id],
        &["room", "starts_at", "ends_at", "booked_at", "outcome", "recording"],
    )?;
    let policy = crate::store::retention::load_policy(c)?;
    let ids: Vec<(String, i64)> = {
        let mut stmt = c.prepare(
            "SELECT id, created_at FROM recordings WHERE owner_id = ?1 ORDER BY created_at",
        )?;
        let rows = stmt.query_map([user.id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    let mut recordings = Vec::new();
    let mut lessons = Vec::new();
    for (id, created_at) in &ids {
        let mut r = serde_json::to_value(crate::store::recordings::summary(c, id)?)?;
        r["shared_with"] = query(
            c,
            "SELECT u.display_name, s.created_at FROM shares s JOIN users u ON u.id = s.coach_id WHERE s.recording_id = ?1",
            [id],
            &["coach", "since"],
        )?;
        r["shared_with_groups"] = query(
            c,
            "SELECT g.name, s.created_at FROM group_shares s JOIN coach_groups g ON g.id = s.group_id WHERE s.recording_id = ?1",
            [id],
            &["group", "since"],
        )?;
        let row = crate::store::retention::row(c, id)?;
        r["delete_after"] =
            json!(crate::domain::retention::delete_after(&policy, &row).map(|(t, _)| t));
        recordings.push(r);
        let rec: RecordingId = id.parse().context("a stored recording id does not parse")?;
        lessons.push((
            id.clone(),
            *created_at,
            crate::store::segments::stored(c, rec)?,
        ));
    }
    let comments = query(
        c,
        "SELECT c.recording_id, c.at_ms, c.body, c.tag, c.private, c.created_at, u.display_name, c.author_id = ?1
         FROM comments c JOIN users u ON u.id = c.author_id JOIN recordings r ON r.id = c.recording_id
         WHERE c.author_id = ?1 OR (r.owner_id = ?1 AND c.private = 0)
         ORDER BY c.created_at, c.id",
        [user.id],
        &["recording", "at_ms", "body", "tag", "private", "created_at", "author", "yours"],
    )?;
    let audit = query(
        c,
        "SELECT a.at, COALESCE(u.display_name, a.actor), a.action, COALESCE(t.display_name, a.target)
         FROM audit a LEFT JOIN users u ON u.audit_id = a.actor LEFT JOIN users t ON t.audit_id = a.target
         WHERE a.actor = ?1 OR instr(a.target, ?1) > 0
            OR substr(a.target, 1, 36) IN (SELECT id FROM recordings WHERE owner_id = ?2)
         ORDER BY a.id",
        params![user.audit_id, user.id],
        &["at", "who", "action", "about"],
    )?;
    Ok((
        vec![
            ("account.json", account),
            ("recordings.json", Value::Array(recordings)),
            ("comments.json", comments),
            ("audit.json", audit),
        ],
        lessons,
    ))
}
