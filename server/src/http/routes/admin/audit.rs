//! The audit log: paged and filtered on the server, and the whole log as CSV.

use super::super::Page;
use crate::http::error::{AppError, AppResult};
use crate::http::state::{Admin, Shared};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};

#[derive(Serialize)]
pub(super) struct AuditRow {
    id: i64,
    at: i64,
    /// The person's display name while their account exists; otherwise the pseudonym or the
    /// system part that acted ("cli", "retention", "offboarding").
    actor: String,
    action: String,
    target: String,
}

/// The audit log, newest first: `limit` entries after skipping `offset`, only those whose person,
/// action or target contains `filter` (any, when empty; letters compared without case for ASCII
/// only, as SQLite's LIKE does).
pub(super) fn audit_rows(
    c: &Connection,
    filter: &str,
    limit: i64,
    offset: i64,
) -> rusqlite::Result<Vec<AuditRow>> {
    // LIKE with the filter's own % and _ taken literally.
    let pattern = format!(
        "%{}%",
        filter
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    );
    let mut stmt = c.prepare(
        "SELECT a.id, a.at, COALESCE(u.display_name, a.actor) AS who, a.action, a.target
         FROM audit a LEFT JOIN users u ON u.audit_id = a.actor
         WHERE ?1 = '' OR COALESCE(u.display_name, a.actor) LIKE ?2 ESCAPE '\\'
            OR a.action LIKE ?2 ESCAPE '\\' OR a.target LIKE ?2 ESCAPE '\\'
         ORDER BY a.id DESC LIMIT ?3 OFFSET ?4",
    )?;
    let rows = stmt
        .query_map(params![filter, pattern, limit, offset], |r| {
            Ok(AuditRow {
                id: r.get(0)?,
                at: r.get(1)?,
                actor: r.get(2)?,
                action: r.get(3)?,
                target: r.get(4)?,
            })
        })?
        .collect();
    rows
}

/// Entries on one page of the audit log.
pub(super) const AUDIT_PAGE: i64 = 50;

#[derive(Deserialize)]
pub(super) struct AuditQuery {
    /// From 0, newest first.
    #[serde(default)]
    page: u32,
    /// Only entries whose person, action or target contains this.
    #[serde(default)]
    q: String,
}

pub(super) async fn audit_json(
    State(st): State<Shared>,
    _: Admin,
    Query(query): Query<AuditQuery>,
) -> AppResult<Json<Page<AuditRow>>> {
    Page::<AuditRow>::check(query.page)?;
    if query.q.chars().count() > 100 {
        return Err(AppError::BadRequest(
            "the filter must be at most 100 characters".into(),
        ));
    }
    let (page, filter) = (query.page, query.q.trim().to_string());
    let (limit, offset) = Page::<AuditRow>::window(page, AUDIT_PAGE);
    let rows = st
        .db(move |c| Ok(audit_rows(c, &filter, limit, offset)?))
        .await?;
    Ok(Json(Page::of(page, AUDIT_PAGE, rows)))
}

/// One CSV field: quoted, quotes doubled, and a leading formula character defused so a
/// spreadsheet does not run it (OWASP's list: a tab or carriage return first lets the formula
/// character after it through).
pub(super) fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    format!("\"{}\"", s.replace('"', "\"\""))
}

pub(super) async fn audit_csv(
    State(st): State<Shared>,
    Admin(admin): Admin,
) -> AppResult<Response> {
    let audit_key = st.audit_key.clone();
    let rows = st
        .db(move |c| {
            crate::store::audit::record(c, &audit_key, &admin.audit_id, "audit-export", "")?;
            Ok(audit_rows(c, "", i64::MAX, 0)?)
        })
        .await?;
    let mut out = String::from("id,at_utc,actor,action,target\n");
    for r in rows.iter().rev() {
        let at = time::OffsetDateTime::from_unix_timestamp(r.at)
            .map(|t| t.to_string())
            .unwrap_or_default();
        out.push_str(&format!(
            "{},{},{},{},{}\n",
            r.id,
            csv_field(&at),
            csv_field(&r.actor),
            csv_field(&r.action),
            csv_field(&r.target)
        ));
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"lessonlens-audit.csv\"",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        out,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(super::csv_field("a \"b\""), "\"a \"\"b\"\"\"");
        assert_eq!(super::csv_field("=HYPERLINK(x)"), "\"'=HYPERLINK(x)\"");
        assert_eq!(super::csv_field("plain"), "\"plain\"");
        // Issue 14.7: a leading tab or carriage return hid the formula from the defusing.
        assert_eq!(super::csv_field("\t=1+2"), "\"'\t=1+2\"");
        assert_eq!(super::csv_field("\r=1+2"), "\"'\r=1+2\"");
    }

    #[test]
    fn the_audit_log_pages_and_filters_on_the_database() {
        let tmp = tempfile::tempdir().unwrap();
        let c = crate::store::db::open(&tmp.path().join("db")).unwrap();
        let key = [7u8; 32];
        for i in 0..120 {
            let action = if i % 10 == 0 { "unshare" } else { "view" };
            crate::store::audit::record(&c, &key, "alice", action, &format!("rec-{i}")).unwrap();
        }
        crate::store::audit::record(&c, &key, "bob", "view", "100%_done").unwrap();
        let ids =
            |rows: Vec<super::AuditRow>| rows.iter().map(|r| r.target.clone()).collect::<Vec<_>>();
        let first = ids(super::audit_rows(&c, "", 50, 0).unwrap());
        assert_eq!(first.len(), 50);
        assert_eq!(first[0], "100%_done", "newest first");
        let third = ids(super::audit_rows(&c, "", 50, 100).unwrap());
        assert_eq!(third.len(), 21);
        assert_eq!(third.last().unwrap(), "rec-0");
        // A filter matches person, action or target, on the whole log, not one page.
        let unshared = super::audit_rows(&c, "unshare", 50, 0).unwrap();
        assert_eq!(unshared.len(), 12);
        assert!(unshared.iter().all(|r| r.action == "unshare"));
        assert_eq!(
            ids(super::audit_rows(&c, "rec-11", 50, 0).unwrap()),
            [
                "rec-119", "rec-118", "rec-117", "rec-116", "rec-115", "rec-114", "rec-113",
                "rec-112", "rec-111", "rec-110", "rec-11"
            ]
        );
        // % and _ in a filter are the characters themselves, not wildcards.
        assert_eq!(
            ids(super::audit_rows(&c, "%_", 50, 0).unwrap()),
            ["100%_done"]
        );
        assert!(super::audit_rows(&c, "0%", 50, 0).unwrap().len() == 1);
    }
}
