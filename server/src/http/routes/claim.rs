//! Lessons a device recorded while the server was unreachable: sealed to the school's unassigned
//! key, owned by the unassigned account, listed (metadata only) for teachers. A teacher claims one
//! with the device code they typed to start it; the server then re-seals each segment's data key
//! to the teacher's key (the content is not touched) and hands the recording over.

use super::{Page, Route};
use crate::domain::clock;
use crate::domain::people::{Role, User};
use crate::http::error::{AppError, AppResult};
use crate::http::state::{CurrentUser, Shared};
use crate::ops;
use crate::store::{accounts, recordings};
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::Json;
use lessonlens_proto::wire::RecordingSummary;
use lessonlens_proto::RecordingId;

pub fn routes() -> Vec<Route> {
    vec![
        ("GET", "/api/unassigned", get(list)),
        ("POST", "/api/unassigned/{id}/claim", post(claim)),
    ]
}

fn teacher(user: &User) -> AppResult<()> {
    if user.has(Role::Teacher) {
        Ok(())
    } else {
        Err(AppError::Forbidden("only teachers claim lessons"))
    }
}

/// Offline lessons on one page of the list.
const PAGE: i64 = 20;

#[derive(serde::Deserialize)]
struct PageQuery {
    /// From 0, newest first.
    #[serde(default)]
    page: u32,
}

/// Lessons recorded offline and not claimed yet, whose upload has finished: when, where, how long.
/// Paged, newest first: every teacher sees this list, and any device can add to it.
async fn list(
    State(st): State<Shared>,
    CurrentUser(user): CurrentUser,
    Query(query): Query<PageQuery>,
) -> AppResult<Json<Page<RecordingSummary>>> {
    teacher(&user)?;
    Page::<RecordingSummary>::check(query.page)?;
    let (limit, offset) = Page::<RecordingSummary>::window(query.page, PAGE);
    let owner = st.unassigned;
    let list = st
        .db(move |c| {
            Ok(recordings::offline(c, owner, limit, offset)?
                .iter()
                .map(|id| recordings::summary(c, id))
                .collect::<Result<_, _>>()?)
        })
        .await?;
    Ok(Json(Page::of(query.page, PAGE, list)))
}

/// A teacher claims an offline lesson with the code they typed on the device to start it (which
/// must also be their own code today). Five wrong codes in 15 minutes make the account wait.
async fn claim(
    State(st): State<Shared>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    Json(form): Json<super::CodeForm>,
) -> AppResult<Json<serde_json::Value>> {
    teacher(&user)?;
    let rec: RecordingId = id.parse().map_err(|_| AppError::NotFound)?;
    if !accounts::valid_code(&form.code) {
        return Err(AppError::BadRequest("a code is 4 to 8 digits".into()));
    }
    if st.claim_failures.attempt(&user.id, clock::now()).is_err() {
        return Err(AppError::TooManyRequests(
            "too many wrong codes; wait 15 minutes and try again",
        ));
    }
    let st2 = st.clone();
    tokio::task::spawn_blocking(move || {
        let at = ops::claim::Place {
            db: &st2.db,
            vault: &st2.vault,
            blobs: st2.blobs.as_ref(),
            audit_key: &st2.audit_key,
            unassigned: st2.unassigned,
        };
        ops::claim::claim(&at, &user, rec, &form.code, || {
            st2.claim_failures.forgive_last(&user.id)
        })
    })
    .await
    .map_err(|e| AppError::Internal(e.into()))??;
    Ok(Json(serde_json::json!({ "claimed": rec.to_string() })))
}
