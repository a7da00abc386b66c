//! Reviewing a lesson: the recording page's data, sharing with coaches, timestamped comments and
//! replies, the owner's private reflection notes, "who watched this", and deleting a recording.
//! Who may do what is decided by [`crate::domain::access`].

use super::rec_id;
use super::Route;
use crate::domain::access::Access;
use crate::domain::clock;
use crate::domain::people::Role;
use crate::http::access;
use crate::http::error::{AppError, AppResult};
use crate::http::state::{CurrentUser, Shared};
use crate::store::accounts::{self};
use crate::store::recordings::summary;
use axum::extract::{Path, State};
use axum::routing::{delete, get, post};
use axum::Json;
use lessonlens_proto::wire::RecordingSummary;
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

pub fn routes() -> Vec<Route> {
    vec![
        ("GET", "/api/shared", get(shared_with_me)),
        ("GET", "/api/coaches", get(coaches)),
        ("GET", "/api/tags", get(tags)),
        ("GET", "/api/recordings/{id}", get(detail)),
        ("DELETE", "/api/recordings/{id}", delete(delete_recording)),
        ("GET", "/api/recordings/{id}/comments", get(comments)),
        ("POST", "/api/recordings/{id}/comments", post(add_comment)),
        (
            "DELETE",
            "/api/recordings/{id}/comments/{comment}",
            delete(delete_comment),
        ),
        ("POST", "/api/recordings/{id}/shares", post(add_share)),
        (
            "DELETE",
            "/api/recordings/{id}/shares/{username}",
            delete(remove_share),
        ),
        ("GET", "/api/recordings/{id}/views", get(views)),
    ]
}

#[derive(Serialize)]
pub struct Person {
    pub username: String,
    pub display_name: String,
}

fn shared_with(c: &Connection, rec: &str) -> rusqlite::Result<Vec<Person>> {
    let mut stmt = c.prepare(
        "SELECT u.username, u.display_name FROM shares s JOIN users u ON u.id = s.coach_id
         WHERE s.recording_id = ?1 ORDER BY u.display_name",
    )?;
    let people = stmt
        .query_map([rec], |r| {
            Ok(Person {
                username: r.get(0)?,
                display_name: r.get(1)?,
            })
        })?
        .collect();
    people
}

/// A recording as a library lists it.
#[derive(serde::Serialize)]
pub struct LibraryItem {
    #[serde(flatten)]
    pub summary: RecordingSummary,
    /// The teacher whose lesson it is (display name).
    pub owner: String,
    pub is_owner: bool,
    /// The coaches it is shared with (display names); empty for anyone but the owner.
    pub shared_with: Vec<String>,
    /// When the retention policy deletes it (Unix time); `None` while an admin holds it.
    pub delete_after: Option<i64>,
    pub held: bool,
}

/// A library entry: the summary, whose lesson it is and who it is shared with (owner only).
pub fn library_item(c: &Connection, rec: &str, access: Access) -> rusqlite::Result<LibraryItem> {
    let owner: String = c.query_row(
        "SELECT u.display_name FROM recordings r JOIN users u ON u.id = r.owner_id WHERE r.id = ?1",
        [rec],
        |r| r.get(0),
    )?;
    let shared_with = match access {
        Access::Owner => shared_with(c, rec)?
            .into_iter()
            .map(|p| p.display_name)
            .chain(
                super::groups::groups(c, Some(rec))?
                    .into_iter()
                    .map(|g| format!("{} (group)", g.name)),
            )
            .collect(),
        Access::SharedCoach => Vec::new(),
    };
    let policy = crate::store::retention::load_policy(c)?;
    let row = crate::store::retention::row(c, rec)?;
    Ok(LibraryItem {
        summary: summary(c, rec)?,
        owner,
        is_owner: access.is_owner(),
        shared_with,
        delete_after: crate::domain::retention::delete_after(&policy, &row).map(|(at, _)| at),
        held: row.held,
    })
}

