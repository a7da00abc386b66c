//! A recording's status as people see it: "recording" until the manifest arrives, then
//! "complete" or "incomplete" with what is missing or altered.

use lessonlens_proto::manifest::Manifest;
use lessonlens_proto::wire::RecordingSummary;
use lessonlens_proto::SegmentIndex;
use rusqlite::Connection;
use std::collections::BTreeSet;

/// A recording's summary: status is "recording" until the manifest arrives, then "complete" when
/// every segment is present after a clean stop, else "incomplete" with the missing spans.
pub fn summary(c: &Connection, id: &str) -> rusqlite::Result<RecordingSummary> {
    let (created_at, device, manifest, clean_stop): (i64, String, Option<String>, Option<bool>) = c.query_row(
        "SELECT r.created_at, d.name, r.manifest, r.clean_stop FROM recordings r JOIN devices d ON d.id = r.device_id WHERE r.id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    let mut stmt =
        c.prepare("SELECT idx, duration_us, sha256 FROM segments WHERE recording_id = ?1")?;
    let rows: Vec<(SegmentIndex, i64, String)> = stmt
        .query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    let present: BTreeSet<SegmentIndex> = rows.iter().map(|(i, _, _)| *i).collect();
    let duration_us: i64 = rows.iter().map(|(_, d, _)| d).sum();
    let manifest = manifest.and_then(|m| Manifest::parse(m.as_bytes()).ok());
    let (status, missing, mismatched) = match manifest {
        None => ("recording", Vec::new(), Vec::new()),
        Some(m) => {
            let missing = m.missing_from(&present);
            // A stored segment whose hash is not the one the device listed was altered or swapped
            // (looked up by index: both lists may hold tens of thousands).
            let listed: std::collections::HashMap<SegmentIndex, &str> = m
                .segments
                .iter()
                .map(|s| (s.index, s.sha256.as_str()))
                .collect();
            let mismatched: Vec<SegmentIndex> = rows
                .iter()
                .filter(|(i, _, sha)| listed.get(i).is_some_and(|l| *l != sha))
                .map(|(i, _, _)| *i)
                .collect();
            let complete = missing.is_empty() && mismatched.is_empty() && clean_stop == Some(true);
            (
                if complete { "complete" } else { "incomplete" },
                missing,
                mismatched,
            )
        }
    };
    Ok(RecordingSummary {
        id: id
            .parse()
            .map_err(|e: uuid::Error| rusqlite::Error::ToSqlConversionFailure(e.into()))?,
        created_at,
        device,
        segments: rows.iter().filter(|(i, d, _)| *i > 0 && *d > 0).count() as u32,
        duration_seconds: duration_us as f64 / 1e6,
        status: status.into(),
        missing_segments: lessonlens_proto::manifest::count(&missing),
        missing,
        mismatched,
        poster: present.contains(&lessonlens_proto::POSTER_INDEX),
    })
}

/// Replaces the claim hashes older devices sent (reversible by trying every code) in stored
/// manifests with the vault's tags of them (see `Vault::keepable_claim`). Run at start; returns
/// how many manifests changed.
pub fn tag_claim_hashes(
    c: &Connection,
    vault: &crate::store::vault::Vault,
) -> anyhow::Result<usize> {
    let mut stmt =
        c.prepare("SELECT id, manifest FROM recordings WHERE manifest LIKE '%\"claim\"%'")?;
    let rows: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut changed = 0;
    for (id, json) in rows {
        let Ok(mut m) = Manifest::parse(json.as_bytes()) else {
            continue;
        };
        match m.claim.take() {
            Some(claim) if lessonlens_proto::manifest::is_claim_hash(&claim) => {
                m.claim = Some(vault.keepable_claim(claim));
                let json = String::from_utf8_lossy(&m.to_json()).into_owned();
                c.execute(
                    "UPDATE recordings SET manifest = ?1 WHERE id = ?2",
                    rusqlite::params![json, id],
                )?;
                changed += 1;
            }
            _ => {}
        }
    }
    if changed > 0 {
        crate::store::db::forget(c)?;
    }
    Ok(changed)
}
