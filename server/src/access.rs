//! Who may see a recording. The owner may, and so may a coach the owner shared it with (by name,
//! or through a group of coaches they are in), for as long as the share (and the membership)
//! lasts and the owner's account is enabled (a teacher who is leaving makes their
//! recordings unplayable at once). Nobody else may, admins included: to everyone else a recording
//! does not exist, so the answer is "not found" rather than "forbidden".

use crate::accounts::{Role, User};
use crate::error::{AppError, AppResult};
use rusqlite::{params, Connection, OptionalExtension};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Owner,
    /// A coach the recording is shared with: may watch, comment and reply.
    SharedCoach,
}

impl Access {
    pub fn is_owner(self) -> bool {
        self == Access::Owner
    }
}

/// The rule for a group share, in SQL over a share `g` and a membership `m`: the coach was in
/// the group when the lesson was shared with it (the teacher saw who that was). Both are ordered
/// by [`NEXT_SEQ`], not by the clock, which cannot tell two changes in one second apart.
pub const MEMBER_WHEN_SHARED: &str = "m.added_seq <= g.shared_seq";

/// The order number of a change made now, in SQL: the id its audit entry (written in the same
/// transaction, see `groups::audited`) is about to get.
pub const NEXT_SEQ: &str = "(SELECT COALESCE(MAX(id), 0) + 1 FROM audit)";

pub fn recording(c: &Connection, user: &User, rec: &str) -> AppResult<Access> {
    recording_and_owner(c, user, rec).map(|(access, _)| access)
}

/// [`recording`], with the owner's id (whose key opens the recording).
pub fn recording_and_owner(c: &Connection, user: &User, rec: &str) -> AppResult<(Access, i64)> {
    let row: Option<(i64, bool, bool)> = c
        .query_row(
            &format!(
                "SELECT r.owner_id, u.disabled,
                    EXISTS (SELECT 1 FROM shares s WHERE s.recording_id = r.id AND s.coach_id = ?2)
                    OR EXISTS (SELECT 1 FROM group_shares g
                               JOIN coach_group_members m ON m.group_id = g.group_id
                               WHERE g.recording_id = r.id AND m.user_id = ?2
                                 AND {MEMBER_WHEN_SHARED})
                 FROM recordings r JOIN users u ON u.id = r.owner_id WHERE r.id = ?1"
            ),
            params![rec, user.id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    match row {
        Some((_, true, _)) | None => Err(AppError::NotFound),
        Some((owner, false, _)) if owner == user.id => Ok((Access::Owner, owner)),
        Some((owner, false, true)) if user.has(Role::Coach) => Ok((Access::SharedCoach, owner)),
        Some(_) => Err(AppError::NotFound),
    }
}

/// Like [`recording`], but only the owner passes; a coach with a share learns that the action is
/// the owner's, anyone else that there is nothing here.
pub fn owner_only(c: &Connection, user: &User, rec: &str) -> AppResult<()> {
    match recording(c, user, rec)? {
        Access::Owner => Ok(()),
        Access::SharedCoach => Err(AppError::Forbidden(
            "only the teacher who recorded this lesson can do that",
        )),
    }
}
