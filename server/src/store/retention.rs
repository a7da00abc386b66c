//! The retention policy and each recording's planner row, as the database keeps them, and the
//! admin's holds. The rules are in [`crate::domain::retention`].

use crate::domain::retention::{Policy, Row};
use rusqlite::{params, Connection};

pub fn load_policy(c: &Connection) -> rusqlite::Result<Policy> {
    c.query_row(
        "SELECT keep_days, unshared_days, grace_days FROM retention_policy WHERE id = 1",
        [],
        |r| {
            Ok(Policy {
                keep_days: r.get(0)?,
                unshared_days: r.get(1)?,
                grace_days: r.get(2)?,
            })
        },
    )
}

pub fn save_policy(c: &Connection, p: &Policy) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE retention_policy SET keep_days = ?1, unshared_days = ?2, grace_days = ?3 WHERE id = 1",
        params![p.keep_days, p.unshared_days, p.grace_days],
    )?;
    Ok(())
}

/// One recording's planner row.
pub fn row(c: &Connection, rec: &str) -> rusqlite::Result<Row> {
    c.query_row(
        "SELECT id, created_at, ever_shared, hold_reason IS NOT NULL FROM recordings WHERE id = ?1",
        [rec],
        row_from,
    )
}

fn row_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        id: r.get(0)?,
        created_at: r.get(1)?,
        ever_shared: r.get(2)?,
        held: r.get(3)?,
    })
}

pub fn all_rows(c: &Connection) -> rusqlite::Result<Vec<Row>> {
    let mut stmt =
        c.prepare("SELECT id, created_at, ever_shared, hold_reason IS NOT NULL FROM recordings")?;
    let rows = stmt.query_map([], row_from)?.collect();
    rows
}

/// Sets or clears (`None`) an admin's hold on a recording. Returns false if there is no such
/// recording.
pub fn set_hold(
    c: &Connection,
    audit_key: &[u8; 32],
    actor: &str,
    rec: &str,
    reason: Option<&str>,
) -> rusqlite::Result<bool> {
    let tx = rusqlite::Transaction::new_unchecked(c, rusqlite::TransactionBehavior::Immediate)?;
    let n = tx.execute(
        "UPDATE recordings SET hold_reason = ?1 WHERE id = ?2",
        params![reason, rec],
    )?;
    if n == 1 {
        // The reason may name a pupil or a concern: it stays in the recordings table (deleted with
        // the recording), not in the permanent audit log.
        let action = if reason.is_some() {
            "hold"
        } else {
            "release-hold"
        };
        crate::store::audit::append(&tx, audit_key, actor, action, rec)?;
    }
    tx.commit()?;
    Ok(n == 1)
}
