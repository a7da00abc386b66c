//! A recording's status as people see it: "recording" until the manifest arrives, then
//! "complete" or "incomplete" with what is missing or altered.

use crate::domain::access::Access;
use crate::domain::people::UserId;
use lessonlens_proto::manifest::Manifest;
use lessonlens_proto::wire::RecordingSummary;
use lessonlens_proto::RecordingId;
use lessonlens_proto::SegmentIndex;
use rusqlite::Connection;
use std::collections::BTreeSet;

/// A recording's summary: status is "recording" until the manifest arrives, then "complete" when
/// every segment is present after a clean stop, else "incomplete" with the missing spans.
pub fn summary(c: &Connection, id: &str) -> rusqlite::Result<RecordingSummary> {
    let (created_at, device, manifest, clean_stop): (i64, String, Option<String>, Option<bool>) = c.query_row(
        "SELECT r.created_at, d.name, r.manifest, r.clean_stop FROM recordings r JOIN devices d ON d.id = r.device_id WHERE r.id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    let mut stmt =
        c.prepare("SELECT idx, duration_us, sha256 FROM segments WHERE recording_id = ?1")?;
    let rows: Vec<(SegmentIndex, i64, String)> = stmt
        .query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    let present: BTreeSet<SegmentIndex> = rows.iter().map(|(i, _, _)| *i).collect();
    let duration_us: i64 = rows.iter().map(|(_, d, _)| d).sum();
    let manifest = manifest.and_then(|m| Manifest::parse(m.as_bytes()).ok());
    let (status, missing, mismatched) = match manifest {
        None => ("recording", Vec::new(), Vec::new()),
        Some(m) => {
            let missing = m.missing_from(&present);
            // A stored segment whose hash is not the one the device listed was altered or swapped
            // (looked up by index: both lists may hold tens of thousands).
            let listed: std::collections::HashMap<SegmentIndex, &str> = m
                .segments
                .iter()
                .map(|s| (s.index, s.sha256.as_str()))
                .collect();
            let mismatched: Vec<SegmentIndex> = rows
                .iter()
                .filter(|(i, _, sha)| listed.get(i).is_some_and(|l| *l != sha))
                .map(|(i, _, _)| *i)
                .collect();
            let complete = missing.is_empty() && mismatched.is_empty() && clean_stop == Some(true);
            (
                if complete { "complete" } else { "incomplete" },
                missing,
                mismatched,
            )
        }
    };
    Ok(RecordingSummary {
        id: id
            .parse()
            .map_err(|e: uuid::Error| rusqlite::Error::ToSqlConversionFailure(e.into()))?,
        created_at,
        device,
        segments: rows.iter().filter(|(i, d, _)| *i > 0 && *d > 0).count() as u32,
        duration_seconds: duration_us as f64 / 1e6,
        status: status.into(),
        missing_segments: lessonlens_proto::manifest::count(&missing),
        missing,
        mismatched,
        poster: present.contains(&lessonlens_proto::POSTER_INDEX),
        talk: present.contains(&lessonlens_proto::TALK_INDEX),
    })
}

/// Replaces the claim hashes older devices sent (reversible by trying every code) in stored
/// manifests with the vault's tags of them (see `Vault::keepable_claim`). Run at start; returns
/// how many manifests changed.
pub fn tag_claim_hashes(
    c: &Connection,
    vault: &crate::store::vault::Vault,
) -> anyhow::Result<usize> {
    let mut stmt =
        c.prepare("SELECT id, manifest FROM recordings WHERE manifest LIKE '%\"claim\"%'")?;
    let rows: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut changed = 0;
    for (id, json) in rows {
        let Ok(mut m) = Manifest::parse(json.as_bytes()) else {
            continue;
        };
        match m.claim.take() {
            Some(claim) if lessonlens_proto::manifest::is_claim_hash(&claim) => {
                m.claim = Some(vault.keepable_claim(claim));
                let json = String::from_utf8_lossy(&m.to_json()).into_owned();
                c.execute(
                    "UPDATE recordings SET manifest = ?1 WHERE id = ?2",
                    rusqlite::params![json, id],
                )?;
                changed += 1;
            }
            _ => {}
        }
    }
    if changed > 0 {
        crate::store::db::forget(c)?;
    }
    Ok(changed)
}

/// A recording as a library lists it.
#[derive(serde::Serialize)]
pub struct LibraryItem {
    #[serde(flatten)]
    pub summary: RecordingSummary,
    /// The teacher whose lesson it is (display name).
    pub owner: String,
    pub is_owner: bool,
    /// The coaches it is shared with (display names); empty for anyone but the owner.
    pub shared_with: Vec<String>,
    /// When the retention policy deletes it (Unix time); `None` while an admin holds it.
    pub delete_after: Option<i64>,
    pub held: bool,
}

/// A library entry: the summary, whose lesson it is and who it is shared with (owner only).
pub fn library_item(c: &Connection, rec: &str, access: Access) -> rusqlite::Result<LibraryItem> {
    let owner: String = c.query_row(
        "SELECT u.display_name FROM recordings r JOIN users u ON u.id = r.owner_id WHERE r.id = ?1",
        [rec],
        |r| r.get(0),
    )?;
    let shared_with = match access {
        Access::Owner => crate::store::shares::shared_with(c, rec)?
            .into_iter()
            .map(|p| p.display_name)
            .chain(
                crate::store::groups::groups(c, Some(rec))?
                    .into_iter()
                    .map(|g| format!("{} (group)", g.name)),
            )
            .collect(),
        Access::SharedCoach => Vec::new(),
    };
    let policy = crate::store::retention::load_policy(c)?;
    let row = crate::store::retention::row(c, rec)?;
    Ok(LibraryItem {
        summary: summary(c, rec)?,
        owner,
        is_owner: access.is_owner(),
        shared_with,
        delete_after: crate::domain::retention::delete_after(&policy, &row).map(|(at, _)| at),
        held: row.held,
    })
}

/// The recordings shared with coach `coach_id` (by name, or through a group they were in when
/// it was shared) whose owners are enabled, newest first.
pub fn shared_with_coach(c: &Connection, coach_id: UserId) -> rusqlite::Result<Vec<String>> {
    let mut stmt = c.prepare(&format!(
        "SELECT r.id FROM recordings r JOIN users o ON o.id = r.owner_id
         WHERE o.disabled = 0 AND r.id IN (
             SELECT recording_id FROM shares WHERE coach_id = ?1
             UNION SELECT g.recording_id FROM group_shares g
                   JOIN coach_group_members m ON m.group_id = g.group_id
                   WHERE m.user_id = ?1 AND {})
         ORDER BY r.created_at DESC",
        crate::store::access::MEMBER_WHEN_SHARED
    ))?;
    let ids = stmt.query_map([coach_id], |r| r.get(0))?.collect();
    ids
}

/// Whether an admin holds `rec` (it cannot be deleted meanwhile).
pub fn is_held(c: &Connection, rec: &str) -> rusqlite::Result<bool> {
    c.query_row(
        "SELECT hold_reason IS NOT NULL FROM recordings WHERE id = ?1",
        [rec],
        |row| row.get(0),
    )
}

/// The recordings of `owner`, newest first.
pub fn of_owner(c: &Connection, owner: UserId) -> rusqlite::Result<Vec<String>> {
    let mut stmt =
        c.prepare("SELECT id FROM recordings WHERE owner_id = ?1 ORDER BY created_at DESC")?;
    let ids = stmt.query_map([owner], |r| r.get(0))?.collect();
    ids
}

/// Whether `rec`'s manifest has arrived (the device stopped and sent what it recorded).
pub fn finished(c: &Connection, rec: &str) -> rusqlite::Result<bool> {
    c.query_row(
        "SELECT manifest IS NOT NULL FROM recordings WHERE id = ?1",
        [rec],
        |r| r.get(0),
    )
}

/// When `rec` started, by the device's clock if it was plausible, else when it reached the server.
pub fn started(c: &Connection, rec: &str) -> rusqlite::Result<i64> {
    c.query_row(
        "SELECT COALESCE(started_at, created_at) FROM recordings WHERE id = ?1",
        [rec],
        |r| r.get(0),
    )
}

/// How many MP4 files the owner's download of `rec` is: one per part between privacy pauses.
pub fn download_parts(
    c: &Connection,
    rec: lessonlens_proto::RecordingId,
) -> rusqlite::Result<usize> {
    Ok(crate::domain::segments::parts(&crate::store::segments::stored(c, rec)?).len())
}

/// The gaps of `rec` as the player's timeline shows them; `expected_end` is the index after the
/// last segment the manifest lists, if it has arrived.
pub fn gaps(
    c: &Connection,
    rec: lessonlens_proto::RecordingId,
    expected_end: Option<lessonlens_proto::SegmentIndex>,
) -> rusqlite::Result<Vec<crate::domain::segments::Gap>> {
    Ok(crate::domain::segments::gaps(
        &crate::store::segments::stored(c, rec)?,
        expected_end,
    ))
}

/// A recording as the admin's list shows it: metadata only.
#[derive(serde::Serialize)]
pub struct AdminRow {
    pub id: String,
    pub owner: String,
    pub device: String,
    pub created_at: i64,
    pub delete_after: Option<i64>,
    pub hold_reason: Option<String>,
}

/// Every recording, newest first, as the admin's list shows it.
pub fn for_admin(c: &Connection) -> rusqlite::Result<Vec<AdminRow>> {
    let policy = crate::store::retention::load_policy(c)?;
    let mut stmt = c.prepare(
        "SELECT r.id, u.display_name, d.name, r.created_at, r.hold_reason
         FROM recordings r JOIN users u ON u.id = r.owner_id JOIN devices d ON d.id = r.device_id
         ORDER BY r.created_at DESC",
    )?;
    let rows: Vec<(String, String, String, i64, Option<String>)> = stmt
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<Result<_, _>>()?;
    rows.into_iter()
        .map(|(id, owner, device, created_at, hold_reason)| {
            let row = crate::store::retention::row(c, &id)?;
            Ok(AdminRow {
                delete_after: crate::domain::retention::delete_after(&policy, &row)
                    .map(|(at, _)| at),
                id,
                owner,
                device,
                created_at,
                hold_reason,
            })
        })
        .collect()
}

/// The (device, owner) of `rec`, if it exists.
pub fn device_and_owner(
    c: &Connection,
    rec: RecordingId,
) -> rusqlite::Result<Option<(i64, UserId)>> {
    use rusqlite::OptionalExtension;
    c.query_row(
        "SELECT device_id, owner_id FROM recordings WHERE id = ?1",
        [rec.to_string()],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
}

/// Whether `rec` was deleted (by its owner, retention or offboarding): see migration 12.
pub fn was_deleted(c: &Connection, rec: RecordingId) -> rusqlite::Result<bool> {
    c.query_row(
        "SELECT EXISTS (SELECT 1 FROM deleted_recordings WHERE id = ?1)",
        [rec.to_string()],
        |r| r.get(0),
    )
}

/// How many recordings `device` began after `since`.
pub fn begun_by_device_since(c: &Connection, device: i64, since: i64) -> rusqlite::Result<i64> {
    c.query_row(
        "SELECT COUNT(*) FROM recordings WHERE device_id = ?1 AND created_at > ?2",
        rusqlite::params![device, since],
        |r| r.get(0),
    )
}

/// A new recording's row.
pub fn insert(
    c: &Connection,
    rec: RecordingId,
    owner: UserId,
    device: i64,
    now: i64,
    started_at: Option<i64>,
) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO recordings (id, owner_id, device_id, created_at, started_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        rusqlite::params![rec.to_string(), owner, device, now, started_at],
    )?;
    Ok(())
}

/// Keeps `rec`'s manifest (as parsed), whether it stopped cleanly and its plausible start.
pub fn set_manifest(
    c: &Connection,
    rec: RecordingId,
    json: &str,
    clean_stop: bool,
    started_at: Option<i64>,
) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE recordings SET manifest = ?1, clean_stop = ?2, started_at = ?3 WHERE id = ?4",
        rusqlite::params![json, clean_stop, started_at, rec.to_string()],
    )?;
    Ok(())
}

