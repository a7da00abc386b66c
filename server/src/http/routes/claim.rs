//! Lessons a device recorded while the server was unreachable: sealed to the school's unassigned
//! key, owned by the unassigned account, listed (metadata only) for teachers. A teacher claims one
//! with the device code they typed to start it; the server then re-seals each segment's data key
//! to the teacher's key (the content is not touched) and hands the recording over.

use super::{Page, Route};
use crate::domain::clock;
use crate::domain::people::{Role, User};
use crate::http::error::{AppError, AppResult};
use crate::http::state::{CurrentUser, Shared};
use crate::store::accounts;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::Json;
use lessonlens_proto::manifest::open_claim;
use lessonlens_proto::wire::RecordingSummary;
use lessonlens_proto::{Manifest, RecordingId, SegmentIndex};
use rusqlite::{params, OptionalExtension};

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
            let mut stmt = c.prepare(
                "SELECT id FROM recordings WHERE owner_id = ?1 AND manifest IS NOT NULL
                 ORDER BY created_at DESC, id LIMIT ?2 OFFSET ?3",
            )?;
            let ids: Vec<String> = stmt
                .query_map(params![owner, limit, offset], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            Ok(ids
                .iter()
                .map(|id| crate::store::recordings::summary(c, id))
                .collect::<Result<_, _>>()?)
        })
        .await?;
    Ok(Json(Page::of(query.page, PAGE, list)))
}

/// Whether `code` is the one the device kept for the lesson, sealed to the unassigned key (opened
/// here, compared in constant time). Claims from older devices were kept as tags, which
/// `tagged` says match or not.
fn claim_matches(
    unassigned: &lessonlens_proto::SecretKey,
    rec: RecordingId,
    claim: Option<&str>,
    code: &str,
    tagged: bool,
) -> bool {
    use subtle::ConstantTimeEq;
    let Some(claim) = claim else {
        return false;
    };
    match open_claim(unassigned, rec, claim) {
        Some(sealed) => sealed.as_bytes().ct_eq(code.as_bytes()).into(),
        None => tagged,
    }
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
    let now = clock::now();
    if st.claim_failures.attempt(&user.id, now).is_err() {
        return Err(AppError::TooManyRequests(
            "too many wrong codes; wait 15 minutes and try again",
        ));
    }
    let code = form.code.clone();
    let tag = st.vault(move |v| Ok(v.code_tag(&code))).await?;
    let me = user.id;
    let unassigned = st.unassigned;
    let (manifest, segments) = st
        .db(move |c| {
            if accounts::user_by_code(c, &tag)?.map(|u| u.id) != Some(me) {
                return Err(AppError::Forbidden("that is not your device code"));
            }
            let (owner, manifest): (i64, Option<String>) = c
                .query_row(
                    "SELECT owner_id, manifest FROM recordings WHERE id = ?1",
                    [rec.to_string()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(|_| AppError::NotFound)?;
            let manifest = manifest
                .filter(|_| owner == unassigned)
                .and_then(|m| Manifest::parse(m.as_bytes()).ok())
                .ok_or(AppError::NotFound)?;
            let mut stmt =
                c.prepare("SELECT idx, sha256 FROM segments WHERE recording_id = ?1 ORDER BY idx")?;
            let segments: Vec<(SegmentIndex, String)> = stmt
                .query_map([rec.to_string()], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            Ok((manifest, segments))
        })
        .await?;
    let kept = manifest.claim.clone().unwrap_or_default();
    let code = form.code.clone();
    let (keys, tagged) = st
        .vault(move |v| {
            Ok((
                (
                    v.secret_key(unassigned)?.ok_or(AppError::NotFound)?,
                    v.public_key(me)?.ok_or(AppError::NotFound)?,
                ),
                v.tagged_claim_matches(&kept, rec, &code),
            ))
        })
        .await?;
    if !claim_matches(&keys.0, rec, manifest.claim.as_deref(), &form.code, tagged) {
        return Err(AppError::Forbidden(
            "this lesson was not started with your code",
        ));
    }
    st.claim_failures.forgive_last(&user.id);

    // Re-seal each data key to the teacher, as new blobs; the old ones go once the rows point at
    // the new ones, so a crash in between leaves the recording whole (and unassigned).
    let recipient = keys.1.fingerprint();
    let st2 = st.clone();
    let rewrapped: Vec<(SegmentIndex, String, String, u64)> =
        tokio::task::spawn_blocking(move || -> AppResult<_> {
            let (from, to) = keys;
            let mut out = Vec::new();
            for (index, old) in segments {
                let sealed = st2.blobs.read(&old)?;
                let new = lessonlens_proto::envelope::rewrap(
                    &sealed,
                    &from,
                    &to,
                    &mut rand_core::TryRngCore::unwrap_err(rand_core::OsRng),
                )
                .map_err(|e| {
                    AppError::Internal(anyhow::anyhow!("segment {index} of {rec}: {e}"))
                })?;
                let mut incoming = st2.blobs.begin()?;
                incoming.write(&new)?;
                let sha = st2.blobs.commit(incoming)?;
                out.push((index, old, sha, new.len() as u64));
            }
            Ok(out)
        })
        .await
        .map_err(|e| AppError::Internal(e.into()))??;

    let audit_key = st.audit_key.clone();
    let who = user.audit_id.clone();
    let claimed = st
        .db(move |c| {
            let tx =
                rusqlite::Transaction::new_unchecked(c, rusqlite::TransactionBehavior::Immediate)?;
            // Two claims at once: the one that commits first wins; the other's new blobs are
            // referred to by nothing and go, and it is told the lesson is taken.
            let owner: Option<i64> = tx
                .query_row(
                    "SELECT owner_id FROM recordings WHERE id = ?1",
                    [rec.to_string()],
                    |r| r.get(0),
                )
                .optional()?;
            if owner != Some(unassigned) {
                for (_, _, new, _) in &rewrapped {
                    tx.execute(
                        "INSERT OR IGNORE INTO blob_deletions (sha256) VALUES (?1)",
                        [new],
                    )?;
                }
                tx.commit()?;
                return Ok(false);
            }
            let mut manifest = manifest;
            for (index, old, new, bytes) in &rewrapped {
                tx.execute(
                "UPDATE segments SET sha256 = ?1, bytes = ?2 WHERE recording_id = ?3 AND idx = ?4",
                params![new, *bytes as i64, rec.to_string(), index],
            )?;
                tx.execute(
                    "INSERT OR IGNORE INTO blob_deletions (sha256) VALUES (?1)",
                    [old],
                )?;
                if let Some(s) = manifest.segments.iter_mut().find(|s| s.index == *index) {
                    s.sha256 = new.clone();
                }
            }
            // The manifest now describes what is stored: the re-sealed segments, to the teacher.
            manifest.recipient = recipient;
            manifest.claim = None;
            tx.execute(
                "UPDATE recordings SET owner_id = ?1, manifest = ?2 WHERE id = ?3",
                params![
                    me,
                    String::from_utf8_lossy(&manifest.to_json()),
                    rec.to_string()
                ],
            )?;
            crate::store::audit::append(
                &tx,
                &audit_key,
                &who,
                "claim-offline-recording",
                &rec.to_string(),
            )?;
            tx.commit()?;
            Ok(true)
        })
        .await?;
    super::remove_listed_files(&st).await?;
    if !claimed {
        return Err(AppError::Conflict(
            "this lesson was claimed a moment ago; refresh the page".into(),
        ));
    }
    Ok(Json(serde_json::json!({ "claimed": rec.to_string() })))
}
