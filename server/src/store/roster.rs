//! Roster import against the accounts: what a parsed staff list ([`crate::domain::roster`])
//! would change here, and making those changes in one transaction.

use crate::domain::people::{Role, UserId};
use crate::domain::roster::{username_for, LineError, StaffRow};
use crate::store::accounts::{self};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Default, Serialize)]
pub struct Plan {
    pub add: Vec<StaffRow>,
    /// (username, old name, new name)
    pub rename: Vec<(String, String, String)>,
    /// Accounts from an earlier import that this roster no longer lists: to confirm by an admin.
    pub leaving: Vec<String>,
    /// Existing accounts (made by hand) that this import links to their staff id.
    pub link: Vec<(String, String)>,
    /// Rows whose username belongs to another member of staff already: not imported.
    pub clashes: Vec<LineError>,
}

/// What importing `rows` would change.
pub fn plan(c: &Connection, rows: &[StaffRow]) -> rusqlite::Result<Plan> {
    let mut by_staff_id: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut stmt = c.prepare(
        "SELECT staff_id, username, display_name FROM users u
         WHERE staff_id IS NOT NULL AND disabled = 0 AND NOT EXISTS (SELECT 1 FROM leaving l WHERE l.user_id = u.id)",
    )?;
    for r in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?)))? {
        let (id, username, name) = r?;
        by_staff_id.insert(id, (username, name));
    }
    let mut plan = Plan::default();
    for row in rows {
        match by_staff_id.remove(&row.staff_id) {
            Some((username, name)) if name != row.name => {
                plan.rename.push((username, name, row.name.clone()))
            }
            Some(_) => {}
            None => {
                let username = username_for(&row.email);
                let existing: Option<Option<String>> = c
                    .query_row(
                        "SELECT staff_id FROM users WHERE username = ?1",
                        [&username],
                        |r| r.get(0),
                    )
                    .optional()?;
                match existing {
                    Some(None) => plan.link.push((username, row.staff_id.clone())),
                    Some(Some(_)) => plan.clashes.push(LineError {
                        line: row.line,
                        message: format!(
                            "the username {username:?} belongs to another member of staff already: give this person another email"
                        ),
                    }),
                    None => plan.add.push(row.clone()),
                }
            }
        }
    }
    plan.leaving = by_staff_id.into_values().map(|(u, _)| u).collect();
    Ok(plan)
}

/// Applies a plan (adds, renames, links; never deletes) in one transaction: all of it or, on any
/// error, nothing. New accounts get a random password nobody knows: they choose theirs with an
/// invitation. Returns the new accounts' ids (to make teacher keys for, after the commit; a
/// teacher left without one gets it at the server's next start).
pub fn apply(
    c: &Connection,
    audit_key: &[u8; 32],
    actor: &str,
    plan: &Plan,
) -> anyhow::Result<Vec<(UserId, bool)>> {
    let tx = rusqlite::Transaction::new_unchecked(c, rusqlite::TransactionBehavior::Immediate)?;
    let c = &*tx;
    let mut created = Vec::new();
    for row in &plan.add {
        let username = username_for(&row.email);
        let unusable = accounts::new_token().0;
        let roles: Vec<Role> = row.roles.iter().filter_map(|r| Role::parse(r)).collect();
        let id = accounts::add_user(c, &username, &row.name, &unusable, &roles)
            .map_err(|e| anyhow::anyhow!("line {}: {e}", row.line))?;
        c.execute(
            "UPDATE users SET staff_id = ?1, email = ?2, own_password = 0 WHERE id = ?3",
            params![row.staff_id, row.email, id],
        )?;
        let audit_id: String =
            c.query_row("SELECT audit_id FROM users WHERE id = ?1", [id], |r| {
                r.get(0)
            })?;
        crate::store::audit::append(&tx, audit_key, actor, "roster-add", &audit_id)?;
        created.push((id, roles.contains(&Role::Teacher)));
    }
    // Each change to an existing account is audited (by pseudonym, no names), so the person sees
    // it on their Account page like any other admin action.
    let changed = |username: &str, action: &str| -> anyhow::Result<()> {
        let audit_id: String = c.query_row(
            "SELECT audit_id FROM users WHERE username = ?1",
            [username],
            |r| r.get(0),
        )?;
        crate::store::audit::append(&tx, audit_key, actor, action, &audit_id)?;
        Ok(())
    };
    for (username, _, new) in &plan.rename {
        c.execute(
            "UPDATE users SET display_name = ?1 WHERE username = ?2",
            params![new, username],
        )?;
        changed(username, "roster-rename")?;
    }
    for (username, staff_id) in &plan.link {
        c.execute(
            "UPDATE users SET staff_id = ?1 WHERE username = ?2",
            params![staff_id, username],
        )?;
        changed(username, "roster-link")?;
    }
    tx.commit()?;
    Ok(created)
}
