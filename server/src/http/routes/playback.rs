//! Playback: an HLS playlist per recording and per-segment decryption on the fly, and the whole
//! lesson as one MP4 download for its owner. Plaintext exists
//! only in memory while a response is being sent; responses say `Cache-Control: no-store` so the
//! browser keeps no copy on disk either.

use super::Route;
use crate::domain::clock;
use crate::domain::people::User;
use crate::http::error::{AppError, AppResult};
use crate::http::state::{CurrentUser, Shared};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::StreamExt;
use lessonlens_proto::{RecordingId, SegmentIndex, SegmentKind, POSTER_INDEX};
use rusqlite::{params, Connection, OptionalExtension};
use std::fmt::Write;

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
    ]
}

/// The recording's owner (whose key opens it), if `user` may watch it; see [`crate::domain::access`].
fn authorise(c: &Connection, user: &User, rec: RecordingId) -> AppResult<i64> {
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
            let finished: bool = c.query_row(
                "SELECT manifest IS NOT NULL FROM recordings WHERE id = ?1",
                [rec.to_string()],
                |r| r.get(0),
            )?;
            Ok((stored_segments(c, rec)?, finished))
        })
        .await?;
    Ok(m3u8(&segments, finished).into_response_with_type("application/vnd.apple.mpegurl"))
}

/// Audits a read of the lesson's media as a "view". A live playlist is fetched again every few
/// seconds and a player fetches a segment every two: one "view" per person per recording per
/// 10 minutes is what "who watched this" needs.
fn note_view(c: &Connection, audit_key: &[u8; 32], user: &User, rec: RecordingId) -> AppResult<()> {
    let recent: bool = c.query_row(
        "SELECT EXISTS (SELECT 1 FROM audit WHERE target = ?1 AND actor = ?2 AND action = 'view' AND at > ?3)",
        params![rec.to_string(), user.audit_id, clock::now() - 600],
        |r| r.get(0),
    )?;
    if !recent {
        crate::store::audit::record(c, audit_key, &user.audit_id, "view", &rec.to_string())?;
    }
    Ok(())
}

/// One stored segment as the playlist sees it.
#[derive(Clone, Copy)]
struct Seg {
    index: SegmentIndex,
    duration_us: i64,
    final_segment: bool,
}

fn stored_segments(c: &Connection, rec: RecordingId) -> rusqlite::Result<Vec<Seg>> {
    let mut stmt = c.prepare(
        "SELECT idx, duration_us, final FROM segments WHERE recording_id = ?1 AND idx != ?2 ORDER BY idx",
    )?;
    let segs = stmt
        .query_map(params![rec.to_string(), POSTER_INDEX], |r| {
            Ok(Seg {
                index: r.get(0)?,
                duration_us: r.get(1)?,
                final_segment: r.get(2)?,
            })
        })?
        .collect();
    segs
}

impl Seg {
    fn kind(&self) -> SegmentKind {
        SegmentKind::of(
            self.index,
            u64::try_from(self.duration_us).unwrap_or(0),
            self.final_segment,
        )
    }

    /// Media to play: not an init segment, not the end marker.
    fn is_media(&self) -> bool {
        self.kind() == SegmentKind::Media
    }

    fn is_reinit(&self) -> bool {
        self.kind() == SegmentKind::Reinit
    }
}

/// A break in a recording's timeline, at a time on the player's clock (which runs over the media
/// the playlist lists, so a break takes no time on it).
#[derive(Debug, PartialEq, serde::Serialize)]
pub struct Gap {
    /// "pause" (a privacy pause) or "lost" (segments that never reached the server: a crash).
    pub kind: &'static str,
    pub at_seconds: f64,
    /// For "lost": how many segments.
    pub segments: u32,
}

/// The gaps of a recording, as the player's timeline shows them. `expected_end` is the index
/// after the last segment the manifest lists (if it has arrived), so segments lost at the end
/// count too.
pub fn gaps(
    c: &Connection,
    rec: RecordingId,
    expected_end: Option<SegmentIndex>,
) -> rusqlite::Result<Vec<Gap>> {
    Ok(gaps_in(&stored_segments(c, rec)?, expected_end))
}

fn gaps_in(segments: &[Seg], expected_end: Option<SegmentIndex>) -> Vec<Gap> {
    let mut out = Vec::new();
    let mut at_us = 0;
    let mut expected = 1;
    let lost = |out: &mut Vec<Gap>, from: SegmentIndex, to: SegmentIndex, at_us: i64| {
        if to > from {
            out.push(Gap {
                kind: "lost",
                at_seconds: at_us as f64 / 1e6,
                segments: to - from,
            });
        }
    };
    for s in segments.iter().filter(|s| s.index > 0) {
        lost(&mut out, expected, s.index, at_us);
        if s.is_reinit() {
            out.push(Gap {
                kind: "pause",
                at_seconds: at_us as f64 / 1e6,
                segments: 0,
            });
        }
        if s.is_media() {
            at_us += s.duration_us;
        }
        expected = s.index + 1;
    }
    if let Some(end) = expected_end {
        lost(&mut out, expected, end, at_us);
    }
    out
}

