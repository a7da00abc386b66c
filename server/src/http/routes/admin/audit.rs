//! The audit log: paged and filtered on the server, and the whole log as CSV.

use super::super::Page;
use crate::http::error::{AppError, AppResult};
use crate::http::state::{Admin, Shared};
use crate::store::audit::{self, AuditRow};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

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
        .db(move |c| Ok(audit::rows(c, &filter, limit, offset)?))
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
            Ok(audit::rows(c, "", i64::MAX, 0)?)
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
}
