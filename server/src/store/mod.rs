//! What is kept, and how: the metadata database, the key vault, the blob store and the TLS
//! material. Each module answers with its own errors (or rusqlite's), never with HTTP's.

pub mod access;
pub mod accounts;
pub mod audit;
pub mod blobs;
pub mod bookings;
pub mod comments;
pub mod db;
pub mod deletion;
pub mod devices;
pub mod groups;
pub mod leaving;
pub mod locks;
pub mod receipts;
pub mod recordings;
pub mod retention;
pub mod roster;
pub mod segments;
pub mod shares;
pub mod subject;
pub mod tls;
pub mod vault;

use crate::config::Config;
use crate::domain::clock;
use crate::domain::people::UserId;
use anyhow::{bail, Context};
use vault::{MasterKey, Vault};

/// The databases and the vault, opened (for the server or a console command).
pub struct Opened {
    pub config: Config,
    pub conn: rusqlite::Connection,
    pub vault: Vault,
    /// The account that holds lessons recorded offline until they are claimed.
    pub unassigned: UserId,
}

/// Opens the data folder: the database, the vault, and the school's unassigned
/// key (made if missing).
pub fn open(config: Config) -> anyhow::Result<Opened> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data_dir {}", config.data_dir.display()))?;
    if !config.master_key_file.exists() && config.vault_path().exists() {
        // A new master key would make every key in the vault unreadable.
        bail!(
            "master key file {} is missing but the key vault {} exists: restore the master key from \
             its backup (or, on a server with no teachers yet, remove the vault to start afresh)",
            config.master_key_file.display(),
            config.vault_path().display()
        );
    }
    let master = MasterKey::load_or_create(&config.master_key_file)?;
    let conn = db::open(&config.db_path())?;
    let (vault, _) =
        Vault::open(&config.vault_path(), master)?.with_shred_log(&config.shred_log_path())?;
    // The school's unassigned key, which devices seal to while the server is unreachable.
    let unassigned = accounts::ensure_unassigned(&conn)?;
    if vault.public_key(unassigned)?.is_none() {
        vault.create_key(unassigned, clock::now())?;
    }
    Ok(Opened {
        config,
        conn,
        vault,
        unassigned,
    })
}

// A person's id as the database keeps it: an integer.
impl rusqlite::ToSql for UserId {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        self.0.to_sql()
    }
}

impl rusqlite::types::FromSql for UserId {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        i64::column_result(value).map(UserId)
    }
}
