//! Playback: an HLS playlist per recording and per-segment decryption on the fly, and the whole
//! lesson as one MP4 download for its owner. Plaintext exists
//! only in memory while a response is being sent; responses say `Cache-Control: no-store` so the
//! browser keeps no copy on disk either.

use super::Route;
use crate::domain::people::{User, UserId};
use crate::domain::{self, clock};
use crate::http::error::{AppError, AppResult};
use crate::http::state::{CurrentUser, Shared};
use crate::store::{recordings, segments};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::StreamExt;
use lessonlens_proto::manifest::limits::MAX_SEGMENT_INDEX;
use lessonlens_proto::{RecordingId, SegmentIndex, POSTER_INDEX, TALK_INDEX};
use rusqlite::Connection;

pub fn routes() -> Vec<Route> {
    vec![
        ("GET", "/api/recordings/{id}/playlist.m3u8", get(playlist)),
        ("GET", "/api/recordings/{id}/init.mp4", get(init_segment)),
        (
            "GET",
            "/api/recordings/{id}/segments/{index}",
            get(media_segment),
        ),
        ("GET", "/api/recordings/{id}/download.mp4", get(download)),
        ("GET", "/api/recordings/{id}/poster.jpg", get(poster)),
        ("GET", "/api/recordings/{id}/talk", get(talk)),
    ]
}

/// The recording's owner (whose key opens it), if `user` may watch it; see [`crate::domain::access`].
fn authorise(c: &Connection, user: &User, rec: RecordingId) -> AppResult<UserId> {
    crate::http::access::recording_and_owner(c, user, &rec.to_string()).map(|(_, owner)| owner)
}

fn parse_id(id: &str) -> AppResult<RecordingId> {
    id.parse().map_err(|_| AppError::NotFound)
}

async fn playlist(
    State(st): State<Shared>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let rec = parse_id(&id)?;
    let audit_key = st.audit_key.clone();
    let (segments, finished) = st
        .db(move |c| {
            authorise(c, &user, rec)?;
            note_view(c, &audit_key, &user, rec)?;
            let finished = recordings::finished(c, &rec.to_string())?;
            Ok((segments::stored(c, rec)?, finished))
        })
        .await?;
    Ok(domain::segments::playlist(&segments, finished)
        .into_response_with_type("application/vnd.apple.mpegurl"))
}

/// Audits a read of the lesson's media as a "view". A live playlist is fetched again every few
/// seconds and a player fetches a segment every two: one "view" per person per recording per
/// 10 minutes is what "who watched this" needs.
fn note_view(c: &Connection, audit_key: &[u8; 32], user: &User, rec: RecordingId) -> AppResult<()> {
    if !crate::store::audit::viewed_since(c, &rec.to_string(), &user.audit_id, clock::now() - 600)?
    {
        crate::store::audit::record(c, audit_key, &user.audit_id, "view", &rec.to_string())?;
    }
    Ok(())
}

