//! Roster import: the staff list a school's MIS exports (CSV with name, email, staff id and role
//! columns, in any order, with a header row) is compared with the accounts here.
//!
//! New staff get an account (username from the email's local part) that cannot sign in until the
//! person chooses a password with an invitation; changed names are updated; staff missing from the roster are only
//! *listed* as "leaving?" for an admin to confirm with `user offboard` — nobody is ever deleted by
//! an import. A file with bad lines changes nothing unless the admin asks to skip them.

use crate::domain::people::Role;
use crate::store::accounts::{self};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaffRow {
    /// Line in the file (the header is line 1).
    pub line: u64,
    pub name: String,
    pub email: String,
    pub staff_id: String,
    pub roles: Vec<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineError {
    pub line: u64,
    pub message: String,
}

fn column(headers: &csv::StringRecord, names: &[&str]) -> Option<usize> {
    headers.iter().position(|h| {
        let h = h.trim().to_ascii_lowercase().replace(['_', '-'], " ");
        names.contains(&h.as_str())
    })
}

/// Parses the file: the good rows, and one error per bad line.
pub fn parse(text: &str) -> (Vec<StaffRow>, Vec<LineError>) {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let err = |line: u64, message: String| LineError { line, message };
    let headers = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            return (
                Vec::new(),
                vec![err(1, format!("cannot read the header row: {e}"))],
            )
        }
    };
    let cols = (
        column(&headers, &["name", "full name", "display name"]),
        column(&headers, &["email", "email address"]),
        column(&headers, &["staff id", "staffid", "id"]),
        column(&headers, &["role", "roles"]),
    );
    let (Some(name_c), Some(email_c), Some(id_c), Some(role_c)) = cols else {
        return (
            Vec::new(),
            vec![err(
                1,
                "the header row must name the columns: name, email, staff id, role".into(),
            )],
        );
    };
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, record) in reader.records().enumerate() {
        let line = i as u64 + 2;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                errors.push(err(line, format!("not valid CSV: {e}")));
                continue;
            }
        };
        let field = |c: usize| record.get(c).unwrap_or("").trim().to_string();
        let (name, email, staff_id, role) =
            (field(name_c), field(email_c), field(id_c), field(role_c));
        let mut problems = Vec::new();
        if name.is_empty() || name.chars().count() > 100 {
            problems.push("the name is empty or longer than 100 characters".to_string());
        }
        let local = email.split_once('@').map(|(l, _)| l).unwrap_or("");
        if local.is_empty() || !email.contains('.') {
            problems.push(format!("{email:?} is not an email address"));
        }
        if staff_id.is_empty() {
            problems.push("the staff id is empty".into());
        } else if !seen.insert(staff_id.clone()) {
            problems.push(format!("staff id {staff_id:?} appears twice in the file"));
        }
        let mut roles = Vec::new();
        for r in role
            .split([';', '/', ','])
            .map(|r| r.trim().to_ascii_lowercase())
        {
            match Role::parse(&r) {
                Some(r) => roles.push(r.as_str()),
                None => problems.push(format!("unknown role {r:?}: use teacher, coach or admin")),
            }
        }
        // Two emails can give one username (ann.smith@ and ann.smith+x@): the second would fail
        // half-way through an import.
        let username = username_for(&email);
        if let Some(first) = rows
            .iter()
            .find(|r: &&StaffRow| username_for(&r.email) == username)
        {
            problems.push(format!(
                "the email gives the username {username:?}, as line {} does: give one of them another email",
                first.line
            ));
        }
        if problems.is_empty() {
            rows.push(StaffRow {
                line,
                name,
                email: email.to_ascii_lowercase(),
                staff_id,
                roles,
            });
        } else {
            errors.push(err(line, problems.join("; ")));
        }
    }
    (rows, errors)
}

/// The username a new member of staff gets: the email's local part, lower case, with anything
/// but a-z, 0-9, '.', '-' and '_' dropped.
pub fn username_for(email: &str) -> String {
    email
        .split('@')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(*c))
        .take(64)
        .collect()
}

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
) -> anyhow::Result<Vec<(i64, bool)>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_each_bad_line_and_keeps_the_good_ones() {
        let text = "Staff ID,Full Name,Email,Role\n\
                    T01,Ann Smith,ann.smith@school.example,Teacher\n\
                    T02,,bob@school.example,teacher\n\
                    T03,Cy Jones,not-an-email,coach\n\
                    T01,Dup Licate,dup@school.example,teacher\n\
                    C01,Di Coach,di@school.example,Coach;Teacher\n\
                    C02,Ed Nope,ed@school.example,janitor\n";
        let (rows, errors) = parse(text);
        assert_eq!(
            rows.iter().map(|r| r.staff_id.as_str()).collect::<Vec<_>>(),
            ["T01", "C01"]
        );
        assert_eq!(rows[1].roles, ["coach", "teacher"]);
        assert_eq!(
            errors.iter().map(|e| e.line).collect::<Vec<_>>(),
            [3, 4, 5, 7]
        );
        assert!(errors[2].message.contains("appears twice"));
        assert!(errors[3].message.contains("janitor"));
        // Issue 14.7: two emails that give one username; the second line is refused up front.
        let (rows, errors) = parse(
            "Staff ID,Name,Email,Role\nT1,Ann,ann.smith@s.example,teacher\nT2,Anne,Ann.Smith@other.example,teacher\n",
        );
        assert_eq!(rows.len(), 1);
        assert_eq!(errors[0].line, 3);
        assert!(errors[0].message.contains("as line 2 does"), "{:?}", errors);
        let (_, errors) = parse("name,email\nA,a@b.c\n");
        assert_eq!(errors[0].line, 1);
        assert_eq!(username_for("Ann.Smith+x@school.example"), "ann.smithx");
    }
}
