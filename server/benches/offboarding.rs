//! Retention and leaving at scale (issue 6), printed as a table; not a test. Run with
//! `scripts/bench-retention.sh`.
//!
//! - Offboarding a teacher with 100 hours of video: 180,000 two-second segments in 50 two-hour
//!   recordings, each a small synthetic blob file. Time to the key shred (goal < 1 s), to the full
//!   purge (goal < 60 s), and the peak RSS of this process.
//! - A retention sweep over 1,000,000 segment rows with nothing due (goal < 1 s).

use lessonlens_server::domain::clock;
use lessonlens_server::domain::people::{Role, UserId};
use lessonlens_server::ops::{offboarding, sweep};
use lessonlens_server::store::blobs::LocalBlobs;
use lessonlens_server::store::vault::{MasterKey, Vault};
use lessonlens_server::store::{accounts, db};
use rusqlite::{params, Connection};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::time::Instant;

/// Peak resident set size of this process so far, in MB (`VmHWM`).
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// `recordings` recordings of `per` media segments each for `owner`, made `age_days` ago; with
/// `blob_root`, a small file per segment where the blob store keeps it.
fn fill(
    conn: &Connection,
    owner: UserId,
    device: i64,
    recordings: usize,
    per: usize,
    now: i64,
    blob_root: Option<&Path>,
) -> anyhow::Result<()> {
    let tx = conn.unchecked_transaction()?;
    {
        let mut rec_stmt = tx.prepare(
            "INSERT INTO recordings (id, owner_id, device_id, created_at, started_at, clean_stop) VALUES (?1, ?2, ?3, ?4, ?4, 1)",
        )?;
        let mut seg_stmt = tx.prepare(
            "INSERT INTO segments (recording_id, idx, sha256, bytes, start_us, duration_us, final, stored_at) VALUES (?1, ?2, ?3, 64, ?4, 2000000, 0, ?5)",
        )?;
        for _ in 0..recordings {
            let id = uuid::Uuid::new_v4().to_string();
            rec_stmt.execute(params![id, owner, device, now - 86_400])?;
            for i in 0..per {
                let sha = hex::encode(Sha256::digest(format!("{id}/{i}")));
                seg_stmt.execute(params![id, i as i64, sha, i as i64 * 2_000_000, now])?;
                if let Some(root) = blob_root {
                    // The blob store's layout: <root>/<first two hex digits>/<sha256>.
                    let dir = root.join(&sha[..2]);
                    std::fs::create_dir_all(&dir)?;
                    std::fs::write(dir.join(&sha), [7u8; 64])?;
                }
            }
        }
    }
    tx.commit()?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let open = |name: &str| -> anyhow::Result<(Connection, Vault, LocalBlobs)> {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d)?;
        let master = MasterKey::load_or_create(&d.join("master.key"))?;
        Ok((
            db::open(&d.join("lessonlens.db"))?,
            Vault::open(&d.join("vault.db"), master)?,
            LocalBlobs::open(&d.join("blobs"))?,
        ))
    };
    let now = clock::now();
    println!("| measure | value | goal |");
    println!("|---|---|---|");

    // Offboarding 100 hours.
    let (conn, vault, blobs) = open("offboard")?;
    let id = accounts::add_user(
        &conn,
        "leaver",
        "Leaver",
        "a-long-password",
        &[Role::Teacher],
    )?;
    let fp = vault.create_key(id, now)?.fingerprint().to_string();
    conn.execute(
        "INSERT INTO devices (name, created_at) VALUES ('room', 0)",
        [],
    )?;
    let device = conn.last_insert_rowid();
    let setup = Instant::now();
    fill(
        &conn,
        id,
        device,
        50,
        3600,
        now,
        Some(&dir.path().join("offboard/blobs")),
    )?;
    eprintln!(
        "made 180,000 segments and blobs in {:.1} s",
        setup.elapsed().as_secs_f64()
    );
    let user = accounts::find_any_user(&conn, "leaver")?.expect("the user exists");
    let key = vault.audit_key();
    offboarding::mark_leaving(&conn, &key, "bench", &user, Some(fp), 0, now)?;
    let rss_before = peak_rss_mb();
    let t0 = Instant::now();
    offboarding::shred_key(&conn, &vault, id, now)?;
    let shred = t0.elapsed();
    offboarding::finish(&conn, &vault, &blobs, &key, id, now)?;
    let purge = t0.elapsed();
    let left: i64 = conn.query_row("SELECT COUNT(*) FROM segments", [], |r| r.get(0))?;
    assert_eq!(left, 0, "everything was purged");
    println!(
        "| offboard 100 h (180,000 segments): key shredded | {:.1} ms | < 1 s |",
        shred.as_secs_f64() * 1000.0
    );
    println!(
        "| offboard 100 h: everything purged | {:.1} s | < 60 s |",
        purge.as_secs_f64()
    );
    println!(
        "| offboard 100 h: peak RSS (before / after) | {rss_before:.0} / {:.0} MB | |",
        peak_rss_mb()
    );
    drop((conn, vault, blobs));

    // A sweep over 1,000,000 segment rows, nothing due.
    let (conn, vault, blobs) = open("sweep")?;
    let id = accounts::add_user(&conn, "busy", "Busy", "a-long-password", &[Role::Teacher])?;
    vault.create_key(id, now)?;
    conn.execute(
        "INSERT INTO devices (name, created_at) VALUES ('room', 0)",
        [],
    )?;
    let device = conn.last_insert_rowid();
    fill(&conn, id, device, 556, 1800, now, None)?;
    let key = vault.audit_key();
    let t0 = Instant::now();
    let swept = sweep::sweep(&conn, &vault, &blobs, &key, now)?;
    let took = t0.elapsed();
    let rows: i64 = conn.query_row("SELECT COUNT(*) FROM segments", [], |r| r.get(0))?;
    assert_eq!(rows, 556 * 1800, "nothing was due");
    let _ = swept;
    println!(
        "| retention sweep over {rows} segment rows, nothing due | {:.1} ms | < 1 s |",
        took.as_secs_f64() * 1000.0
    );
    Ok(())
}
