//! Which segments of a recording the server holds, and where their bytes are.

use crate::domain::segments::Seg;
use lessonlens_proto::{RecordingId, SegmentIndex, POSTER_INDEX};
use rusqlite::{params, Connection, OptionalExtension};

/// The segments of `rec` the server holds, in order, without the poster.
pub fn stored(c: &Connection, rec: RecordingId) -> rusqlite::Result<Vec<Seg>> {
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
