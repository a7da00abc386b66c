//! `lessonlens-server export|backup|restore|audit-verify`: a person's data, the databases, and
//! the audit log's chain.

use super::{any_user, audit, open, Opened};
use anyhow::{bail, Context};
use lessonlens_server::config::Config;
use lessonlens_server::domain::clock;
use lessonlens_server::ops::backup;
use lessonlens_server::store::vault::{MasterKey, Vault};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// `export USERNAME --out FILE`: everything held about a person, for a subject access request.
pub fn export(config: Config, username: &str, out: &Path) -> anyhow::Result<()> {
    let o = open(config)?;
    let user = any_user(&o, username)?;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .with_context(|| format!("cannot create {} (it must not exist yet)", out.display()))?;
    let blobs = lessonlens_server::store::blobs::open(&o.config)?;
    audit(&o, "subject-access-export", &user.audit_id)?;
    let Opened { conn, vault, .. } = o;
    let (db, vault) = (std::sync::Mutex::new(conn), std::sync::Mutex::new(vault));
    lessonlens_server::ops::export::write_archive(
        &db,
        &vault,
        blobs.as_ref(),
        &user,
        clock::now(),
        std::io::BufWriter::new(&file),
    )?;
    file.sync_all()?;
    println!("everything held about {username} is in {}", out.display());
    Ok(())
}

/// `backup DEST`: both databases, consistently, while the server runs.
pub fn backup(config: Config, dest: &Path) -> anyhow::Result<()> {
    let o = open(config)?;
    let info = backup::backup(&o.conn, &o.vault, dest, clock::now())?;
    audit(&o, "backup", "")?;
    println!(
        "backup written to {}: both databases; {} blobs ({} bytes) referenced in {}",
        dest.display(),
        info.blobs,
        info.blob_bytes,
        o.config.storage_place()
    );
    Ok(())
}

/// `restore SRC`: a backup's databases back (the server stopped).
pub fn restore(config: Config, src: &Path) -> anyhow::Result<()> {
    let log = config.shred_log_path();
    let master = || MasterKey::load_or_create(&config.master_key_file);
    if !config.master_key_file.exists() {
        bail!(
            "the master key {} is missing: restore it from its own backup first",
            config.master_key_file.display()
        );
    }
    // The current vault's shreds go into the shred list before it is moved aside.
    if config.vault_path().exists() {
        drop(Vault::open(&config.vault_path(), master()?)?.with_shred_log(&log)?);
    }
    let restored = backup::restore(
        src,
        &config.data_dir,
        |path| Vault::open(path, master()?)?.with_shred_log(&log),
        |v| v.audit_key(),
        clock::now(),
    )?;
    if let Some(p) = &restored.previous {
        println!("the databases it replaced are in {}", p.display());
    }
    println!(
        "restored the backup of {} (Unix); {} teacher key(s) deleted since were shredded again{}",
        restored.info.created_at,
        restored.shredded_again.len(),
        if restored.shredded_again.is_empty() {
            String::new()
        } else {
            format!(
                " ({}); their accounts are deleted at the next sweep",
                restored.shredded_again.join(", ")
            )
        }
    );
    Ok(())
}

/// `audit-verify`: no audit entry altered or removed.
pub fn audit_verify(config: Config) -> anyhow::Result<()> {
    let o = open(config)?;
    let v = lessonlens_server::store::audit::verify(&o.conn, &o.vault.audit_key())?;
    println!("audit log intact: {} chained entries", v.chained);
    Ok(())
}
