//! Backups and restores. A backup is a folder with consistent copies of both databases (SQLite's
//! online backup API, so the server keeps running) and a `backup.json`; blobs are not copied but
//! referenced: they are immutable, content-addressed ciphertext that the school's file backup
//! copies as they are. A restore puts the databases back and then shreds, again, every teacher key
//! that was shredded after the backup was taken: the shred list is kept in a log beside the master
//! key (outside `data_dir`, so it is not rolled back with it), and the vault applies it whenever it
//! opens. A restore therefore never brings a deleted teacher's videos back; the restored account
//! is marked as leaving with no grace period, so the next sweep finishes deleting it.

use crate::domain::people::UserId;
use crate::store::vault::Vault;
use anyhow::{bail, Context};
use rusqlite::{Connection, DatabaseName};
use serde::{Deserialize, Serialize};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

const FORMAT: u32 = 1;
const DB: &str = "lessonlens.db";
const VAULT: &str = "vault.db";
const INFO: &str = "backup.json";

#[derive(Debug, Serialize, Deserialize)]
pub struct BackupInfo {
    pub format: u32,
    pub created_at: i64,
    /// Blobs the backed-up database refers to (copy `data_dir/blobs`, or the bucket, with the school's file
    /// backup; they are ciphertext).
    pub blobs: i64,
    pub blob_bytes: i64,
}

/// Writes a backup of `conn` and `vault` into the new folder `dest` (mode 0700).
pub fn backup(
    conn: &Connection,
    vault: &Vault,
    dest: &Path,
    now: i64,
) -> anyhow::Result<BackupInfo> {
    if dest.exists() {
        bail!(
            "{} already exists; give a new folder so no backup is overwritten",
            dest.display()
        );
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dest)
        .with_context(|| format!("cannot create {}", dest.display()))?;
    conn.backup(DatabaseName::Main, dest.join(DB), None)
        .context("backing up the metadata database failed")?;
    vault
        .backup_to(&dest.join(VAULT))
        .context("backing up the key vault failed")?;
    let (blobs, blob_bytes) = crate::store::segments::totals(conn)?;
    let info = BackupInfo {
        format: FORMAT,
        created_at: now,
        blobs,
        blob_bytes,
    };
    crate::store::vault::write_secret_file(
        &dest.join(INFO),
        serde_json::to_string_pretty(&info)?.as_bytes(),
    )?;
    std::fs::File::open(dest)?.sync_all()?;
    Ok(info)
}

/// What a restore did.
#[derive(Debug)]
pub struct Restored {
    pub info: BackupInfo,
    /// Where the databases that were replaced were moved.
    pub previous: Option<PathBuf>,
    /// Teachers in the backup whose keys had been shredded since: shredded again and marked as
    /// leaving (their pseudonyms).
    pub shredded_again: Vec<String>,
}

/// Puts the backup in `src` in place of the databases in `data_dir` (the server must be
/// stopped), keeping the replaced ones in `data_dir/pre-restore-<now>`. `open_vault` opens the
/// restored vault with the shred log, which shreds what was shredded after the backup.
pub fn restore(
    src: &Path,
    data_dir: &Path,
    open_vault: impl FnOnce(&Path) -> anyhow::Result<(Vault, Vec<(UserId, String)>)>,
    audit_key: impl FnOnce(&Vault) -> zeroize::Zeroizing<[u8; 32]>,
    now: i64,
) -> anyhow::Result<Restored> {
    let info: BackupInfo = serde_json::from_slice(
        &std::fs::read(src.join(INFO))
            .with_context(|| format!("{} is not a lessonlens backup folder", src.display()))?,
    )
    .context("backup.json is damaged")?;
    if info.format != FORMAT {
        bail!(
            "this backup has format {}, this build reads format {FORMAT}",
            info.format
        );
    }
    for f in [DB, VAULT] {
        if !src.join(f).exists() {
            bail!("the backup lacks {f}");
        }
    }
    // Move the current databases (and their WAL files, which must never meet another database)
    // out of the way.
    let previous = data_dir.join(format!("pre-restore-{now}"));
    let mut moved = false;
    for name in [DB, VAULT] {
        for suffix in ["", "-wal", "-shm"] {
            let from = data_dir.join(format!("{name}{suffix}"));
            if from.exists() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&previous)?;
                std::fs::rename(&from, previous.join(format!("{name}{suffix}")))?;
                moved = true;
            }
        }
    }
    for name in [DB, VAULT] {
        let to = data_dir.join(name);
        std::fs::copy(src.join(name), &to)
            .with_context(|| format!("cannot copy {name} into {}", data_dir.display()))?;
        std::fs::File::open(&to)?.sync_all()?;
    }
    std::fs::File::open(data_dir)?.sync_all()?;

    let (vault, reshredded) = open_vault(&data_dir.join(VAULT))?;
    let key = audit_key(&vault);
    let conn = crate::store::db::open(&data_dir.join(DB))?;
    let mut shredded_again = Vec::new();
    for (user_id, fingerprint) in reshredded {
        let Some(user) = crate::store::accounts::by_id(&conn, user_id)? else {
            continue;
        };
        match crate::ops::offboarding::mark_leaving(
            &conn,
            &key,
            "restore",
            &user,
            Some(fingerprint),
            0,
            now,
        ) {
            Ok(_) | Err(crate::ops::offboarding::OffboardError::AlreadyLeaving(_)) => {}
            Err(e) => return Err(e.into()),
        }
        // A pending deletion restored with its old date is due now too.
        crate::store::leaving::due_by(&conn, user.id, now)?;
        shredded_again.push(user.audit_id);
    }
    Ok(Restored {
        info,
        previous: moved.then_some(previous),
        shredded_again,
    })
}
