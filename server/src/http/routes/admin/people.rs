//! People: the list, adding someone (with an invitation), invitations, two-step sign-in resets,
//! disabling and enabling, a teacher leaving, and the roster import.

use crate::domain::clock;
use crate::domain::people::{Role, User, UserId};
use crate::http::error::{AppError, AppResult};
use crate::http::state::{Admin, Shared};
use crate::ops::offboarding;
use crate::store::accounts;
use crate::store::retention;
use axum::extract::{Path, State};
use axum::http::header;
use axum::Json;
use rusqlite::Connection;
use serde::Deserialize;

pub(super) async fn users(
    State(st): State<Shared>,
    _: Admin,
) -> AppResult<Json<Vec<accounts::AccountRow>>> {
    let unassigned = st.unassigned;
    Ok(Json(
        st.db(move |c| Ok(accounts::everyone_but(c, unassigned)?))
            .await?,
    ))
}

#[derive(Deserialize)]
pub(super) struct NewUser {
    username: String,
    display_name: String,
    roles: Vec<String>,
    /// Refused when not empty: an admin never chooses a person's password (see
    /// docs/decisions.md). The answer holds an invitation link instead.
    #[serde(default)]
    password: Option<zeroize::Zeroizing<String>>,
}

/// The link a person opens to choose their password: this server as the admin reached it.
pub(super) fn invite_url(headers: &axum::http::HeaderMap, token: &str) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("https://{host}/#/invite/{token}")
}

/// Makes an invitation for `user_id` and audits it; returns its link and expiry.
pub(super) async fn invite_for(
    st: &Shared,
    headers: &axum::http::HeaderMap,
    admin: &User,
    user_id: UserId,
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
pub(super) async fn invite(
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

pub(super) async fn add_user(
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
    let hash = super::super::web::hash_new_password(accounts::new_token().0).await?;
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
pub(super) async fn reset_second_factor(
    State(st): State<Shared>,
    Admin(admin): Admin,
    Path(username): Path<String>,
) -> AppResult<Json<serde_json::Value>> {
    let user = on_user(&st, admin, username, |c, key, admin, user| {
        not_self(admin, user)?;
        accounts::end_all_sessions(c, user.id)?;
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
pub(super) async fn on_user<T: Send + 'static>(
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

pub(super) fn not_self(admin: &User, user: &User) -> AppResult<()> {
    if admin.id == user.id {
        return Err(AppError::Conflict(
            "you cannot do that to your own account; ask another admin".into(),
        ));
    }
    Ok(())
}

pub(super) async fn disable(
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

pub(super) async fn enable(
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
        accounts::enable_in(c, user.id)?;
        crate::store::audit::record(c, key, &admin.audit_id, "user-enable", &user.audit_id)?;
        Ok(())
    })
    .await?;
    Ok(Json(serde_json::json!({ "disabled": false })))
}

#[derive(Deserialize)]
pub(super) struct OffboardForm {
    /// Days of grace; the policy's when left out; 0 deletes at the next sweep.
    #[serde(default)]
    grace_days: Option<u32>,
}

pub(super) async fn offboard(
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

pub(super) async fn cancel_offboard(
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

#[derive(Deserialize)]
pub(super) struct RosterForm {
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
pub(super) async fn roster_import(
    State(st): State<Shared>,
    Admin(admin): Admin,
    Json(form): Json<RosterForm>,
) -> AppResult<Json<serde_json::Value>> {
    let (rows, errors) = crate::domain::roster::parse(&form.csv);
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
