//! Booked lessons: a room, a teacher and a slot, one row a week for a weekly booking. The rules
//! for what may be booked are the routes'; this keeps and finds them.

use crate::domain::people::UserId;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

/// A booking as the web app lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub id: i64,
    pub room: String,
    pub starts_at: i64,
    pub ends_at: i64,
    pub series: String,
    /// The teacher's display name (for admins; a teacher sees only their own).
    pub teacher: String,
    /// "recorded", "not recorded", or none while it has not happened (or its device has not said).
    pub outcome: Option<String>,
    pub recording: Option<String>,
}

/// The first booking of `device` that overlaps `[starts_at, ends_at)`, if any.
pub fn overlapping(
    c: &Connection,
    device: i64,
    starts_at: i64,
    ends_at: i64,
) -> rusqlite::Result<Option<(i64, i64)>> {
    c.query_row(
        "SELECT starts_at, ends_at FROM bookings
         WHERE device_id = ?1 AND starts_at < ?3 AND ends_at > ?2 ORDER BY starts_at LIMIT 1",
        params![device, starts_at, ends_at],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
}

/// How many bookings `teacher` holds in `device`'s room that end after `now`.
pub fn held_by(c: &Connection, device: i64, teacher: UserId, now: i64) -> rusqlite::Result<i64> {
    c.query_row(
        "SELECT COUNT(*) FROM bookings WHERE device_id = ?1 AND teacher_id = ?2 AND ends_at > ?3",
        params![device, teacher, now],
        |r| r.get(0),
    )
}

/// Books `device` for `teacher` in each slot; gives the new ids.
pub fn insert(
    c: &Connection,
    device: i64,
    teacher: UserId,
    slots: &[(i64, i64)],
    series: &str,
    now: i64,
) -> rusqlite::Result<Vec<i64>> {
    slots
        .iter()
        .map(|(starts_at, ends_at)| {
            c.execute(
                "INSERT INTO bookings (device_id, teacher_id, starts_at, ends_at, series, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![device, teacher, starts_at, ends_at, series, now],
            )?;
            Ok(c.last_insert_rowid())
        })
        .collect()
}

/// Bookings ending after `since`, soonest first: one teacher's, or everyone's.
pub fn list(c: &Connection, teacher: Option<UserId>, since: i64) -> rusqlite::Result<Vec<Listed>> {
    let mut stmt = c.prepare(
        "SELECT b.id, d.name, b.starts_at, b.ends_at, b.series, u.display_name, b.outcome, b.recording_id
         FROM bookings b JOIN devices d ON d.id = b.device_id JOIN users u ON u.id = b.teacher_id
         WHERE b.ends_at > ?1 AND (?2 IS NULL OR b.teacher_id = ?2)
         ORDER BY b.starts_at LIMIT 500",
    )?;
    let rows = stmt
        .query_map(params![since, teacher], |r| {
            Ok(Listed {
                id: r.get(0)?,
                room: r.get(1)?,
                starts_at: r.get(2)?,
                ends_at: r.get(3)?,
                series: r.get(4)?,
                teacher: r.get(5)?,
                outcome: r.get(6)?,
                recording: r.get(7)?,
            })
        })?
        .collect();
    rows
}

/// Booking `id`'s device and teacher, if it exists.
pub fn find(c: &Connection, id: i64) -> rusqlite::Result<Option<(i64, UserId)>> {
    c.query_row(
        "SELECT device_id, teacher_id FROM bookings WHERE id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
}

pub fn delete(c: &Connection, id: i64) -> rusqlite::Result<()> {
    c.execute("DELETE FROM bookings WHERE id = ?1", [id])?;
    Ok(())
}

/// The bookings of `device` that end after `from` and start before `until`, with their teachers'
/// ids, soonest first: what its device keeps.
pub fn upcoming(
    c: &Connection,
    device: i64,
    from: i64,
    until: i64,
) -> rusqlite::Result<Vec<(i64, i64, i64, UserId)>> {
    let mut stmt = c.prepare(
        "SELECT id, starts_at, ends_at, teacher_id FROM bookings
         WHERE device_id = ?1 AND ends_at > ?2 AND starts_at < ?3 ORDER BY starts_at LIMIT 200",
    )?;
    let rows = stmt
        .query_map(params![device, from, until], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect();
    rows
}

/// The device of booking `id` says how it went. Only once, and only for a slot that has begun:
/// a later word (a device restarted with yesterday's bookings) changes nothing. A recording named
/// must be this device's and the booked teacher's, if the server has it yet. False if it is not
/// that device's booking, or the recording is someone else's.
pub fn set_outcome(
    c: &Connection,
    id: i64,
    device: i64,
    recording: Option<&str>,
    now: i64,
) -> rusqlite::Result<bool> {
    let Some((booked_device, teacher)) = find(c, id)? else {
        return Ok(false);
    };
    if booked_device != device {
        return Ok(false);
    }
    if let Some(rec) = recording {
        let theirs: Option<(i64, UserId)> = c
            .query_row(
                "SELECT device_id, owner_id FROM recordings WHERE id = ?1",
                [rec],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if theirs.is_some_and(|t| t != (device, teacher)) {
            return Ok(false);
        }
    }
    c.execute(
        "UPDATE bookings SET outcome = ?1, recording_id = ?2
         WHERE id = ?3 AND outcome IS NULL AND starts_at <= ?4",
        params![
            if recording.is_some() {
                "recorded"
            } else {
                "not recorded"
            },
            recording,
            id,
            now
        ],
    )?;
    Ok(true)
}

/// The booking of `device` running at `now`: its teacher and their display name, if any.
pub fn now_in(c: &Connection, device: i64, now: i64) -> rusqlite::Result<Option<(UserId, String)>> {
    c.query_row(
        "SELECT b.teacher_id, u.display_name FROM bookings b JOIN users u ON u.id = b.teacher_id
         WHERE b.device_id = ?1 AND b.starts_at <= ?2 AND b.ends_at > ?2",
        params![device, now],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::people::Role;
    use crate::store::{accounts, devices, recordings};
    use lessonlens_proto::RecordingId;

    fn outcome(c: &Connection, id: i64) -> Option<(String, Option<String>)> {
        c.query_row(
            "SELECT outcome, recording_id FROM bookings WHERE id = ?1 AND outcome IS NOT NULL",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .unwrap()
    }

    #[test]
    fn an_outcome_is_said_once_by_its_device_for_a_begun_slot_and_the_booked_teachers_lesson() {
        let t = tempfile::tempdir().unwrap();
        let c = crate::store::db::open(&t.path().join("db")).unwrap();
        let user = |name: &str| {
            accounts::insert_user(&c, name, name, "not-a-hash", &[Role::Teacher]).unwrap()
        };
        let (alice, bob) = (user("alice"), user("bob"));
        let device = |name: &str| {
            let code = devices::create_code(&c, name, 0).unwrap();
            devices::redeem_code(&c, &code, 0).unwrap().id
        };
        let (room1, room2) = (device("room-1"), device("room-2"));
        let ids = insert(&c, room1, alice, &[(100, 200), (300, 400)], "s", 0).unwrap();
        let (begun, later) = (ids[0], ids[1]);
        let rec = |n: u8, owner, device| {
            let id = RecordingId::from_random_bytes([n; 16]);
            recordings::insert(&c, id, owner, device, 0, None).unwrap();
            id.to_string()
        };
        let (bobs, elsewhere, alices) = (
            rec(1, bob, room1),
            rec(2, alice, room2),
            rec(3, alice, room1),
        );

        // Another device, another teacher's recording, or another room's: refused, nothing set.
        assert!(!set_outcome(&c, begun, room2, None, 150).unwrap());
        assert!(!set_outcome(&c, begun, room1, Some(&bobs), 150).unwrap());
        assert!(!set_outcome(&c, begun, room1, Some(&elsewhere), 150).unwrap());
        assert!(!set_outcome(&c, 9999, room1, None, 150).unwrap());
        assert_eq!(outcome(&c, begun), None);
        // A slot that has not begun keeps no outcome.
        assert!(set_outcome(&c, later, room1, None, 150).unwrap());
        assert_eq!(outcome(&c, later), None);
        // Said once; a later word changes nothing.
        assert!(set_outcome(&c, begun, room1, Some(&alices), 150).unwrap());
        assert!(set_outcome(&c, begun, room1, None, 250).unwrap());
        assert_eq!(
            outcome(&c, begun),
            Some(("recorded".into(), Some(alices.clone())))
        );
        // A recording the server does not have yet is taken at the device's word.
        let unseen = RecordingId::from_random_bytes([4; 16]).to_string();
        assert!(set_outcome(&c, later, room1, Some(&unseen), 300).unwrap());
        assert_eq!(outcome(&c, later), Some(("recorded".into(), Some(unseen))));
    }
}
