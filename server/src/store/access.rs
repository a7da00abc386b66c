//! What the database says about who may see a recording; the rule itself is
//! [`crate::domain::access`].

use crate::domain::access::Facts;
use crate::domain::people::UserId;
use rusqlite::{params, Connection, OptionalExtension};

/// The rule for a group share, in SQL over a share `g` and a membership `m`: the coach was in
/// the group when the lesson was shared with it (the teacher saw who that was). Both are ordered
/// by [`NEXT_SEQ`], not by the clock, which cannot tell two changes in one second apart.
pub const MEMBER_WHEN_SHARED: &str = "m.added_seq <= g.shared_seq";

/// The order number of a change made now, in SQL: the id its audit entry (written in the same
/// transaction, see `http::routes::groups::audited`) is about to get.
pub const NEXT_SEQ: &str = "(SELECT COALESCE(MAX(id), 0) + 1 FROM audit)";

/// The facts about recording `rec` for person `user_id`, or `None` if there is no such recording.
pub fn facts(c: &Connection, user_id: UserId, rec: &str) -> rusqlite::Result<Option<Facts>> {
    c.query_row(
        &format!(
            "SELECT r.owner_id, u.disabled,
                EXISTS (SELECT 1 FROM shares s WHERE s.recording_id = r.id AND s.coach_id = ?2)
                OR EXISTS (SELECT 1 FROM group_shares g
                           JOIN coach_group_members m ON m.group_id = g.group_id
                           WHERE g.recording_id = r.id AND m.user_id = ?2
                             AND {MEMBER_WHEN_SHARED})
             FROM recordings r JOIN users u ON u.id = r.owner_id WHERE r.id = ?1"
        ),
        params![rec, user_id],
        |r| {
            Ok(Facts {
                owner: r.get(0)?,
                owner_disabled: r.get(1)?,
                shared_with_them: r.get(2)?,
            })
        },
    )
    .optional()
}
