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
use crate::domain::people::User;
use crate::store::locks::Take;
use clock::DAY;
use ed25519_dalek::{Signature, Signer, Verifier, VerifyingKey};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use serde::{Deserialize, Serialize};

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
    let inserted = tx.execute(
        "INSERT OR IGNORE INTO leaving (user_id, subject, marked_at, delete_after, fingerprint)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![user.id, user.audit_id, now, delete_after, fingerprint],
    )?;
    if inserted == 0 {
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
    let started: Option<Option<i64>> = tx
        .query_row(
            "SELECT started_at FROM leaving WHERE user_id = ?1",
            [user.id],
            |r| r.get(0),
        )
        .optional()?;
    match started {
        None => return Err(OffboardError::NotLeaving(user.username.clone())),
        Some(Some(_)) => return Err(OffboardError::Started(user.username.clone())),
        Some(None) => {}
    }
    tx.execute("DELETE FROM leaving WHERE user_id = ?1", [user.id])?;
    crate::store::audit::append(&tx, audit_key, actor, "offboard-cancel", &user.audit_id)?;
    tx.commit()?;
    Ok(())
}

/// What a deletion receipt says. It names nobody: `subject` is the pseudonym the audit log used
/// for the person, and it holds counts, a key fingerprint and times only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    pub version: u32,
    pub receipt_id: String,
    pub subject: String,
    pub recordings: u64,
    pub segments: u64,
    pub bytes: u64,
    /// The fingerprint of the private key that was shredded (none if the person had no key).
    pub key_fingerprint: Option<String>,
    pub marked_at: i64,
    pub started_at: i64,
    pub finished_at: i64,
    /// The server's receipt-signing public key (Ed25519, hex).
    pub signer: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedReceipt {
    pub receipt: Receipt,
    /// Ed25519 signature (hex) over [`Receipt::signed_bytes`].
    pub signature: String,
}

impl Receipt {
    fn signed_bytes(&self) -> Vec<u8> {
        let mut bytes = b"lessonlens-deletion-receipt-v1\n".to_vec();
        bytes.extend(serde_json::to_vec(self).expect("a receipt serialises"));
        bytes
    }