trait WithType {
    fn into_response_with_type(self, content_type: &'static str) -> Response;
}

impl<T: IntoResponse> WithType for T {
    fn into_response_with_type(self, content_type: &'static str) -> Response {
        (
            [
                (header::CONTENT_TYPE, content_type),
                (header::CACHE_CONTROL, "no-store"),
            ],
            self,
        )
            .into_response()
    }
}

/// Authorises, reads and decrypts one segment, in one trip to a blocking thread. Each lock is
/// held only for its lookup, so segments for many viewers are read and decrypted on all cores
/// at once.
async fn decrypt(
    st: Shared,
    user: User,
    rec: RecordingId,
    index: SegmentIndex,
) -> AppResult<Vec<u8>> {
    tokio::task::spawn_blocking(move || -> AppResult<Vec<u8>> {
        let (owner, sha) = {
            let c = st.lock_db()?;
            let owner = authorise(&c, &user, rec)?;
            // Whoever reads a lesson's media other than its owner has watched it, whether
            // through the playlist or by fetching segments directly (the poster is a library
            // thumbnail, not the lesson).
            if owner != user.id && index != POSTER_INDEX {
                note_view(&c, &st.audit_key, &user, rec)?;
            }
            let sha = segments::sha_of(&c, rec, index)?.ok_or(AppError::NotFound)?;
            (owner, sha)
        };
        let sk = st
            .lock_vault()?
            .secret_key(owner)?
            .ok_or(AppError::NotFound)?;
        let mut plaintext = crate::store::blobs::open_sealed(st.blobs.read(&sha)?, &sk, rec, index)
            .map_err(|e| {
                tracing::warn!(error = %format!("{e:#}"), "a stored segment does not open");
                AppError::Unprocessable(
                    "this part of the lesson failed its integrity check: it was damaged or altered after the device sealed it. The rest of the lesson is unaffected; tell your school's IT team".into(),
                )
            })?;
        st.metrics.played();
        // Hand the buffer to the response; it is freed once sent.
        Ok(std::mem::take(&mut *plaintext))
    })
    .await
    .map_err(|e| AppError::Internal(e.into()))?
}

async fn init_segment(
    State(st): State<Shared>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> AppResult<Response> {
    serve(st, user, &id, 0, "video/mp4").await
}

/// One stored piece of a recording, decrypted for `user`, as `content_type`.
async fn serve(
    st: Shared,
    user: User,
    id: &str,
    index: SegmentIndex,
    content_type: &'static str,
) -> AppResult<Response> {
    let rec = parse_id(id)?;
    Ok(decrypt(st, user, rec, index)
        .await?
        .into_response_with_type(content_type))
}

/// A media segment, as `N.m4s` (the playlist's name: HLS readers such as ffmpeg's want a known
/// extension) or as `N`.
async fn media_segment(
    State(st): State<Shared>,
    CurrentUser(user): CurrentUser,
    Path((id, file)): Path<(String, String)>,
) -> AppResult<Response> {
    let index: SegmentIndex = file
        .strip_suffix(".m4s")
        .unwrap_or(&file)
        .parse()
        .map_err(|_| AppError::NotFound)?;
    if !(1..=MAX_SEGMENT_INDEX).contains(&index) {
        return Err(AppError::NotFound);
    }
    serve(st, user, &id, index, "video/iso.segment").await
}

/// The poster frame the device took of the lesson's first frame (JPEG), for the library. Anyone
/// who may watch the lesson may see it; it is not counted as a view.
async fn poster(
    State(st): State<Shared>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> AppResult<Response> {
    serve(st, user, &id, POSTER_INDEX, "image/jpeg").await
}

/// The lesson's talk time as the device classed it (one letter a second, see
/// `lessonlens_proto::talk`), with its figures. For whoever may watch the lesson (never an
/// admin); a read by anyone but the owner is audited as a view, like the media.
async fn talk(
    State(st): State<Shared>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let rec = parse_id(&id)?;
    let plaintext = decrypt(st, user, rec, TALK_INDEX).await?;
    let talk = lessonlens_proto::talk::Talk::parse(&plaintext).map_err(|e| {
        tracing::warn!(recording = %rec, error = %e, "talk time that does not parse");
        AppError::Unprocessable(
            "the classroom device sent talk time for this lesson that cannot be read; the lesson itself is unaffected".into(),
        )
    })?;
    Ok(axum::Json(serde_json::json!({
        "microphones": talk.microphones,
        "seconds": talk.seconds,
        "summary": talk.summary(),
    }))
    .into_response_with_type("application/json"))
}

/// How many files the lesson downloads as: one, or one more per privacy pause (each part has its
/// own init segment, so the parts do not join into one file).
#[derive(serde::Deserialize)]
struct DownloadQuery {
    /// Which part (from 1) of a lesson with privacy pauses.
    part: Option<usize>,
}

/// The lesson as an MP4 file, decrypted on the fly: the init segment followed by every media
/// segment is a fragmented MP4 that players and editors open. A lesson with privacy pauses
/// downloads as one file per part (`?part=1`, `?part=2`, ...), as in the subject access export.
/// For the owner only, and every download is audited: a downloaded copy is beyond the school's
/// retention and deletion.
async fn download(
    State(st): State<Shared>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    Query(q): Query<DownloadQuery>,
) -> AppResult<Response> {
    let rec = parse_id(&id)?;
    let audit_key = st.audit_key.clone();
    let u = user.clone();
    let (indices, started, name_part) = st
        .db(move |c| {
            crate::http::access::owner_only(c, &u, &rec.to_string())?;
            let segs = segments::stored(c, rec)?;
            if segs.first().is_none_or(|s| s.index != 0) {
                return Err(AppError::Conflict(
                    "the start of this recording has not reached the server yet; try again once the device has uploaded it".into(),
                ));
            }
            let mut parts = domain::segments::parts(&segs);
            let n = parts.len();
            let part = match (q.part, n) {
                (_, 0) => {
                    return Err(AppError::Conflict(
                        "no video of this lesson has reached the server yet; try again once the device has uploaded it".into(),
                    ))
                }
                (None | Some(1), 1) => 1,
                (None, _) => {
                    return Err(AppError::Conflict(format!(
                        "this lesson has a privacy pause, so it downloads as {n} files, one per part: ask for ?part=1 to ?part={n}"
                    )))
                }
                (Some(p), _) if (1..=n).contains(&p) => p,
                (Some(p), _) => {
                    return Err(AppError::BadRequest(format!(
                        "this lesson has {n} part(s), so there is no part {p}"
                    )))
                }
            };
            let started = recordings::started(c, &rec.to_string())?;
            let target = if n == 1 {
                rec.to_string()
            } else {
                format!("{rec} part {part}")
            };
            crate::store::audit::record(c, &audit_key, &u.audit_id, "download", &target)?;
            let name_part = (n > 1).then(|| format!("-part{part}"));
            Ok((parts.swap_remove(part - 1), started, name_part))
        })
        .await?;
    let parts = futures_util::stream::iter(indices).then(move |index| {
        let (st, user) = (st.clone(), user.clone());
        async move {
            decrypt(st, user, rec, index)
                .await
                .map(axum::body::Bytes::from)
                .map_err(|e| std::io::Error::other(e.to_string()))
        }
    });
    let day = time::OffsetDateTime::from_unix_timestamp(started)
        .map(|t| t.date().to_string())
        .unwrap_or_default();
    Ok(super::attachment(
        "video/mp4",
        &format!("lesson-{day}{}.mp4", name_part.unwrap_or_default()),
        axum::body::Body::from_stream(parts),
    ))
}
