//! The server's console commands, one module per group: [`user`] (and the roster import),
//! [`device`], [`retention`] (with holds and receipts), [`data`] (subject access export, backup,
//! restore, the audit chain) and [`serve`]. `main.rs` only parses the command line and dispatches.

pub mod data;
pub mod device;
pub mod retention;
pub mod serve;
pub mod user;

use anyhow::{bail, Context};
use lessonlens_server::config::Config;
use lessonlens_server::domain::clock;
use lessonlens_server::store::accounts;
use lessonlens_server::store::db;
use lessonlens_server::store::vault::{MasterKey, Vault};

/// The databases and the vault, opened for a command.
pub struct Opened {
    pub config: Config,
    pub conn: rusqlite::Connection,
    pub vault: Vault,
    /// The account that holds lessons recorded offline until they are claimed.
    pub unassigned: i64,
}

/// Opens the data folder for a command: the database, the vault, and the school's unassigned
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

/// Any person's account by username (not the unassigned one).
pub fn any_user(
    o: &Opened,
    username: &str,
) -> anyhow::Result<lessonlens_server::domain::people::User> {
    let user = accounts::find_any_user(&o.conn, username)?
        .with_context(|| format!("no user called {username:?}"))?;
    if user.id == o.unassigned {
        bail!("{username} holds the lessons recorded offline until their teachers claim them; it is not a person's account");
    }
    Ok(user)
}

/// Records a console action in the audit log (actor "cli").
pub fn audit(o: &Opened, action: &str, target: &str) -> anyhow::Result<()> {
    lessonlens_server::store::audit::record(&o.conn, &o.vault.audit_key(), "cli", action, target)?;
    Ok(())
}
