//! The admin API (`/api/admin/...`): people, devices, the retention policy, holds, deletion
//! receipts and the audit log. Admins manage accounts and recordings' lifecycles; they never get a recording's
//! content or comments (the recordings list here is metadata only).

use super::{Page, Route};
use crate::domain::clock;
use crate::domain::people::{Role, User};
use crate::domain::retention::Policy;
use crate::http::error::{AppError, AppResult};
use crate::http::state::{Admin, Shared};
use crate::ops::offboarding;
use crate::store::accounts::{self};
use crate::store::devices;
use crate::store::retention;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::Json;
use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};

pub fn routes() -> Vec<Route> {
    vec![
        ("GET", "/api/admin/users", get(users)),
        ("POST", "/api/admin/users", post(add_user)),
        ("POST", "/api/admin/users/{username}/disable", post(disable)),
        ("POST", "/api/admin/users/{username}/enable", post(enable)),
        (
            "POST",
            "/api/admin/users/{username}/offboard",
            post(offboard),
        ),
        (
            "POST",
            "/api/admin/users/{username}/cancel-offboard",
            post(cancel_offboard),
        ),
        (
            "POST",
            "/api/admin/users/{username}/reset-second-factor",
            post(reset_second_factor),
        ),
        ("POST", "/api/admin/users/{username}/invite", post(invite)),
        ("GET", "/api/admin/retention", get(policy)),
        ("PUT", "/api/admin/retention", put(set_policy)),
        ("GET", "/api/admin/recordings", get(recordings)),
        ("PUT", "/api/admin/recordings/{id}/hold", put(hold)),
        ("DELETE", "/api/admin/recordings/{id}/hold", delete(release)),
        ("POST", "/api/admin/roster", post(roster_import)),
        ("GET", "/api/admin/devices", get(devices_list)),
        ("POST", "/api/admin/devices", post(enrollment_code)),
        (
            "POST",
            "/api/admin/devices/{name}/revoke",
            post(revoke_device),
        ),
        ("GET", "/api/admin/receipts", get(receipts)),
        ("GET", "/api/admin/audit", get(audit_json)),
        ("GET", "/api/admin/audit.csv", get(audit_csv)),
    ]
}

#[derive(Serialize)]
struct UserRow {
    username: String,
    display_name: String,
    roles: Vec<String>,
    disabled: bool,
    /// When their data will be deleted, if they are leaving.
    delete_after: Option<i64>,
    /// They chose their own password: no invitation can be made for them.
    own_password: bool,
}

