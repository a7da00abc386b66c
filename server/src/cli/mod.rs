//! The server's console commands, one module per group: [`user`] (and the roster import),
//! [`device`], [`retention`] (with holds and receipts), [`data`] (subject access export, backup,
//! restore, the audit chain) and [`serve`]. `main.rs` only parses the command line and dispatches.

pub mod data;
pub mod device;
pub mod retention;
pub mod serve;
pub mod user;

use anyhow::{bail, Context};
use lessonlens_server::store::accounts;
use lessonlens_server::store::{open, Opened};

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