/// `rec`'s owner and its manifest (if it has arrived), if it exists.
pub fn owner_and_manifest(
    c: &Connection,
    rec: RecordingId,
) -> rusqlite::Result<Option<(UserId, Option<String>)>> {
    use rusqlite::OptionalExtension;
    c.query_row(
        "SELECT owner_id, manifest FROM recordings WHERE id = ?1",
        [rec.to_string()],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
}

/// Gives `rec` to `owner`, with the manifest that now describes it.
pub fn hand_over(
    c: &Connection,
    rec: RecordingId,
    owner: UserId,
    manifest: &str,
) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE recordings SET owner_id = ?1, manifest = ?2 WHERE id = ?3",
        rusqlite::params![owner, manifest, rec.to_string()],
    )?;
    Ok(())
}

/// A page of the lessons recorded offline whose manifest has arrived (owned by `unassigned`),
/// newest first.
pub fn offline(
    c: &Connection,
    unassigned: UserId,
    limit: i64,
    offset: i64,
) -> rusqlite::Result<Vec<String>> {
    let mut stmt = c.prepare(
        "SELECT id FROM recordings WHERE owner_id = ?1 AND manifest IS NOT NULL
         ORDER BY created_at DESC, id LIMIT ?2 OFFSET ?3",
    )?;
    let ids = stmt
        .query_map(rusqlite::params![unassigned, limit, offset], |r| r.get(0))?
        .collect();
    ids
}