async fn users(State(st): State<Shared>, _: Admin) -> AppResult<Json<Vec<UserRow>>> {
    let unassigned = st.unassigned;
    let list = st
        .db(move |c| {
            let mut stmt = c.prepare(
                "SELECT u.username, u.display_name, u.roles, u.disabled, l.delete_after, u.own_password
                 FROM users u LEFT JOIN leaving l ON l.user_id = u.id
                 WHERE u.id != ?1 ORDER BY u.display_name",
            )?;
            let rows = stmt
                .query_map([unassigned], |r| {
                    Ok(UserRow {
                        username: r.get(0)?,
                        display_name: r.get(1)?,
                        roles: r
                            .get::<_, String>(2)?
                            .split(',')
                            .map(str::to_string)
                            .collect(),
                        disabled: r.get(3)?,
                        delete_after: r.get(4)?,
                        own_password: r.get(5)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await?;
    Ok(Json(list))
}

#[derive(Deserialize)]
struct NewUser {
    username: String,
    display_name: String,
    roles: Vec<String>,
    /// Refused when not empty: an admin never chooses a person's password (see
    /// docs/decisions.md). The answer holds an invitation link instead.
    #[serde(default)]
    password: Option<zeroize::Zeroizing<String>>,
}

/// The link a person opens to choose their password: this server as the admin reached it.
fn invite_url(headers: &axum::http::HeaderMap, token: &str) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("https://{host}/#/invite/{token}")
}

/// Makes an invitation for `user_id` and audits it; returns its link and expiry.
async fn invite_for(
    st: &Shared,
    headers: &axum::http::HeaderMap,
    admin: &User,
    user_id: i64,
    target: String,
) -> AppResult<serde_json::Value> {
    let key = st.audit_key.clone();
    let actor = admin.audit_id.clone();
    let now = clock::now();
    let token = st
        .db(move |c| {
            let token = accounts::create_invite(c, user_id, now)?;
            crate::store::audit::record(c, &key, &actor, "invite", &target)?;
            Ok(token)
        })
        .await?;
    Ok(serde_json::json!({
        "invite_url": invite_url(headers, &token),
        "invite_expires_at": now + accounts::INVITE_DAYS * 86_400,
    }))
}

/// A new invitation link for someone who has not chosen a password yet. Once they have, no admin
/// can make one: with it the admin could choose a new password and sign in as them. A person who
/// forgot their password uses their recovery code.
async fn invite(
    State(st): State<Shared>,
    Admin(admin): Admin,
    headers: axum::http::HeaderMap,
    Path(username): Path<String>,
) -> AppResult<Json<serde_json::Value>> {
    let user = st
        .db(move |c| {
            let user = accounts::find_user(c, &username)?
                .ok_or_else(|| AppError::Conflict("no enabled account has that username".into()))?;
            if accounts::own_password(c, user.id)? {
                return Err(AppError::Conflict(format!(
                    "{} has chosen their own password, so no invitation can be made for them. If they forgot it, they use their recovery code (\"Forgot your password?\" on the sign-in page)",
                    user.display_name
                )));
            }
            Ok(user)
        })
        .await?;
    let target = user.audit_id.clone();
    Ok(Json(
        invite_for(&st, &headers, &admin, user.id, target).await?,
    ))
}

async fn add_user(
    State(st): State<Shared>,
    Admin(admin): Admin,
    headers: axum::http::HeaderMap,
    Json(new): Json<NewUser>,
) -> AppResult<Json<serde_json::Value>> {
    let roles = new
        .roles
        .iter()
        .map(|r| {
            Role::parse(r).ok_or_else(|| {
                AppError::BadRequest(format!("unknown role {r:?}: use teacher, coach or admin"))
            })
        })
        .collect::<AppResult<Vec<_>>>()?;
    if roles.is_empty() {
        return Err(AppError::BadRequest("give at least one role".into()));
    }
    let username = new.username.trim().to_ascii_lowercase();
    if new.password.as_ref().is_some_and(|p| !p.is_empty()) {
        return Err(AppError::BadRequest(
            "admins do not choose passwords: leave the password empty and give the person the invitation link, with which they choose their own".into(),
        ));
    }
    // A random password nobody knows until the person chooses theirs. Argon2 is slow: hash
    // outside the database lock.
    let hash = super::web::hash_new_password(accounts::new_token().0).await?;
    let audit_key = st.audit_key.clone();
    let display = new.display_name.trim().to_string();
    let actor = admin.audit_id.clone();
    let user = st
        .db(move |c| {
            accounts::insert_user(c, &username, &display, &hash, &roles).map_err(|e| match e {
                accounts::AccountError::Db(e) => e.into(),
                other => AppError::BadRequest(other.to_string()),
            })?;
            let user = accounts::find_user(c, &username)?.ok_or(AppError::NotFound)?;
            accounts::mark_invited(c, user.id)?;
            crate::store::audit::record(c, &audit_key, &actor, "user-add", &user.audit_id)?;
            Ok(user)
        })
        .await?;
    if user.has(Role::Teacher) {
        let id = user.id;
        st.vault(move |v| Ok(v.create_key(id, clock::now())?))
            .await?;
    }
    let mut answer = serde_json::json!({ "username": user.username });
    let target = user.audit_id.clone();
    let link = invite_for(&st, &headers, &admin, user.id, target).await?;
    answer["invite_url"] = link["invite_url"].clone();
    answer["invite_expires_at"] = link["invite_expires_at"].clone();
    Ok(Json(answer))
}

/// Turns off someone's two-step sign-in (a lost phone) and ends their sessions; they set it up
/// again at their next sign-in if the school requires it.
async fn reset_second_factor(
    State(st): State<Shared>,
    Admin(admin): Admin,
    Path(username): Path<String>,
) -> AppResult<Json<serde_json::Value>> {
    let user = on_user(&st, admin, username, |c, key, admin, user| {
        not_self(admin, user)?;
        c.execute("DELETE FROM sessions WHERE user_id = ?1", [user.id])?;
        crate::store::audit::record(
            c,
            key,
            &admin.audit_id,
            "second-factor-reset",
            &user.audit_id,
        )?;
        Ok(user.id)
    })
    .await?;
    let removed = st.vault(move |v| Ok(v.totp_remove(user)?)).await?;
    Ok(Json(serde_json::json!({ "reset": removed })))
}

/// Runs `f` on the named user (enabled or not), refusing to let admins lock themselves out.
async fn on_user<T: Send + 'static>(
    st: &Shared,
    admin: User,
    username: String,
    f: impl FnOnce(&Connection, &[u8; 32], &User, &User) -> AppResult<T> + Send + 'static,
) -> AppResult<T> {
    let audit_key = st.audit_key.clone();
    let unassigned = st.unassigned;
    st.db(move |c| {
        let user = accounts::find_any_user(c, &username)?
            .filter(|u| u.id != unassigned)
            .ok_or(AppError::NotFound)?;
        f(c, &audit_key, &admin, &user)
    })
    .await
}

fn not_self(admin: &User, user: &User) -> AppResult<()> {
    if admin.id == user.id {
        return Err(AppError::Conflict(
            "you cannot do that to your own account; ask another admin".into(),
        ));
    }
    Ok(())
}

async fn disable(
    State(st): State<Shared>,
    Admin(admin): Admin,
    Path(username): Path<String>,
) -> AppResult<Json<serde_json::Value>> {
    on_user(&st, admin, username, |c, key, admin, user| {
        not_self(admin, user)?;
        let tx = rusqlite::Transaction::new_unchecked(c, rusqlite::TransactionBehavior::Immediate)?;
        accounts::disable_in(&tx, user.id)?;
        crate::store::audit::append(&tx, key, &admin.audit_id, "user-disable", &user.audit_id)?;
        tx.commit()?;
        Ok(())
    })
    .await?;
    Ok(Json(serde_json::json!({ "disabled": true })))
}

async fn enable(
    State(st): State<Shared>,
    Admin(admin): Admin,
    Path(username): Path<String>,
) -> AppResult<Json<serde_json::Value>> {
    on_user(&st, admin, username, |c, key, admin, user| {
        if accounts::is_leaving(c, user.id)? {
            return Err(AppError::Conflict(
                "this person is marked as leaving: cancel that first".into(),
            ));
        }
        c.execute("UPDATE users SET disabled = 0 WHERE id = ?1", [user.id])?;
        crate::store::audit::record(c, key, &admin.audit_id, "user-enable", &user.audit_id)?;
        Ok(())
    })
    .await?;
    Ok(Json(serde_json::json!({ "disabled": false })))
}

#[derive(Deserialize)]
struct OffboardForm {
    /// Days of grace; the policy's when left out; 0 deletes at the next sweep.
    #[serde(default)]
    grace_days: Option<u32>,
}

async fn offboard(
    State(st): State<Shared>,
    Admin(admin): Admin,
    Path(username): Path<String>,
    Json(form): Json<OffboardForm>,
) -> AppResult<Json<serde_json::Value>> {
    let username2 = username.clone();
    let user_id = st
        .db(move |c| {
            Ok(accounts::find_any_user(c, &username2)?
                .ok_or(AppError::NotFound)?
                .id)
        })
        .await?;
    let fp = st.vault(move |v| Ok(v.fingerprint(user_id)?)).await?;
    let at = on_user(&st, admin, username, move |c, key, admin, user| {
        not_self(admin, user)?;
        let grace = match form.grace_days {
            Some(g) if g > 90 => {
                return Err(AppError::BadRequest(
                    "grace_days must be between 0 and 90".into(),
                ))
            }
            Some(g) => g,
            None => retention::load_policy(c)?.grace_days,
        };
        Ok(offboarding::mark_leaving(
            c,
            key,
            &admin.audit_id,
            user,
            fp,
            grace,
            clock::now(),
        )?)
    })
    .await?;
    Ok(Json(serde_json::json!({ "delete_after": at })))
}

async fn cancel_offboard(
    State(st): State<Shared>,
    Admin(admin): Admin,
    Path(username): Path<String>,
) -> AppResult<Json<serde_json::Value>> {
    on_user(&st, admin, username, |c, key, admin, user| {
        Ok(offboarding::cancel(c, key, &admin.audit_id, user)?)
    })
    .await?;
    Ok(Json(serde_json::json!({ "cancelled": true })))
}

async fn policy(State(st): State<Shared>, _: Admin) -> AppResult<Json<Policy>> {
    Ok(Json(st.db(|c| Ok(retention::load_policy(c)?)).await?))
}

async fn set_policy(
    State(st): State<Shared>,
    Admin(admin): Admin,
    Json(p): Json<Policy>,
) -> AppResult<Json<Policy>> {
    p.validate().map_err(AppError::BadRequest)?;
    let audit_key = st.audit_key.clone();
    st.db(move |c| {
        retention::save_policy(c, &p)?;
        let text = serde_json::to_string(&p).map_err(|e| AppError::Internal(e.into()))?;
        crate::store::audit::record(c, &audit_key, &admin.audit_id, "retention-policy", &text)?;
        Ok(())
    })
    .await?;
    Ok(Json(p))
}

#[derive(Serialize)]
struct RecordingRow {
    id: String,
    owner: String,
    device: String,
    created_at: i64,
    delete_after: Option<i64>,
    hold_reason: Option<String>,
}

async fn recordings(State(st): State<Shared>, _: Admin) -> AppResult<Json<Vec<RecordingRow>>> {
    let list = st
        .db(|c| {
            let policy = retention::load_policy(c)?;
            let mut stmt = c.prepare(
                "SELECT r.id, u.display_name, d.name, r.created_at, r.hold_reason
                 FROM recordings r JOIN users u ON u.id = r.owner_id JOIN devices d ON d.id = r.device_id
                 ORDER BY r.created_at DESC",
            )?;
            let rows: Vec<(String, String, String, i64, Option<String>)> = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
                .collect::<Result<_, _>>()?;
            rows.into_iter()
                .map(|(id, owner, device, created_at, hold_reason)| {
                    let row = retention::row(c, &id)?;
                    Ok(RecordingRow {
                        delete_after: crate::domain::retention::delete_after(&policy, &row).map(|(at, _)| at),
                        id,
                        owner,
                        device,
                        created_at,
                        hold_reason,
                    })
                })
                .collect::<AppResult<Vec<_>>>()
        })
        .await?;
    Ok(Json(list))
}

#[derive(Deserialize)]
struct HoldForm {
    reason: String,
}

async fn set_hold(st: Shared, admin: User, id: String, reason: Option<String>) -> AppResult<()> {
    let audit_key = st.audit_key.clone();
    let found = st
        .db(move |c| {
            Ok(retention::set_hold(
                c,
                &audit_key,
                &admin.audit_id,
                &id,
                reason.as_deref(),
            )?)
        })
        .await?;
    if !found {
        return Err(AppError::NotFound);
    }
    Ok(())
}

async fn hold(
    State(st): State<Shared>,
    Admin(admin): Admin,
    Path(id): Path<String>,
    Json(form): Json<HoldForm>,
) -> AppResult<Json<serde_json::Value>> {
    let reason = form.reason.trim().to_string();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(AppError::BadRequest(
            "give a reason for the hold (up to 500 characters)".into(),
        ));
    }
    set_hold(st, admin, id, Some(reason)).await?;
    Ok(Json(serde_json::json!({ "held": true })))
}

async fn release(
    State(st): State<Shared>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> AppResult<Json<serde_json::Value>> {
    set_hold(st, admin, id, None).await?;
    Ok(Json(serde_json::json!({ "held": false })))
}

#[derive(Deserialize)]
struct RosterForm {
    /// The MIS staff export, as text.
    csv: String,
    #[serde(default)]
    apply: bool,
    #[serde(default)]
    skip_bad_lines: bool,
}

/// Roster import from the admin page: without `apply` it only says what would change (and which
/// lines are bad); with it, it makes the changes. A file with bad lines changes nothing unless
/// `skip_bad_lines` is set. People missing from the roster are only listed.
async fn roster_import(
    State(st): State<Shared>,
    Admin(admin): Admin,
    Json(form): Json<RosterForm>,
) -> AppResult<Json<serde_json::Value>> {
    let (rows, errors) = crate::store::roster::parse(&form.csv);
    let errors_len = errors.len();
    let key = st.audit_key.clone();
    let (plan, created) = st
        .db(move |c| {
            let plan = crate::store::roster::plan(c, &rows)?;
            let bad = errors_len + plan.clashes.len();
            if !form.apply {
                return Ok((plan, None));
            }
            if bad > 0 && !form.skip_bad_lines {
                return Err(AppError::Unprocessable(format!(
                    "{bad} bad line(s): nothing was changed. Fix the file, or choose to skip the bad lines"
                )));
            }
            let created = crate::store::roster::apply(c, &key, &admin.audit_id, &plan)
                .map_err(|e| AppError::Conflict(format!("{e:#}")))?;
            Ok((plan, Some(created)))
        })
        .await?;
    let applied = created.is_some();
    for (id, teacher) in created.unwrap_or_default() {
        if teacher {
            st.vault(move |v| Ok(v.create_key(id, clock::now())?))
                .await?;
        }
    }
    Ok(Json(serde_json::json!({
        "errors": errors,
        "plan": plan,
        "applied": applied,
    })))
}

async fn devices_list(
    State(st): State<Shared>,
    _: Admin,
) -> AppResult<Json<Vec<devices::DeviceInfo>>> {
    Ok(Json(st.db(|c| Ok(devices::list(c)?)).await?))
}

#[derive(Deserialize)]
struct NewDevice {
    name: String,
}

/// A one-time code that enrols a device (new, or one enrolling again), valid for 10 minutes.
async fn enrollment_code(
    State(st): State<Shared>,
    Admin(admin): Admin,
    Json(req): Json<NewDevice>,
) -> AppResult<Json<serde_json::Value>> {
    let now = clock::now();
    let name = req.name.clone();
    let key = st.audit_key.clone();
    let code = st
        .db(move |c| {
            let tx =
                rusqlite::Transaction::new_unchecked(c, rusqlite::TransactionBehavior::Immediate)?;
            let code = devices::create_code(&tx, &name, now)?;
            crate::store::audit::append(&tx, &key, &admin.audit_id, "device-enroll-code", &name)?;
            tx.commit()?;
            Ok(code)
        })
        .await?;
    Ok(Json(serde_json::json!({
        "device": req.name,
        "code": &*code,
        "expires_at": now + devices::CODE_SECONDS,
        "ca_sha256": st.ca.fingerprint,
    })))
}

async fn revoke_device(
    State(st): State<Shared>,
    Admin(admin): Admin,
    Path(name): Path<String>,
) -> AppResult<Json<serde_json::Value>> {
    let key = st.audit_key.clone();
    st.db(move |c| {
        if !devices::revoke(c, &name)? {
            return Err(AppError::NotFound);
        }
        crate::store::audit::record(c, &key, &admin.audit_id, "device-revoke", &name)?;
        Ok(())
    })
    .await?;
    Ok(Json(serde_json::json!({ "revoked": true })))
}

async fn receipts(State(st): State<Shared>, _: Admin) -> AppResult<Json<Vec<serde_json::Value>>> {
    let list = st
        .db(|c| {
            let mut stmt =
                c.prepare("SELECT receipt FROM deletion_receipts ORDER BY created_at DESC")?;
            let texts: Vec<String> = stmt
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            texts
                .iter()
                .map(|t| serde_json::from_str(t).map_err(|e| AppError::Internal(e.into())))
                .collect::<AppResult<Vec<_>>>()
        })
        .await?;
    Ok(Json(list))
}

#[derive(Serialize)]
struct AuditRow {
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
fn audit_rows(
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
const AUDIT_PAGE: i64 = 50;

#[derive(Deserialize)]
struct AuditQuery {
    /// From 0, newest first.
    #[serde(default)]
    page: u32,
    /// Only entries whose person, action or target contains this.
    #[serde(default)]
    q: String,
}

async fn audit_json(
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
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    format!("\"{}\"", s.replace('"', "\"\""))
}

async fn audit_csv(State(st): State<Shared>, Admin(admin): Admin) -> AppResult<Response> {
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
