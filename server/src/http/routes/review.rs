//! Reviewing a lesson: the recording page's data, sharing with coaches, timestamped comments and
//! replies, the owner's private reflection notes, "who watched this", and deleting a recording.
//! Who may do what is decided by [`crate::domain::access`].

use super::rec_id;
use super::Route;
use crate::domain::access::Access;
use crate::domain::people::Role;
use crate::http::access;
use crate::http::error::{AppError, AppResult};
use crate::http::state::{CurrentUser, Shared};
use crate::store::accounts;
use crate::store::{comments, recordings, shares};
use axum::extract::{Path, State};
use axum::routing::{delete, get, post};
use axum::Json;
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

async fn shared_with_me(
    State(st): State<Shared>,
    CurrentUser(user): CurrentUser,
) -> AppResult<Json<Vec<recordings::LibraryItem>>> {
    let list = st
        .db(move |c| {
            if !user.has(Role::Coach) {
                return Ok(Vec::new());
            }
            Ok(recordings::shared_with_coach(c, user.id)?
                .iter()
                .map(|id| recordings::library_item(c, id, Access::SharedCoach))
                .collect::<Result<Vec<_>, _>>()?)
        })
        .await?;
    Ok(Json(list))
}

/// The coaches a teacher can share with.
async fn coaches(
    State(st): State<Shared>,
    CurrentUser(user): CurrentUser,
) -> AppResult<Json<Vec<shares::Person>>> {
    if !user.has(Role::Teacher) {
        return Err(AppError::Forbidden("only teachers share lessons"));
    }
    let list = st
        .db(move |c| Ok(shares::coaches_except(c, user.id)?))
        .await?;
    Ok(Json(list))
}

/// The school's comment tags (its framework for lesson observation).
async fn tags(
    State(st): State<Shared>,
    CurrentUser(_): CurrentUser,
) -> AppResult<Json<Vec<String>>> {
    Ok(Json(st.db(|c| Ok(comments::all_tags(c)?)).await?))
}

#[derive(Serialize)]
struct Detail {
    #[serde(flatten)]
    item: recordings::LibraryItem,
    shares: Vec<shares::Person>,
    /// The groups of coaches it is shared with (owner only).
    group_shares: Vec<crate::store::groups::Group>,
    /// Privacy pauses and lost segments, for the timeline.
    gaps: Vec<crate::domain::segments::Gap>,
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
                Access::Owner => (
                    shares::shared_with(c, &rec)?,
                    crate::store::groups::groups(c, Some(&rec))?,
                ),
                Access::SharedCoach => (Vec::new(), Vec::new()),
            };
            let item = recordings::library_item(c, &rec, access)?;
            let end = item.summary.missing.last().map(|[_, last]| last + 1);
            Ok(Detail {
                gaps: recordings::gaps(c, item.summary.id, end)?,
                download_parts: recordings::download_parts(c, item.summary.id)?,
                item,
                shares,
                group_shares,
            })
        })
        .await?;
    Ok(Json(d))
}

async fn comments(
    State(st): State<Shared>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> AppResult<Json<Vec<comments::Comment>>> {
    let rec = rec_id(&id)?;
    let list = st
        .db(move |c| {
            let access = access::recording(c, &user, &rec)?;
            Ok(comments::list(c, &rec, user.id, access.is_owner())?)
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
                if !comments::all_tags(c)?.contains(t) {
                    return Err(AppError::BadRequest(format!(
                        "{t:?} is not one of the school's tags"
                    )));
                }
            }
            let mut at_ms = (new.at_seconds * 1000.0).round() as i64;
            if let Some(parent) = new.parent_id {
                // A reply sits under a visible comment of the same recording, at its time.
                let parent_at = comments::reply_time(c, &rec, parent)?;
                at_ms = parent_at.ok_or_else(|| {
                    AppError::BadRequest("replies go under a shared comment of this lesson".into())
                })?;
                if new.private {
                    return Err(AppError::BadRequest(
                        "a reflection note cannot be a reply".into(),
                    ));
                }
            }
            Ok(comments::add(
                c,
                &comments::NewComment {
                    rec: &rec,
                    author: user.id,
                    parent_id: new.parent_id,
                    at_ms,
                    body: &body,
                    tag: tag.as_deref(),
                    private: new.private,
                },
            )?)
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
        if !comments::delete(c, &rec, comment, user.id)? {
            return Err(AppError::NotFound);
        }
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
        shares::add(c, &rec, coach.id)?;
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
        let coach_audit = shares::remove(c, &rec, &username)?.ok_or(AppError::NotFound)?;
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

/// "Who watched this": everyone but the owner who opened the recording, from the audit log.
async fn views(
    State(st): State<Shared>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> AppResult<Json<Vec<crate::store::audit::View>>> {
    let rec = rec_id(&id)?;
    let list = st
        .db(move |c| {
            access::owner_only(c, &user, &rec)?;
            Ok(crate::store::audit::views(c, &rec, user.id)?)
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
        if recordings::is_held(c, &r)? {
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
