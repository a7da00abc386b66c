//! Groups of coaches (a department's coaches, the CPD team): admins make them and say who is in
//! them; a teacher shares a lesson with a group as with one coach. Whoever is in the group, and
//! holds the coach role, may then watch and comment, for as long as both the share and their
//! membership last: leaving the group, or the group being removed, ends their access at once.
//!
//! A coach who joins a group after a lesson was shared with it does not see that lesson until its
//! teacher shares it again (the recording page lists them as "joined after you shared"): the
//! teacher chose the people who were in the group, and an admin who adds someone to a group must
//! not widen what that teacher shared (see docs/decisions.md).

use super::Route;
use crate::domain::people::Role;
use crate::http::access;
use crate::http::error::{AppError, AppResult};
use crate::http::state::Admin;
use crate::http::state::{CurrentUser, Shared};
use crate::store::accounts;
use crate::store::groups::{self, Group, Member};
use axum::extract::{Path, State};
use axum::routing::{delete, get, post, put};
use axum::Json;
use rusqlite::Connection;
use serde::Deserialize;

pub fn routes() -> Vec<Route> {
    vec![
        ("GET", "/api/groups", get(list)),
        ("POST", "/api/admin/groups", post(create)),
        ("DELETE", "/api/admin/groups/{group}", delete(remove)),
        (
            "PUT",
            "/api/admin/groups/{group}/members/{username}",
            put(add_member),
        ),
        (
            "DELETE",
            "/api/admin/groups/{group}/members/{username}",
            delete(remove_member),
        ),
        ("POST", "/api/recordings/{id}/group-shares", post(share)),
        (
            "DELETE",
            "/api/recordings/{id}/group-shares/{group}",
            delete(unshare),
        ),
    ]
}

/// The groups, for a teacher's share menu and the admin page.
async fn list(
    State(st): State<Shared>,
    CurrentUser(user): CurrentUser,
) -> AppResult<Json<Vec<Group>>> {
    if !user.has(Role::Teacher) && !user.has(Role::Admin) {
        return Err(AppError::Forbidden(
            "only teachers (to share) and admins see the groups",
        ));
    }
    Ok(Json(st.db(|c| Ok(groups::groups(c, None)?)).await?))
}