/// The HLS playlist for the stored segments. A gap (a segment lost to a crash) is marked as a
/// discontinuity so the player skips it instead of stalling; a privacy pause is a discontinuity
/// with the new init segment the device made on resume.
fn m3u8(segments: &[Seg], finished: bool) -> String {
    let has_init = segments.first().is_some_and(|s| s.index == 0);
    let target = segments
        .iter()
        .filter(|s| s.is_media())
        .map(|s| (s.duration_us as f64 / 1e6).ceil() as u64)
        .max()
        .unwrap_or(2)
        .max(1);
    let mut out = String::new();
    let _ = write!(
        out,
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:{}\n#EXT-X-INDEPENDENT-SEGMENTS\n",
        if finished { "VOD" } else { "EVENT" }
    );
    if has_init {
        out.push_str("#EXT-X-MAP:URI=\"init.mp4\"\n");
        let mut expected = 1;
        for s in segments.iter().filter(|s| s.index > 0) {
            if s.is_reinit() {
                let _ = write!(
                    out,
                    "#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"segments/{}.m4s\"\n",
                    s.index
                );
            } else if s.is_media() {
                if s.index != expected {
                    out.push_str("#EXT-X-DISCONTINUITY\n");
                }
                let _ = write!(
                    out,
                    "#EXTINF:{:.3},\nsegments/{}.m4s\n",
                    s.duration_us as f64 / 1e6,
                    s.index
                );
            }
            expected = s.index + 1;
        }
    }
    if finished {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    out
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
            let sha: String = c
                .query_row(
                    "SELECT sha256 FROM segments WHERE recording_id = ?1 AND idx = ?2",
                    params![rec.to_string(), index],
                    |r| r.get(0),
                )
                .optional()?
                .ok_or(AppError::NotFound)?;
            (owner, sha)
        };
        let sk = st
            .lock_vault()?
            .secret_key(owner)?
            .ok_or(AppError::NotFound)?;
        let mut plaintext =
            crate::store::blobs::open_sealed(st.blobs.read(&sha)?, &sk, rec, index)?;
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
    if index == 0 || index == POSTER_INDEX {
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

/// How many files the lesson downloads as: one, or one more per privacy pause (each part has its
/// own init segment, so the parts do not join into one file).
pub fn download_parts(c: &Connection, rec: RecordingId) -> rusqlite::Result<usize> {
    Ok(parts_of(&stored_segments(c, rec)?).len())
}

fn parts_of(segs: &[Seg]) -> Vec<Vec<SegmentIndex>> {
    let list: Vec<_> = segs
        .iter()
        .map(|s| (s.index, s.duration_us, s.final_segment))
        .collect();
    crate::ops::export::parts(&list)
}

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
            let segs = stored_segments(c, rec)?;
            if segs.first().is_none_or(|s| s.index != 0) {
                return Err(AppError::Conflict(
                    "the start of this recording has not reached the server yet; try again once the device has uploaded it".into(),
                ));
            }
            let mut parts = parts_of(&segs);
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
            let started: i64 = c.query_row(
                "SELECT COALESCE(started_at, created_at) FROM recordings WHERE id = ?1",
                [rec.to_string()],
                |r| r.get(0),
            )?;
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

#[cfg(test)]
mod tests {
    use super::{gaps_in, m3u8, Seg};

    fn segs(list: &[(u32, i64, bool)]) -> Vec<Seg> {
        list.iter()
            .map(|&(index, duration_us, final_segment)| Seg {
                index,
                duration_us,
                final_segment,
            })
            .collect()
    }

    #[test]
    fn gaps_are_placed_on_the_players_clock() {
        // Lost 3, a pause (5 is the init made on resume), and 8 lost at the end (the manifest
        // lists segments up to 8).
        let list = segs(&[
            (0, 0, false),
            (1, 2_000_000, false),
            (2, 2_000_000, false),
            (4, 1_500_000, false),
            (5, 0, false),
            (6, 2_000_000, false),
            (7, 1_000_000, false),
        ]);
        let g = gaps_in(&list, Some(9));
        let summary: Vec<(&str, f64, u32)> = g
            .iter()
            .map(|g| (g.kind, g.at_seconds, g.segments))
            .collect();
        assert_eq!(
            summary,
            [("lost", 4.0, 1), ("pause", 5.5, 0), ("lost", 8.5, 1)]
        );
        // While recording (no manifest yet) nothing at the end counts as lost.
        assert_eq!(gaps_in(&list, None).len(), 2);
        assert!(gaps_in(
            &segs(&[(0, 0, false), (1, 2_000_000, false), (2, 0, true)]),
            Some(3)
        )
        .is_empty());
    }

    #[test]
    fn playlist_lists_segments_and_marks_gaps_and_pauses() {
        let p = m3u8(
            &segs(&[
                (0, 0, false),
                (1, 2_000_000, false),
                (2, 2_000_000, false),
                (4, 1_500_000, false),
                (5, 0, true),
            ]),
            true,
        );
        assert!(p.contains("#EXT-X-MAP:URI=\"init.mp4\""));
        assert!(p.contains("#EXTINF:2.000,\nsegments/1.m4s\n"));
        assert!(
            p.contains("#EXT-X-DISCONTINUITY\n#EXTINF:1.500,\nsegments/4.m4s\n"),
            "lost segment 3: {p}"
        );
        assert!(
            p.ends_with("#EXTINF:1.500,\nsegments/4.m4s\n#EXT-X-ENDLIST\n"),
            "no end marker: {p}"
        );
        // A privacy pause: segment 3 is the new init made on resume.
        let p = m3u8(
            &segs(&[
                (0, 0, false),
                (1, 2_000_000, false),
                (2, 1_000_000, false),
                (3, 0, false),
                (4, 2_000_000, false),
            ]),
            false,
        );
        assert!(p.contains("segments/2.m4s\n#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"segments/3.m4s\"\n#EXTINF:2.000,\nsegments/4.m4s\n"), "{p}");
        assert_eq!(
            p.matches("#EXT-X-DISCONTINUITY").count(),
            1,
            "the pause is one discontinuity: {p}"
        );
        assert!(p.contains("EVENT") && !p.contains("ENDLIST"));
        assert!(
            !m3u8(&segs(&[(1, 2_000_000, false)]), false).contains("segments/1"),
            "no media without an init segment"
        );
    }
}