    pub fn sign(self, key: &ed25519_dalek::SigningKey) -> SignedReceipt {
        let signature = hex::encode(key.sign(&self.signed_bytes()).to_bytes());
        SignedReceipt {
            receipt: self,
            signature,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReceiptError {
    #[error("this is not a lessonlens deletion receipt: {0}")]
    Malformed(String),
    #[error("the receipt was signed by key {0}, not by this school's server ({1})")]
    OtherSigner(String, String),
    #[error("the signature does not match: the receipt was altered after it was signed")]
    BadSignature,
}

/// Checks a receipt file's text against the expected signer (the school server's public key).
pub fn verify(text: &str, expected: &VerifyingKey) -> Result<Receipt, ReceiptError> {
    let signed: SignedReceipt =
        serde_json::from_str(text).map_err(|e| ReceiptError::Malformed(e.to_string()))?;
    let expected_hex = hex::encode(expected.as_bytes());
    if signed.receipt.signer != expected_hex {
        return Err(ReceiptError::OtherSigner(
            signed.receipt.signer.clone(),
            expected_hex,
        ));
    }
    let sig: [u8; 64] = hex::decode(&signed.signature)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| ReceiptError::Malformed("the signature is not 64 bytes of hex".into()))?;
    expected
        .verify(&signed.receipt.signed_bytes(), &Signature::from_bytes(&sig))
        .map_err(|_| ReceiptError::BadSignature)?;
    Ok(signed.receipt)
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
    let due: Vec<i64> = {
        let c = db.take()?;
        let mut stmt = c.prepare("SELECT user_id FROM leaving WHERE delete_after <= ?1")?;
        let due = stmt
            .query_map([now], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        due
    };
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
    user_id: i64,
    now: i64,
) -> anyhow::Result<()> {
    db.take()?.execute(
        "UPDATE leaving SET started_at = COALESCE(started_at, ?1) WHERE user_id = ?2",
        params![now, user_id],
    )?;
    let shredded = vault.take()?.shred(user_id, now)?;
    if let Some(fp) = shredded {
        db.take()?.execute(
            "UPDATE leaving SET fingerprint = ?1 WHERE user_id = ?2",
            params![fp, user_id],
        )?;
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
    user_id: i64,
    now: i64,
) -> anyhow::Result<String> {
    shred_key(db, vault, user_id, now)?;
    let recs: Vec<String> = {
        let c = db.take()?;
        let mut stmt = c.prepare("SELECT id FROM recordings WHERE owner_id = ?1")?;
        let recs = stmt
            .query_map([user_id], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        recs
    };
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
        tx.execute(
            "UPDATE leaving SET recordings = recordings + ?1, segments = segments + ?2, bytes = bytes + ?3 WHERE user_id = ?4",
            params![removed.recordings, removed.segments, removed.bytes, user_id],
        )?;
        tx.commit()?;
    }
    crate::store::deletion::sweep_blobs(db, blobs)?;

    let key = vault.take()?.receipt_signing_key();
    let c = db.take()?;
    let tx = Transaction::new_unchecked(&c, TransactionBehavior::Immediate)?;
    let (subject, marked_at, started_at, fingerprint, recordings, segments, bytes): (
        String,
        i64,
        i64,
        Option<String>,
        u64,
        u64,
        u64,
    ) = tx.query_row(
        "SELECT subject, marked_at, started_at, fingerprint, recordings, segments, bytes FROM leaving WHERE user_id = ?1",
        [user_id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)),
    )?;
    let receipt = Receipt {
        version: 1,
        receipt_id: uuid::Uuid::new_v4().to_string(),
        subject,
        recordings,
        segments,
        bytes,
        key_fingerprint: fingerprint,
        marked_at,
        started_at,
        finished_at: now.max(started_at),
        signer: hex::encode(key.verifying_key().as_bytes()),
    }
    .sign(&key);
    // The account row goes last; sessions, device codes, shares to them and their comments on
    // others' recordings go with it (ON DELETE CASCADE).
    tx.execute("DELETE FROM users WHERE id = ?1", [user_id])?;
    tx.execute("DELETE FROM leaving WHERE user_id = ?1", [user_id])?;
    let id = receipt.receipt.receipt_id.clone();
    crate::store::receipts::keep(&tx, &id, now, &serde_json::to_string_pretty(&receipt)?)?;
    crate::store::audit::append(&tx, audit_key, "offboarding", "offboard-complete", &id)?;
    tx.commit()?;
    crate::store::db::forget(&c)?;
    tracing::info!(receipt = %id, recordings, segments, "a leaving teacher's data was deleted");
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(key: &ed25519_dalek::SigningKey) -> SignedReceipt {
        Receipt {
            version: 1,
            receipt_id: "r-1".into(),
            subject: "u-00".into(),
            recordings: 3,
            segments: 90,
            bytes: 123_456,
            key_fingerprint: Some("ab".repeat(16)),
            marked_at: 10,
            started_at: 20,
            finished_at: 30,
            signer: hex::encode(key.verifying_key().as_bytes()),
        }
        .sign(key)
    }

    #[test]
    fn a_genuine_receipt_verifies_and_a_tampered_one_does_not() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let other = ed25519_dalek::SigningKey::from_bytes(&[8; 32]);
        let text = serde_json::to_string_pretty(&receipt(&key)).unwrap();
        assert_eq!(verify(&text, &key.verifying_key()).unwrap().recordings, 3);
        let tampered = text.replace("\"recordings\": 3", "\"recordings\": 2");
        assert_ne!(tampered, text);
        assert_eq!(
            verify(&tampered, &key.verifying_key()),
            Err(ReceiptError::BadSignature)
        );
        // Signed by someone else: refused even though it is self-consistent.
        let forged = serde_json::to_string(&receipt(&other)).unwrap();
        assert!(matches!(
            verify(&forged, &key.verifying_key()),
            Err(ReceiptError::OtherSigner(..))
        ));
        let extra = text.replacen('{', "{\"name\": \"J Smith\",", 1);
        assert!(matches!(
            verify(&extra, &key.verifying_key()),
            Err(ReceiptError::Malformed(_))
        ));
    }
}
