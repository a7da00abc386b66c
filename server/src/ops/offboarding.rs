//! A teacher leaving the school: disabled at once, deleted for good after the grace period, with a
//! signed receipt that a DPO can check later.
//!
//! Marking ([`mark_leaving`]) disables the account, ends its sessions and removes its device code in
//! one transaction; from then on nobody can play the teacher's recordings (see [`crate::domain::access`])
//! and devices cannot fetch the key. After the grace period [`finish`] deletes, in this order, the
//! private key (crypto-shred, see [`crate::store::vault::Vault::shred`]: from then on nothing of theirs
//! can be read, in this server or in any copy), each recording (rows, comments by anyone, shares;
//! one transaction each, counted in the `leaving` row), the ciphertext files, and finally the
//! account row with everything still pointing at it, writing the receipt in that same last
//! transaction. Every step can be repeated, so a deletion cut short by a crash is
//! finished by the next sweep.

use crate::domain::clock;
use crate::domain::people::{User, UserId};
use crate::domain::receipt::Receipt;
use crate::store::leaving;
use crate::store::locks::Take;
use clock::DAY;
use rusqlite::{Connection, Transaction, TransactionBehavior};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OffboardError {
    #[error("{0} is already marked as leaving")]
    AlreadyLeaving(String),
    #[error("{0} is not marked as leaving")]
    NotLeaving(String),
    #[error("the deletion of {0} has started and cannot be cancelled")]
    Started(String),
    #[error(transparent)]
    Db(#[from] rusqlite::Error),
}

/// Marks `user` as leaving: disabled now, deleted `grace_days` from `now` (0: at the next sweep).
pub fn mark_leaving(
    c: &Connection,
    audit_key: &[u8; 32],
    actor: &str,
    user: &User,
    fingerprint: Option<String>,
    grace_days: u32,
    now: i64,
) -> Result<i64, OffboardError> {
    let tx = Transaction::new_unchecked(c, TransactionBehavior::Immediate)?;
    let delete_after = now + i64::from(grace_days) * DAY;
    if !leaving::mark(
        &tx,
        user.id,
        &user.audit_id,
        now,
        delete_after,
        fingerprint.as_deref(),
    )? {
        return Err(OffboardError::AlreadyLeaving(user.username.clone()));
    }
    crate::store::accounts::disable_in(&tx, user.id)?;
    crate::store::audit::append(&tx, audit_key, actor, "offboard", &user.audit_id)?;
    tx.commit()?;
    Ok(delete_after)
}

/// Cancels a pending deletion. The account stays disabled until an admin enables it again.
pub fn cancel(
    c: &Connection,
    audit_key: &[u8; 32],
    actor: &str,
    user: &User,
) -> Result<(), OffboardError> {
    let tx = Transaction::new_unchecked(c, TransactionBehavior::Immediate)?;
    match leaving::started(&tx, user.id)? {
        None => return Err(OffboardError::NotLeaving(user.username.clone())),
        Some(Some(_)) => return Err(OffboardError::Started(user.username.clone())),
        Some(None) => {}
    }
    leaving::remove(&tx, user.id)?;
    crate::store::audit::append(&tx, audit_key, actor, "offboard-cancel", &user.audit_id)?;
    tx.commit()?;
    Ok(())
}

/// Finishes the deletion of every leaving teacher whose grace period is over at `now`. Returns the
/// ids of the receipts written.
pub fn finish_due(
    db: &impl Take<Connection>,
    vault: &impl Take<crate::store::vault::Vault>,
    blobs: &dyn crate::store::blobs::BlobStore,
    audit_key: &[u8; 32],
    now: i64,
) -> anyhow::Result<Vec<String>> {
    let due = leaving::due(&*db.take()?, now)?;
    due.into_iter()
        .map(|user_id| finish(db, vault, blobs, audit_key, user_id, now))
        .collect()
}

/// The first step of [`finish`]: the teacher's private key is shredded, so everything of theirs is
/// unreadable from this moment, however long deleting the rest takes. The fingerprint is kept in
/// the `leaving` row for the receipt, so a deletion resumed after a crash still names it.
pub fn shred_key(
    db: &impl Take<Connection>,
    vault: &impl Take<crate::store::vault::Vault>,
    user_id: UserId,
    now: i64,
) -> anyhow::Result<()> {
    leaving::start(&*db.take()?, user_id, now)?;
    let shredded = vault.take()?.shred(user_id, now)?;
    if let Some(fp) = shredded {
        leaving::set_fingerprint(&*db.take()?, user_id, &fp)?;
    }
    Ok(())
}

/// Deletes everything of one leaving teacher (see the module documentation for the order). The
/// database and the vault are taken per step: the key, each recording, the files, the account.
pub fn finish(
    db: &impl Take<Connection>,
    vault: &impl Take<crate::store::vault::Vault>,
    blobs: &dyn crate::store::blobs::BlobStore,
    audit_key: &[u8; 32],
    user_id: UserId,
    now: i64,
) -> anyhow::Result<String> {
    shred_key(db, vault, user_id, now)?;
    let recs = crate::store::recordings::of_owner(&*db.take()?, user_id)?;
    for rec in recs {
        let c = db.take()?;
        let tx = Transaction::new_unchecked(&c, TransactionBehavior::Immediate)?;
        let removed = crate::store::deletion::delete_rows_in(
            &tx,
            audit_key,
            std::slice::from_ref(&rec),
            "offboarding",
            "offboard-delete",
        )?;
        leaving::count(&tx, user_id, &removed)?;
        tx.commit()?;
    }
    crate::store::deletion::sweep_blobs(db, blobs)?;

    let key = vault.take()?.receipt_signing_key();
    let c = db.take()?;
    let tx = Transaction::new_unchecked(&c, TransactionBehavior::Immediate)?;
    let done = leaving::progress(&tx, user_id)?;
    let (recordings, segments) = (done.recordings, done.segments);
    let receipt = Receipt {
        version: 1,
        receipt_id: uuid::Uuid::new_v4().to_string(),
        subject: done.subject,
        recordings,
        segments,
        bytes: done.bytes,
        key_fingerprint: done.fingerprint,
        marked_at: done.marked_at,
        started_at: done.started_at,
        finished_at: now.max(done.started_at),
        signer: hex::encode(key.verifying_key().as_bytes()),
    }
    .sign(&key);
    // The account row goes last; sessions, device codes, shares to them and their comments on
    // others' recordings go with it (ON DELETE CASCADE).
    leaving::delete_account(&tx, user_id)?;
    leaving::remove(&tx, user_id)?;
    let id = receipt.receipt.receipt_id.clone();
    crate::store::receipts::keep(&tx, &id, now, &serde_json::to_string_pretty(&receipt)?)?;
    crate::store::audit::append(&tx, audit_key, "offboarding", "offboard-complete", &id)?;
    tx.commit()?;
    crate::store::db::forget(&c)?;
    tracing::info!(receipt = %id, recordings, segments, "a leaving teacher's data was deleted");
    Ok(id)
}
