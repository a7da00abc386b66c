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
use crate::domain::clock;
use crate::domain::people::Role;
use crate::http::access;
use crate::http::error::{AppError, AppResult};
use crate::http::state::Admin;
use crate::http::state::{CurrentUser, Shared};
use crate::store::accounts::{self};
use axum::extract::{Path, State};
use axum::routing::{delete, get, post, put};
use axum::Json;
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

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

#[derive(Serialize)]
pub struct Group {
    pub id: i64,
    pub name: String,
    /// Its members with an enabled account.
    pub members: Vec<Member>,
}

#[derive(Serialize)]
pub struct Member {
    pub username: String,
    pub display_name: String,
    /// For a group a lesson is shared with: whether they were in it when it was shared (and so
    /// may watch). Always true in the list of groups.
    pub can_watch: bool,
}

/// Every group with its members, or only those shared with `rec`.
pub fn groups(c: &Connection, rec: Option<&str>) -> rusqlite::Result<Vec<Group>> {
    let mut stmt = c.prepare(
        "SELECT g.id, g.name FROM coach_groups g
         WHERE ?1 IS NULL OR g.id IN (SELECT group_id FROM group_shares WHERE recording_id = ?1)
         ORDER BY g.name",
    )?;
    let heads: Vec<(i64, String)> = stmt
        .query_map([rec], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut members = c.prepare(&format!(
        "SELECT u.username, u.display_name, u.roles,
                ?2 IS NULL OR EXISTS (SELECT 1 FROM group_shares g
                                      WHERE g.recording_id = ?2 AND g.group_id = m.group_id
                                        AND {})
         FROM coach_group_members m
         JOIN users u ON u.id = m.user_id WHERE m.group_id = ?1 AND u.disabled = 0
         ORDER BY u.display_name",
        crate::store::access::MEMBER_WHEN_SHARED
    ))?;
    heads
        .into_iter()
        .map(|(id, name)| {
            Ok(Group {
                id,
                name,
                // Only those who may watch through the group: enabled, and still coaches.
                members: members
                    .query_map(params![id, rec], |r| {
                        let roles: String = r.get(2)?;
                        let person = Member {
                            username: r.get(0)?,
                            display_name: r.get(1)?,
                            can_watch: r.get(3)?,
                        };
                        Ok(roles.split(',').any(|x| x == "coach").then_some(person))
                    })?
                    .filter_map(Result::transpose)
                    .collect::<Result<_, _>>()?,
            })
        })
        .collect()
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
    Ok(Json(st.db(|c| Ok(groups(c, None)?)).await?))
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
    c.query_row(
        "SELECT id, name FROM coach_groups WHERE id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()?
    .ok_or(AppError::NotFound)
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
            let added = c.execute(
                "INSERT OR IGNORE INTO coach_groups (name, created_at) VALUES (?1, ?2)",
                params![name, clock::now()],
            )?;
            if added == 0 {
                return Err(AppError::Conflict(format!(
                    "there is already a group called {name:?}"
                )));
            }
            let id = c.last_insert_rowid();
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
        c.execute("DELETE FROM coach_groups WHERE id = ?1", [id])?;
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
        c.execute(
            &format!(
                "INSERT OR IGNORE INTO coach_group_members (group_id, user_id, added_seq) VALUES (?1, ?2, {})",
                crate::store::access::NEXT_SEQ
            ),
            params![id, coach.id],
        )?;
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
        let member: (i64, String) = c
            .query_row(
                "SELECT u.id, u.audit_id FROM coach_group_members m JOIN users u ON u.id = m.user_id
                 WHERE m.group_id = ?1 AND u.username = ?2",
                params![id, username],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?
            .ok_or(AppError::NotFound)?;
        c.execute(
            "DELETE FROM coach_group_members WHERE group_id = ?1 AND user_id = ?2",
            params![id, member.0],
        )?;
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
        let now: Vec<Member> = groups(c, None)?
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
        c.execute(
            // Sharing again lets in whoever joined the group since (see the module's notes).
            &format!(
                "INSERT INTO group_shares (recording_id, group_id, created_at, shared_seq) VALUES (?1, ?2, ?3, {})
                 ON CONFLICT (recording_id, group_id) DO UPDATE
                     SET created_at = excluded.created_at, shared_seq = excluded.shared_seq",
                crate::store::access::NEXT_SEQ
            ),
            params![rec, group, clock::now()],
        )?;
        c.execute(
            "UPDATE recordings SET ever_shared = 1 WHERE id = ?1",
            [&rec],
        )?;
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
        let removed = c.execute(
            "DELETE FROM group_shares WHERE recording_id = ?1 AND group_id = ?2",
            params![rec, group],
        )?;
        if removed == 0 {
            return Err(AppError::NotFound);
        }
        Ok(("unshare", format!("{rec} group {name}")))
    })
    .await?;
    Ok(Json(serde_json::json!({ "shared": false })))
}
