//! Which segments of a recording the server holds, and where their bytes are.

use crate::domain::segments::Seg;
use lessonlens_proto::ids::FIRST_ATTACHMENT;
use lessonlens_proto::{RecordingId, SegmentIndex};
use rusqlite::{params, Connection, OptionalExtension};

/// The segments of `rec` the server holds, in order, without the poster and talk time.
pub fn stored(c: &Connection, rec: RecordingId) -> rusqlite::Result<Vec<Seg>> {
    let mut stmt = c.prepare(
        "SELECT idx, duration_us, final FROM segments WHERE recording_id = ?1 AND idx < ?2 ORDER BY idx",
    )?;
    let segs = stmt
        .query_map(params![rec.to_string(), FIRST_ATTACHMENT], |r| {
            Ok(Seg {
                index: r.get(0)?,
                duration_us: r.get(1)?,
                final_segment: r.get(2)?,
            })
        })?
        .collect();
    segs
}

/// The hash (blob name) of segment `index` of `rec`, if the server holds it.
pub fn sha_of(
    c: &Connection,
    rec: RecordingId,
    index: SegmentIndex,
) -> rusqlite::Result<Option<String>> {
    c.query_row(
        "SELECT sha256 FROM segments WHERE recording_id = ?1 AND idx = ?2",
        params![rec.to_string(), index],
        |r| r.get(0),
    )
    .optional()
}

/// Records segment `index` of `rec` (blob `sha`, `bytes` long, as its header says) unless it is
/// recorded already; gives the hash recorded for it either way.
pub fn insert(
    c: &Connection,
    rec: RecordingId,
    index: SegmentIndex,
    sha: &str,
    bytes: u64,
    header: &lessonlens_proto::envelope::SegmentHeader,
) -> rusqlite::Result<String> {
    c.execute(
        "INSERT INTO segments (recording_id, idx, sha256, bytes, start_us, duration_us, final, stored_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (recording_id, idx) DO NOTHING",
        params![
            rec.to_string(),
            index,
            sha,
            bytes as i64,
            header.start_us as i64,
            header.duration_us as i64,
            header.final_segment,
            crate::domain::clock::now()
        ],
    )?;
    c.query_row(
        "SELECT sha256 FROM segments WHERE recording_id = ?1 AND idx = ?2",
        params![rec.to_string(), index],
        |r| r.get(0),
    )
}

/// The indices of the segments of `rec` the server holds.
pub fn indices(
    c: &Connection,
    rec: RecordingId,
) -> rusqlite::Result<std::collections::BTreeSet<SegmentIndex>> {
    let mut stmt = c.prepare("SELECT idx FROM segments WHERE recording_id = ?1")?;
    let present = stmt.query_map([rec.to_string()], |r| r.get(0))?.collect();
    present
}

/// Each segment of `rec` with its blob, in order.
pub fn blobs_of(c: &Connection, rec: RecordingId) -> rusqlite::Result<Vec<(SegmentIndex, String)>> {
    let mut stmt =
        c.prepare("SELECT idx, sha256 FROM segments WHERE recording_id = ?1 ORDER BY idx")?;
    let rows = stmt
        .query_map([rec.to_string()], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect();
    rows
}

/// Points segment `index` of `rec` at another blob (`bytes` long).
pub fn replace_blob(
    c: &Connection,
    rec: RecordingId,
    index: SegmentIndex,
    sha: &str,
    bytes: u64,
) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE segments SET sha256 = ?1, bytes = ?2 WHERE recording_id = ?3 AND idx = ?4",
        params![sha, bytes as i64, rec.to_string(), index],
    )?;
    Ok(())
}

/// How many segments the server holds, and their bytes.
pub fn totals(c: &Connection) -> rusqlite::Result<(i64, i64)> {
    c.query_row(
        "SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM segments",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}
