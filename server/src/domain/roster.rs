//! Roster import: the staff list a school's MIS exports (CSV with name, email, staff id and role
//! columns, in any order, with a header row) is compared with the accounts here.
//!
//! New staff get an account (username from the email's local part) that cannot sign in until the
//! person chooses a password with an invitation; changed names are updated; staff missing from the roster are only
//! *listed* as "leaving?" for an admin to confirm with `user offboard` — nobody is ever deleted by
//! an import. A file with bad lines changes nothing unless the admin asks to skip them.
//!
//! This is the parsing, pure; the comparison with the accounts and the changes are
//! `store::roster`'s.

use crate::domain::people::Role;
use serde::Serialize;
use std::collections::BTreeSet;

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