/// Runs a change in the database and audits it, as `actor`, with the (action, target) it gives,
/// in one transaction: no change without its audit entry.
async fn audited(
    st: &Shared,
    actor: String,
    change: impl FnOnce(&Connection) -> AppResult<(&'static str, String)> + Send + 'static,
) -> AppResult<()> {
    let key = st.audit_key.clone();
    st.db(move |c| {
        let tx = rusqlite::Transaction::new_unchecked(c, rusqlite::TransactionBehavior::Immediate)?;
        let (action, target) = change(&tx)?;
        crate::store::audit::append(&tx, &key, &actor, action, &target)?;
        tx.commit()?;
        Ok(())
    })
    .await
}

fn group_id(c: &Connection, id: &str) -> AppResult<(i64, String)> {
    let id: i64 = id.parse().map_err(|_| AppError::NotFound)?;
    groups::find(c, id)?.ok_or(AppError::NotFound)
}

#[derive(Deserialize)]
struct NewGroup {
    name: String,
}

async fn create(
    State(st): State<Shared>,
    Admin(admin): Admin,
    Json(new): Json<NewGroup>,
) -> AppResult<Json<serde_json::Value>> {
    let name = new.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 80 || name.chars().any(char::is_control) {
        return Err(AppError::BadRequest(
            "a group's name is 1 to 80 characters, on one line".into(),
        ));
    }
    let key = st.audit_key.clone();
    let id = st
        .db(move |c| {
            let id = groups::create(c, &name)?.ok_or_else(|| {
                AppError::Conflict(format!("there is already a group called {name:?}"))
            })?;
            crate::store::audit::record(c, &key, &admin.audit_id, "group-create", &name)?;
            Ok(id)
        })
        .await?;
    Ok(Json(serde_json::json!({ "id": id })))
}

/// Removes a group; the lessons shared with it are no longer shared with its members (unless
/// shared with them one by one).
async fn remove(
    State(st): State<Shared>,
    Admin(admin): Admin,
    Path(group): Path<String>,
) -> AppResult<Json<serde_json::Value>> {
    audited(&st, admin.audit_id, move |c| {
        let (id, name) = group_id(c, &group)?;
        groups::remove(c, id)?;
        Ok(("group-delete", name))
    })
    .await?;
    Ok(Json(serde_json::json!({ "removed": true })))
}

async fn add_member(
    State(st): State<Shared>,
    Admin(admin): Admin,
    Path((group, username)): Path<(String, String)>,
) -> AppResult<Json<serde_json::Value>> {
    audited(&st, admin.audit_id, move |c| {
        let (id, name) = group_id(c, &group)?;
        let coach = accounts::find_user(c, &username)?
            .filter(|u| u.has(Role::Coach))
            .ok_or_else(|| {
                AppError::BadRequest(format!(
                    "{username:?} is not a coach at this school; give them the coach role first"
                ))
            })?;
        groups::add_member(c, id, coach.id)?;
        Ok(("group-add", format!("{name} {}", coach.audit_id)))
    })
    .await?;
    Ok(Json(serde_json::json!({ "member": true })))
}

async fn remove_member(
    State(st): State<Shared>,
    Admin(admin): Admin,
    Path((group, username)): Path<(String, String)>,
) -> AppResult<Json<serde_json::Value>> {
    audited(&st, admin.audit_id, move |c| {
        let (id, name) = group_id(c, &group)?;
        let member = groups::remove_member(c, id, &username)?.ok_or(AppError::NotFound)?;
        Ok(("group-remove", format!("{name} {}", member.1)))
    })
    .await?;
    Ok(Json(serde_json::json!({ "member": false })))
}

#[derive(Deserialize)]
struct NewShare {
    group: i64,
    /// The usernames of the members the teacher was shown. If the group is not exactly these
    /// people any more (an admin changed it meanwhile), nothing is shared: 409 and the list now.
    members: Vec<String>,
}

async fn share(
    State(st): State<Shared>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    Json(new): Json<NewShare>,
) -> AppResult<Json<serde_json::Value>> {
    let rec = super::rec_id(&id)?;
    audited(&st, user.audit_id.clone(), move |c| {
        access::owner_only(c, &user, &rec)?;
        let (group, name) = group_id(c, &new.group.to_string())
            .map_err(|_| AppError::BadRequest("there is no such group (any more)".into()))?;
        let now: Vec<Member> = groups::groups(c, None)?
            .into_iter()
            .find(|g| g.id == group)
            .map(|g| g.members)
            .unwrap_or_default();
        let mut seen = new.members.clone();
        seen.sort();
        seen.dedup();
        let mut current: Vec<&str> = now.iter().map(|m| m.username.as_str()).collect();
        current.sort();
        if seen != current {
            let names: Vec<&str> = now.iter().map(|m| m.display_name.as_str()).collect();
            return Err(AppError::Conflict(format!(
                "{name} changed since you looked; nothing was shared. It now has {}. Check who is in it, then share again.",
                if names.is_empty() {
                    "nobody in it".to_string()
                } else {
                    names.join(", ")
                }
            )));
        }
        // Sharing again lets in whoever joined the group since (see the module's notes).
        groups::share(c, &rec, group)?;
        Ok(("share", format!("{rec} group {name}")))
    })
    .await?;
    Ok(Json(serde_json::json!({ "shared": true })))
}

async fn unshare(
    State(st): State<Shared>,
    CurrentUser(user): CurrentUser,
    Path((id, group)): Path<(String, String)>,
) -> AppResult<Json<serde_json::Value>> {
    let rec = super::rec_id(&id)?;
    audited(&st, user.audit_id.clone(), move |c| {
        access::owner_only(c, &user, &rec)?;
        let (group, name) = group_id(c, &group)?;
        if !groups::unshare(c, &rec, group)? {
            return Err(AppError::NotFound);
        }
        Ok(("unshare", format!("{rec} group {name}")))
    })
    .await?;
    Ok(Json(serde_json::json!({ "shared": false })))
}