async fn shared_with_me(
    State(st): State<Shared>,
    CurrentUser(user): CurrentUser,
) -> AppResult<Json<Vec<LibraryItem>>> {
    let list = st
        .db(move |c| {
            if !user.has(Role::Coach) {
                return Ok(Vec::new());
            }
            let mut stmt = c.prepare(&format!(
                "SELECT r.id FROM recordings r JOIN users o ON o.id = r.owner_id
                 WHERE o.disabled = 0 AND r.id IN (
                     SELECT recording_id FROM shares WHERE coach_id = ?1
                     UNION SELECT g.recording_id FROM group_shares g
                           JOIN coach_group_members m ON m.group_id = g.group_id
                           WHERE m.user_id = ?1 AND {})
                 ORDER BY r.created_at DESC",
                crate::store::access::MEMBER_WHEN_SHARED
            ))?;
            let ids: Vec<String> = stmt
                .query_map([user.id], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            Ok(ids
                .iter()
                .map(|id| library_item(c, id, Access::SharedCoach))
                .collect::<Result<Vec<_>, _>>()?)
        })
        .await?;
    Ok(Json(list))
}

/// The coaches a teacher can share with.
async fn coaches(
    State(st): State<Shared>,
    CurrentUser(user): CurrentUser,
) -> AppResult<Json<Vec<Person>>> {
    if !user.has(Role::Teacher) {
        return Err(AppError::Forbidden("only teachers share lessons"));
    }
    let list = st
        .db(move |c| {
            let mut stmt = c.prepare(
                "SELECT username, display_name, roles FROM users WHERE disabled = 0 AND id != ?1
                 ORDER BY display_name",
            )?;
            let rows: Vec<(String, String, String)> = stmt
                .query_map([user.id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<_, _>>()?;
            Ok(rows
                .into_iter()
                .filter(|(_, _, roles)| roles.split(',').any(|r| r == Role::Coach.as_str()))
                .map(|(username, display_name, _)| Person {
                    username,
                    display_name,
                })
                .collect())
        })
        .await?;
    Ok(Json(list))
}

/// The school's comment tags (its framework for lesson observation).
async fn tags(
    State(st): State<Shared>,
    CurrentUser(_): CurrentUser,
) -> AppResult<Json<Vec<String>>> {
    Ok(Json(st.db(|c| Ok(all_tags(c)?)).await?))
}

fn all_tags(c: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = c.prepare("SELECT name FROM tags ORDER BY name")?;
    let tags = stmt.query_map([], |r| r.get(0))?.collect();
    tags
}

#[derive(Serialize)]
struct Detail {
    #[serde(flatten)]
    item: LibraryItem,
    shares: Vec<Person>,
    /// The groups of coaches it is shared with (owner only).
    group_shares: Vec<super::groups::Group>,
    /// Privacy pauses and lost segments, for the timeline.
    gaps: Vec<super::playback::Gap>,
    /// How many MP4 files the owner's download is: one per part between privacy pauses.
    download_parts: usize,
}

async fn detail(
    State(st): State<Shared>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> AppResult<Json<Detail>> {
    let rec = rec_id(&id)?;
    let d = st
        .db(move |c| {
            let access = access::recording(c, &user, &rec)?;
            let (shares, group_shares) = match access {
                Access::Owner => (shared_with(c, &rec)?, super::groups::groups(c, Some(&rec))?),
                Access::SharedCoach => (Vec::new(), Vec::new()),
            };
            let item = library_item(c, &rec, access)?;
            let end = item.summary.missing.last().map(|[_, last]| last + 1);
            Ok(Detail {
                gaps: super::playback::gaps(c, item.summary.id, end)?,
                download_parts: super::playback::download_parts(c, item.summary.id)?,
                item,
                shares,
                group_shares,
            })
        })
        .await?;
    Ok(Json(d))
}

#[derive(Serialize)]
struct Comment {
    id: i64,
    parent_id: Option<i64>,
    at_seconds: f64,
    body: String,
    tag: Option<String>,
    /// The owner's reflection: only the owner ever receives these.
    private: bool,
    author: String,
    mine: bool,
    created_at: i64,
}

async fn comments(
    State(st): State<Shared>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> AppResult<Json<Vec<Comment>>> {
    let rec = rec_id(&id)?;
    let list = st
        .db(move |c| {
            let access = access::recording(c, &user, &rec)?;
            let mut stmt = c.prepare(
                "SELECT c.id, c.parent_id, c.at_ms, c.body, c.tag, c.private, u.display_name, c.author_id, c.created_at
                 FROM comments c JOIN users u ON u.id = c.author_id
                 WHERE c.recording_id = ?1 AND (c.private = 0 OR ?2)
                 ORDER BY c.at_ms, c.id",
            )?;
            let list = stmt
                .query_map(params![rec, access.is_owner()], |r| {
                    Ok(Comment {
                        id: r.get(0)?,
                        parent_id: r.get(1)?,
                        at_seconds: r.get::<_, i64>(2)? as f64 / 1000.0,
                        body: r.get(3)?,
                        tag: r.get(4)?,
                        private: r.get(5)?,
                        author: r.get(6)?,
                        mine: r.get::<_, i64>(7)? == user.id,
                        created_at: r.get(8)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(list)
        })
        .await?;
    Ok(Json(list))
}

#[derive(Deserialize)]
struct NewComment {
    at_seconds: f64,
    body: String,
    #[serde(default)]
    tag: Option<String>,
    #[serde(default)]
    parent_id: Option<i64>,
    #[serde(default)]
    private: bool,
}

const MAX_COMMENT_CHARS: usize = 4000;

async fn add_comment(
    State(st): State<Shared>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    Json(new): Json<NewComment>,
) -> AppResult<Json<serde_json::Value>> {
    let rec = rec_id(&id)?;
    let body = new.body.trim().to_string();
    if body.is_empty() || body.chars().count() > MAX_COMMENT_CHARS {
        return Err(AppError::BadRequest(format!(
            "a comment is 1 to {MAX_COMMENT_CHARS} characters"
        )));
    }
    if !new.at_seconds.is_finite() || new.at_seconds < 0.0 || new.at_seconds > 86_400.0 {
        return Err(AppError::BadRequest(
            "at_seconds must be a time in the lesson, in seconds".into(),
        ));
    }
    let tag = new.tag.filter(|t| !t.is_empty());
    let id = st
        .db(move |c| {
            let access = access::recording(c, &user, &rec)?;
            if new.private && !access.is_owner() {
                return Err(AppError::Forbidden(
                    "reflection notes are the teacher's own",
                ));
            }
            if let Some(t) = &tag {
                if !all_tags(c)?.contains(t) {
                    return Err(AppError::BadRequest(format!(
                        "{t:?} is not one of the school's tags"
                    )));
                }
            }
            let mut at_ms = (new.at_seconds * 1000.0).round() as i64;
            if let Some(parent) = new.parent_id {
                // A reply sits under a visible comment of the same recording, at its time.
                let parent_at: Option<i64> = c
                    .query_row(
                        "SELECT at_ms FROM comments WHERE id = ?1 AND recording_id = ?2 AND private = 0 AND parent_id IS NULL",
                        params![parent, rec],
                        |r| r.get(0),
                    )
                    .optional()?;
                at_ms = parent_at.ok_or_else(|| {
                    AppError::BadRequest("replies go under a shared comment of this lesson".into())
                })?;
                if new.private {
                    return Err(AppError::BadRequest(
                        "a reflection note cannot be a reply".into(),
                    ));
                }
            }
            c.execute(
                "INSERT INTO comments (recording_id, author_id, parent_id, at_ms, body, tag, private, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![rec, user.id, new.parent_id, at_ms, body, tag, new.private, clock::now()],
            )?;
            Ok(c.last_insert_rowid())
        })
        .await?;
    Ok(Json(serde_json::json!({ "id": id })))
}

async fn delete_comment(
    State(st): State<Shared>,
    CurrentUser(user): CurrentUser,
    Path((id, comment)): Path<(String, i64)>,
) -> AppResult<Json<serde_json::Value>> {
    let rec = rec_id(&id)?;
    st.db(move |c| {
        access::recording(c, &user, &rec)?;
        let n = c.execute(
            "DELETE FROM comments WHERE id = ?1 AND recording_id = ?2 AND author_id = ?3",
            params![comment, rec, user.id],
        )?;
        if n == 0 {
            return Err(AppError::NotFound);
        }
        crate::store::db::forget(c)?;
        Ok(())
    })
    .await?;
    Ok(Json(serde_json::json!({ "deleted": comment })))
}

#[derive(Deserialize)]
struct NewShare {
    username: String,
}

async fn add_share(
    State(st): State<Shared>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    Json(new): Json<NewShare>,
) -> AppResult<Json<serde_json::Value>> {
    let rec = rec_id(&id)?;
    let audit_key = st.audit_key.clone();
    st.db(move |c| {
        access::owner_only(c, &user, &rec)?;
        let coach = accounts::find_user(c, new.username.trim())?
            .filter(|u| u.has(Role::Coach) && u.id != user.id)
            .ok_or_else(|| {
                AppError::BadRequest(format!("{:?} is not a coach at this school", new.username))
            })?;
        c.execute(
            "INSERT OR IGNORE INTO shares (recording_id, coach_id, created_at) VALUES (?1, ?2, ?3)",
            params![rec, coach.id, clock::now()],
        )?;
        c.execute(
            "UPDATE recordings SET ever_shared = 1 WHERE id = ?1",
            [&rec],
        )?;
        crate::store::audit::record(
            c,
            &audit_key,
            &user.audit_id,
            "share",
            &format!("{rec} {}", coach.audit_id),
        )?;
        Ok(())
    })
    .await?;
    Ok(Json(serde_json::json!({ "shared": true })))
}

async fn remove_share(
    State(st): State<Shared>,
    CurrentUser(user): CurrentUser,
    Path((id, username)): Path<(String, String)>,
) -> AppResult<Json<serde_json::Value>> {
    let rec = rec_id(&id)?;
    let audit_key = st.audit_key.clone();
    st.db(move |c| {
        access::owner_only(c, &user, &rec)?;
        let coach: Option<(i64, String)> = c
            .query_row(
                "SELECT u.id, u.audit_id FROM shares s JOIN users u ON u.id = s.coach_id
                 WHERE s.recording_id = ?1 AND u.username = ?2",
                params![rec, username],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let (coach_id, coach_audit) = coach.ok_or(AppError::NotFound)?;
        c.execute(
            "DELETE FROM shares WHERE recording_id = ?1 AND coach_id = ?2",
            params![rec, coach_id],
        )?;
        crate::store::audit::record(
            c,
            &audit_key,
            &user.audit_id,
            "unshare",
            &format!("{rec} {coach_audit}"),
        )?;
        Ok(())
    })
    .await?;
    Ok(Json(serde_json::json!({ "shared": false })))
}

#[derive(Serialize)]
struct View {
    display_name: String,
    last_viewed: i64,
    views: i64,
}

/// "Who watched this": everyone but the owner who opened the recording, from the audit log.
async fn views(
    State(st): State<Shared>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> AppResult<Json<Vec<View>>> {
    let rec = rec_id(&id)?;
    let list = st
        .db(move |c| {
            access::owner_only(c, &user, &rec)?;
            let mut stmt = c.prepare(
                "SELECT u.display_name, MAX(a.at), COUNT(*) FROM audit a JOIN users u ON u.audit_id = a.actor
                 WHERE a.action = 'view' AND a.target = ?1 AND u.id != ?2
                 GROUP BY u.id ORDER BY MAX(a.at) DESC",
            )?;
            let list = stmt
                .query_map(params![rec, user.id], |r| {
                    Ok(View {
                        display_name: r.get(0)?,
                        last_viewed: r.get(1)?,
                        views: r.get(2)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(list)
        })
        .await?;
    Ok(Json(list))
}

async fn delete_recording(
    State(st): State<Shared>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> AppResult<Json<serde_json::Value>> {
    let rec = rec_id(&id)?;
    let who = user.audit_id.clone();
    let r = rec.clone();
    st.db(move |c| {
        access::owner_only(c, &user, &r)?;
        let held: bool = c.query_row(
            "SELECT hold_reason IS NOT NULL FROM recordings WHERE id = ?1",
            [&r],
            |row| row.get(0),
        )?;
        if held {
            return Err(AppError::Conflict(
                "the school has put this recording on hold, so it cannot be deleted now; ask an admin".into(),
            ));
        }
        Ok(())
    })
    .await?;
    let removed = super::delete_recordings(&st, vec![rec], &who, "delete-recording").await?;
    Ok(Json(serde_json::json!({ "deleted": removed })))
}
