//! The master key and the key vault.
//!
//! The vault is its own SQLite file (`vault.db`) with `secure_delete=ON`, so a deleted key's bytes
//! are overwritten rather than left in free pages. Each teacher's X25519 secret key is stored
//! wrapped (AES-256-GCM) by the master key, with the owner's id as associated data so a wrapped key
//! cannot be moved to another account. The master key is a 32-byte file, mode 0600, kept apart from
//! the data folder: a copy of `data_dir` alone opens nothing.

use crate::domain::clock;
use crate::domain::people::UserId;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use anyhow::{bail, Context};
use lessonlens_proto::{KeyFingerprint, PublicKey, RecordingId, SecretKey};
use rand_core::{OsRng, RngCore, TryRngCore};
use rusqlite::{params, Connection, OptionalExtension};
use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

use crate::domain::second_factor::TotpSecret;

/// Writes a file only its owner can read, creating it with mode 0600 from the start (never
/// world-readable, not even for a moment).
pub fn write_secret_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create secret file {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

/// HMAC-SHA256 of the concatenated `parts` under `key`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    use hmac::Mac;
    let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(key).expect("any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// The key that wraps every vault entry. Wiped from memory when dropped.
pub struct MasterKey(Zeroizing<[u8; 32]>);

/// AES-256-GCM under `key` with a fresh random nonce: (ciphertext and tag, nonce).
fn aead_seal(key: &[u8; 32], aad: &[u8], msg: &[u8]) -> (Vec<u8>, [u8; 12]) {
    let mut nonce = [0u8; 12];
    OsRng.unwrap_err().fill_bytes(&mut nonce);
    let ct = Aes256Gcm::new_from_slice(key)
        .expect("32-byte key")
        .encrypt(Nonce::from_slice(&nonce), Payload { msg, aad })
        .expect("AES-GCM sealing cannot fail");
    (ct, nonce)
}

/// What [`aead_seal`] sealed, if `key`, `aad` and the 12-byte `nonce` open it.
fn aead_open(key: &[u8; 32], aad: &[u8], ct: &[u8], nonce: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if nonce.len() != 12 {
        return None;
    }
    Aes256Gcm::new_from_slice(key)
        .expect("32-byte key")
        .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
        .ok()
        .map(Zeroizing::new)
}

/// The key the TLS private keys are sealed with at rest (the school CA's `tls/ca.key.sealed` and
/// the server's `tls/server.key`), derived from the master key: a copy of `data_dir` without the
/// master key can neither sign as the school nor pass for its server.
#[derive(Clone)]
pub struct TlsSeal(Zeroizing<[u8; 32]>);

impl TlsSeal {
    /// Associated data: which file this is, so one sealed key cannot stand in for the other.
    fn ad(file: &str) -> Vec<u8> {
        [b"lessonlens-tls-key-v1:".as_slice(), file.as_bytes()].concat()
    }

    /// A key (PEM) for `file`, sealed: the random nonce, then AES-256-GCM ciphertext and tag.
    pub fn seal(&self, file: &str, key_pem: &[u8]) -> Vec<u8> {
        let (ct, nonce) = aead_seal(&self.0, &Self::ad(file), key_pem);
        [nonce.as_slice(), &ct].concat()
    }

    /// The key (PEM) from what [`TlsSeal::seal`] made for `file`.
    pub fn open(&self, file: &str, sealed: &[u8]) -> anyhow::Result<Zeroizing<Vec<u8>>> {
        if sealed.len() < 12 + 16 {
            bail!("tls/{file} is too short: damaged");
        }
        let (nonce, ct) = sealed.split_at(12);
        aead_open(&self.0, &Self::ad(file), ct, nonce).with_context(|| {
            format!(
                "tls/{file} does not open with this master key: wrong master_key_file, or the file \
                 was altered"
            )
        })
    }
}

impl MasterKey {
    /// Loads the master key, creating it if the file does not exist. Refuses a file that group or
    /// others can read.
    pub fn load_or_create(path: &Path) -> anyhow::Result<MasterKey> {
        if !path.exists() {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let mut key = Zeroizing::new([0u8; 32]);
            OsRng.unwrap_err().fill_bytes(key.as_mut());
            write_secret_file(path, key.as_ref())?;
            tracing::info!(path = %path.display(), "created a new master key; back it up separately from the data folder");
        }
        let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            bail!(
                "master key file {} has permissions {mode:o}, which lets other users read it; \
                 fix with `chmod 600 {}` and make sure it is owned by the server's user",
                path.display(),
                path.display()
            );
        }
        let bytes = Zeroizing::new(
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?,
        );
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            anyhow::anyhow!(
                "master key file {} must hold exactly 32 bytes",
                path.display()
            )
        })?;
        Ok(MasterKey(Zeroizing::new(key)))
    }

    /// A key for one purpose, derived from the master key (HMAC-SHA256 of the purpose label), so
    /// the key that wraps the vault is never used for anything else.
    fn derive(&self, purpose: &[u8]) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(hmac_sha256(self.0.as_ref(), &[purpose]))
    }

    /// The key that seals the TLS private keys at rest (see [`TlsSeal`]).
    pub fn tls_seal(&self) -> TlsSeal {
        TlsSeal(self.derive(b"lessonlens-ca-key-seal-v1"))
    }

    /// The tag a teacher's device code is looked up by: HMAC under a derived key, so a database
    /// copy without the master key cannot test guesses offline.
    fn code_tag(&self, code: &str) -> Vec<u8> {
        hmac_sha256(
            self.derive(b"lessonlens-teacher-code-key-v1").as_ref(),
            &[code.as_bytes()],
        )
        .to_vec()
    }

    /// What is kept instead of an older device's claim hash (see `proto::manifest::claim_hash`).
    fn claim_tag(&self, hash: &str) -> String {
        let tag = hmac_sha256(
            self.derive(b"lessonlens-claim-hash-key-v1").as_ref(),
            &[hash.as_bytes()],
        );
        format!("{CLAIM_TAG}{}", hex::encode(tag))
    }

    /// Associated data binding a wrapped secret to what it is (`purpose`) and whose it is.
    fn ad(purpose: &[u8], user_id: UserId) -> Vec<u8> {
        let mut ad = purpose.to_vec();
        ad.extend_from_slice(&user_id.0.to_be_bytes());
        ad
    }

    fn seal(&self, purpose: &[u8], user_id: UserId, secret: &[u8]) -> (Vec<u8>, [u8; 12]) {
        aead_seal(&self.0, &Self::ad(purpose, user_id), secret)
    }

    fn open(
        &self,
        purpose: &[u8],
        user_id: UserId,
        wrapped: &[u8],
        nonce: &[u8],
    ) -> anyhow::Result<Zeroizing<Vec<u8>>> {
        if nonce.len() != 12 {
            bail!("vault entry for user {user_id} is damaged (bad nonce length)");
        }
        aead_open(&self.0, &Self::ad(purpose, user_id), wrapped, nonce).with_context(|| {
            format!(
                "vault entry for user {user_id} does not open with this master key \
                 (wrong master_key_file, or the vault was altered)"
            )
        })
    }

    fn wrap(&self, user_id: UserId, sk: &SecretKey) -> (Vec<u8>, [u8; 12]) {
        self.seal(KEY_PURPOSE, user_id, sk.to_bytes().as_ref())
    }

    fn unwrap(&self, user_id: UserId, wrapped: &[u8], nonce: &[u8]) -> anyhow::Result<SecretKey> {
        let pt = self.open(KEY_PURPOSE, user_id, wrapped, nonce)?;
        Ok(SecretKey::from_bytes(&pt)?)
    }
}

const KEY_PURPOSE: &[u8] = b"lessonlens-vault-v1";
/// How a kept claim made from an older device's hash begins (see [`Vault::keepable_claim`]).
const CLAIM_TAG: &str = "hmac:";
const TOTP_PURPOSE: &[u8] = b"lessonlens-totp-v1";

/// The key vault: a separate SQLite database of wrapped teacher keys (and of two-step sign-in
/// secrets, wrapped the same way).
pub struct Vault {
    conn: Connection,
    master: MasterKey,
    /// Fingerprints of every key ever shredded, one per line, kept outside `data_dir` (beside the
    /// master key) so that restoring an older vault cannot bring a key back.
    shred_log: Option<std::path::PathBuf>,
    /// Teacher keys unwrapped in the last [`RECENT_KEY_LIFETIME`], so that players asking for a
    /// segment every 2 s (several at once) do not unwrap and check the key each time.
    recent: RefCell<HashMap<UserId, RecentKey>>,
}

/// How long an unwrapped teacher key is reused after it was unwrapped. With the server's sweep
/// every [`FORGET_EVERY`], no key stays in memory longer than a minute.
const RECENT_KEY_LIFETIME: Duration = Duration::from_secs(55);

/// How often the running server drops expired keys ([`Vault::forget_expired`]).
pub const FORGET_EVERY: Duration = Duration::from_secs(5);

// The README promises a minute at most (issue 14.7: it used to be up to two).
const _: () = assert!(RECENT_KEY_LIFETIME.as_secs() + FORGET_EVERY.as_secs() <= 60);

/// An unwrapped key, with the row it came from: it is used only while its row is unchanged.
struct RecentKey {
    wrapped: Vec<u8>,
    nonce: Vec<u8>,
    public: Vec<u8>,
    unwrapped_at: Instant,
    key: Arc<SecretKey>,
}

impl Vault {
    pub fn open(path: &Path, master: MasterKey) -> anyhow::Result<Vault> {
        let conn = Connection::open(path)
            .with_context(|| format!("cannot open the key vault {}", path.display()))?;
        conn.execute_batch(
            "PRAGMA secure_delete = ON;
             PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             CREATE TABLE IF NOT EXISTS teacher_keys (
                 user_id INTEGER PRIMARY KEY,
                 fingerprint TEXT NOT NULL UNIQUE,
                 public_key BLOB NOT NULL,
                 wrapped_secret BLOB NOT NULL,
                 nonce BLOB NOT NULL,
                 created_at INTEGER NOT NULL
             );
             CREATE TABLE IF NOT EXISTS shredded_keys (
                 fingerprint TEXT PRIMARY KEY,
                 shredded_at INTEGER NOT NULL
             );
             CREATE TABLE IF NOT EXISTS totp_secrets (
                 user_id INTEGER PRIMARY KEY,
                 wrapped BLOB NOT NULL,
                 nonce BLOB NOT NULL,
                 confirmed INTEGER NOT NULL DEFAULT 0,
                 last_step INTEGER
             );",
        )?;
        Ok(Vault {
            conn,
            master,
            shred_log: None,
            recent: RefCell::default(),
        })
    }

    /// Keeps the shred list in `log` from now on, and applies it: a key on the list that is in
    /// this vault (an older vault was restored) is shredded again. Returns those keys as
    /// (user id, fingerprint).
    pub fn with_shred_log(mut self, log: &Path) -> anyhow::Result<(Vault, Vec<(UserId, String)>)> {
        let listed: std::collections::BTreeSet<String> = match std::fs::read_to_string(log) {
            Ok(text) => text.lines().map(str::to_string).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Default::default(),
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot read the shred list {}", log.display()))
            }
        };
        self.shred_log = Some(log.to_path_buf());
        // Shreds from before the log existed go into it.
        let mut stmt = self.conn.prepare("SELECT fingerprint FROM shredded_keys")?;
        let known: Vec<String> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        drop(stmt);
        for fp in known.iter().filter(|fp| !listed.contains(*fp)) {
            self.log_shred(fp)?;
        }
        let mut again = Vec::new();
        for fp in &listed {
            let owner: Option<UserId> = self
                .conn
                .query_row(
                    "SELECT user_id FROM teacher_keys WHERE fingerprint = ?1",
                    [fp],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(user_id) = owner {
                tracing::warn!(fingerprint = %fp, "a key shredded earlier is in this vault (an older vault was restored): shredding it again");
                self.shred(user_id, clock::now())?;
                again.push((user_id, fp.clone()));
            }
        }
        Ok((self, again))
    }

    /// Appends `fp` to the shred log and makes it durable.
    fn log_shred(&self, fp: &str) -> anyhow::Result<()> {
        let Some(log) = &self.shred_log else {
            return Ok(());
        };
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(log)
            .with_context(|| format!("cannot write the shred list {}", log.display()))?;
        std::io::Write::write_all(&mut f, format!("{fp}\n").as_bytes())?;
        f.sync_all()?;
        Ok(())
    }

    /// A consistent copy of the vault at `dest` (SQLite's online backup).
    pub fn backup_to(&self, dest: &Path) -> anyhow::Result<()> {
        self.conn.backup(rusqlite::DatabaseName::Main, dest, None)?;
        Ok(())
    }

    /// The key that seals the TLS private keys at rest (see [`TlsSeal`]).
    pub fn tls_seal(&self) -> TlsSeal {
        self.master.tls_seal()
    }

    /// The lookup tag of a teacher's device code.
    pub fn code_tag(&self, code: &str) -> Vec<u8> {
        self.master.code_tag(code)
    }

    /// The claim to keep for an offline lesson: a sealed claim as it is; an older device's
    /// reversible hash of the code replaced by an HMAC of it under the master key.
    pub fn keepable_claim(&self, claim: String) -> String {
        if lessonlens_proto::manifest::is_claim_hash(&claim) {
            self.master.claim_tag(&claim)
        } else {
            claim
        }
    }

    /// Whether `code` matches a kept claim that [`Vault::keepable_claim`] made from an older
    /// device's hash (constant-time). False for any other claim.
    pub fn tagged_claim_matches(&self, kept: &str, rec: RecordingId, code: &str) -> bool {
        use subtle::ConstantTimeEq;
        if !kept.starts_with(CLAIM_TAG) {
            return false;
        }
        let expected = self
            .master
            .claim_tag(&lessonlens_proto::manifest::claim_hash(rec, code));
        kept.as_bytes().ct_eq(expected.as_bytes()).into()
    }

    /// The key that signs the cookie of a browser someone signed in with.
    pub fn known_browser_key(&self) -> Zeroizing<[u8; 32]> {
        self.master.derive(b"lessonlens-known-browser-v1")
    }

    /// The key that seals the audit log's hash chain.
    pub fn audit_key(&self) -> Zeroizing<[u8; 32]> {
        self.master.derive(b"lessonlens-audit-key-v1")
    }

    /// Makes and stores a fresh key pair for `user_id`; returns the public key.
    pub fn create_key(&self, user_id: UserId, now: i64) -> anyhow::Result<PublicKey> {
        let (sk, pk) = SecretKey::generate(&mut OsRng.unwrap_err());
        let (wrapped, nonce) = self.master.wrap(user_id, &sk);
        self.conn.execute(
            "INSERT INTO teacher_keys (user_id, fingerprint, public_key, wrapped_secret, nonce, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![user_id, pk.fingerprint().to_string(), pk.to_bytes().to_vec(), wrapped, nonce.to_vec(), now],
        )?;
        Ok(pk)
    }

    pub fn public_key(&self, user_id: UserId) -> anyhow::Result<Option<PublicKey>> {
        let bytes: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT public_key FROM teacher_keys WHERE user_id = ?1",
                [user_id],
                |r| r.get(0),
            )
            .optional()?;
        bytes
            .map(|b| PublicKey::from_bytes(&b).map_err(Into::into))
            .transpose()
    }

    /// Crypto-shreds `user_id`'s key: the row is deleted (with `secure_delete`, its bytes are
    /// overwritten), its fingerprint goes on the shred list, and the WAL is checkpointed and
    /// truncated so no old copy of the page stays in it. Every recording sealed to the key is
    /// unreadable from then on, in this vault and in any copy made later. Returns the fingerprint,
    /// or `None` if the user had no key (or it was shredded already).
    pub fn shred(&self, user_id: UserId, now: i64) -> anyhow::Result<Option<String>> {
        let tx = rusqlite::Transaction::new_unchecked(
            &self.conn,
            rusqlite::TransactionBehavior::Immediate,
        )?;
        let fp: Option<String> = tx
            .query_row(
                "SELECT fingerprint FROM teacher_keys WHERE user_id = ?1",
                [user_id],
                |r| r.get(0),
            )
            .optional()?;
        self.recent.borrow_mut().remove(&user_id);
        if let Some(fp) = &fp {
            // Logged first: a crash after this line leaves the key listed, and the next open
            // shreds it; the other order could leave a shredded key off the list.
            self.log_shred(fp)?;
            tx.execute(
                "INSERT OR IGNORE INTO shredded_keys (fingerprint, shredded_at) VALUES (?1, ?2)",
                params![fp, now],
            )?;
            tx.execute("DELETE FROM teacher_keys WHERE user_id = ?1", [user_id])?;
        }
        tx.execute("DELETE FROM totp_secrets WHERE user_id = ?1", [user_id])?;
        tx.commit()?;
        let busy: i64 = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
        if busy != 0 {
            bail!("the key vault's WAL could not be checkpointed (busy); the shred is committed, run the deletion again to truncate the WAL");
        }
        Ok(fp)
    }

    /// Stores a new, unconfirmed two-step secret for `user_id` (replacing an unconfirmed one).
    pub fn totp_begin(&self, user_id: UserId, secret: &[u8]) -> anyhow::Result<()> {
        let (wrapped, nonce) = self.master.seal(TOTP_PURPOSE, user_id, secret);
        self.conn.execute(
            "INSERT OR REPLACE INTO totp_secrets (user_id, wrapped, nonce, confirmed, last_step) VALUES (?1, ?2, ?3, 0, NULL)",
            params![user_id, wrapped, nonce.as_slice()],
        )?;
        Ok(())
    }

    pub fn totp(&self, user_id: UserId) -> anyhow::Result<Option<TotpSecret>> {
        let row = self
            .conn
            .query_row(
                "SELECT wrapped, nonce, confirmed, last_step FROM totp_secrets WHERE user_id = ?1",
                [user_id],
                |r| {
                    let sealed: (Vec<u8>, Vec<u8>) = (r.get(0)?, r.get(1)?);
                    let last_step: Option<i64> = r.get(3)?;
                    Ok((sealed, r.get::<_, bool>(2)?, last_step))
                },
            )
            .optional()?;
        row.map(|((wrapped, nonce), confirmed, last_step)| {
            Ok(TotpSecret {
                secret: self.master.open(TOTP_PURPOSE, user_id, &wrapped, &nonce)?,
                confirmed,
                last_step: last_step.map(|s| s as u64),
            })
        })
        .transpose()
    }

    /// Whether `user_id` has two-step sign-in on (without opening the secret).
    pub fn totp_on(&self, user_id: UserId) -> anyhow::Result<bool> {
        Ok(self
            .conn
            .query_row(
                "SELECT confirmed FROM totp_secrets WHERE user_id = ?1",
                [user_id],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(false))
    }

    /// Records that a code for time step `step` was accepted (and, the first time, that the
    /// secret is confirmed). False if a code for this step or a later one was accepted already:
    /// the code is being replayed.
    pub fn totp_accept(&self, user_id: UserId, step: u64) -> anyhow::Result<bool> {
        let n = self.conn.execute(
            "UPDATE totp_secrets SET confirmed = 1, last_step = ?2
             WHERE user_id = ?1 AND (last_step IS NULL OR last_step < ?2)",
            params![user_id, step as i64],
        )?;
        Ok(n == 1)
    }

    /// Forgets `user_id`'s two-step secret (a lost phone: an admin resets it). True if there was one.
    pub fn totp_remove(&self, user_id: UserId) -> anyhow::Result<bool> {
        Ok(self
            .conn
            .execute("DELETE FROM totp_secrets WHERE user_id = ?1", [user_id])?
            > 0)
    }

    /// Whether a key with this fingerprint was shredded.
    pub fn is_shredded(&self, fp: &str) -> anyhow::Result<bool> {
        Ok(self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM shredded_keys WHERE fingerprint = ?1)",
            [fp],
            |r| r.get(0),
        )?)
    }

    /// The fingerprint of `user_id`'s key, if they have one.
    pub fn fingerprint(&self, user_id: UserId) -> anyhow::Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT fingerprint FROM teacher_keys WHERE user_id = ?1",
                [user_id],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// The server's Ed25519 key for signing deletion receipts, derived from the master key.
    pub fn receipt_signing_key(&self) -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&self.master.derive(b"lessonlens-receipt-signing-v1"))
    }

    /// Whose key has this fingerprint.
    pub fn owner_of(&self, fp: &KeyFingerprint) -> anyhow::Result<Option<UserId>> {
        Ok(self
            .conn
            .query_row(
                "SELECT user_id FROM teacher_keys WHERE fingerprint = ?1",
                [fp.to_string()],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Drops unwrapped keys older than [`RECENT_KEY_LIFETIME`] (wiped once no request holds
    /// them). Called on each lookup, and every minute by the server, so an idle server does not
    /// keep them either.
    pub fn forget_expired(&self) {
        self.recent
            .borrow_mut()
            .retain(|_, k| k.unwrapped_at.elapsed() < RECENT_KEY_LIFETIME);
    }

    /// The teacher's secret key, checked against the stored public key so that a swapped public
    /// key column (which would send new recordings to someone else) is noticed.
    ///
    /// A key unwrapped less than a minute ago is reused, but only while its row is as it was:
    /// the row is read every time, so a key shredded by another process (`retention run`) or
    /// altered is not used again. Older entries are dropped, and wiped once no request holds
    /// them.
    pub fn secret_key(&self, user_id: UserId) -> anyhow::Result<Option<Arc<SecretKey>>> {
        let row: Option<(Vec<u8>, Vec<u8>, Vec<u8>)> = self
            .conn
            .query_row(
                "SELECT wrapped_secret, nonce, public_key FROM teacher_keys WHERE user_id = ?1",
                [user_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        self.forget_expired();
        let mut recent = self.recent.borrow_mut();
        let Some((wrapped, nonce, public)) = row else {
            recent.remove(&user_id);
            return Ok(None);
        };
        if let Some(k) = recent.get(&user_id) {
            if k.wrapped == wrapped && k.nonce == nonce && k.public == public {
                return Ok(Some(k.key.clone()));
            }
        }
        let sk = self.master.unwrap(user_id, &wrapped, &nonce)?;
        if sk.public_key().to_bytes().as_slice() != public.as_slice() {
            recent.remove(&user_id);
            bail!("vault entry for user {user_id} was altered: its public key does not belong to its secret key");
        }
        let key = Arc::new(sk);
        recent.insert(
            user_id,
            RecentKey {
                wrapped,
                nonce,
                public,
                unwrapped_at: Instant::now(),
                key: key.clone(),
            },
        );
        Ok(Some(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::people::UserId as U;

    #[test]
    fn refuses_a_readable_master_key() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("master.key");
        MasterKey::load_or_create(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = MasterKey::load_or_create(&path).err().unwrap().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }

    #[test]
    fn a_recent_key_is_reused_only_while_its_row_is_unchanged() {
        let tmp = tempfile::tempdir().unwrap();
        let master = MasterKey::load_or_create(&tmp.path().join("k")).unwrap();
        let vault = Vault::open(&tmp.path().join("vault.db"), master).unwrap();
        vault.create_key(U(7), 0).unwrap();
        vault.create_key(U(8), 0).unwrap();
        let first = vault.secret_key(U(7)).unwrap().unwrap();
        assert!(Arc::ptr_eq(
            &first,
            &vault.secret_key(U(7)).unwrap().unwrap()
        ));

        // Another process (`retention run`) shreds the key: its row is gone, so is the key.
        let other = Connection::open(tmp.path().join("vault.db")).unwrap();
        other
            .execute("DELETE FROM teacher_keys WHERE user_id = 7", [])
            .unwrap();
        assert!(vault.secret_key(U(7)).unwrap().is_none());

        // A public key swapped under a recently used key is noticed.
        vault.secret_key(U(8)).unwrap().unwrap();
        other
            .execute(
                "UPDATE teacher_keys SET public_key = zeroblob(32) WHERE user_id = 8",
                [],
            )
            .unwrap();
        assert!(vault.secret_key(U(8)).is_err());
    }

    #[test]
    fn a_shredded_key_is_gone_from_the_files_and_listed() {
        let tmp = tempfile::tempdir().unwrap();
        let master = MasterKey::load_or_create(&tmp.path().join("k")).unwrap();
        let vault = Vault::open(&tmp.path().join("vault.db"), master).unwrap();
        let pk = vault.create_key(U(7), 0).unwrap();
        let other = vault.create_key(U(8), 0).unwrap();
        let wrapped: Vec<u8> = vault
            .conn
            .query_row(
                "SELECT wrapped_secret FROM teacher_keys WHERE user_id = 7",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let fp = pk.fingerprint().to_string();
        vault
            .secret_key(U(7))
            .unwrap()
            .expect("unwrapped before the shred");
        assert_eq!(vault.shred(U(7), 100).unwrap(), Some(fp.clone()));
        assert!(vault.is_shredded(&fp).unwrap());
        assert!(vault.secret_key(U(7)).unwrap().is_none());
        assert!(vault.secret_key(U(8)).unwrap().is_some(), "other keys stay");
        assert_eq!(
            vault.shred(U(7), 101).unwrap(),
            None,
            "shredding again is a no-op"
        );
        let raw = std::fs::read(tmp.path().join("vault.db")).unwrap();
        let wal = std::fs::read(tmp.path().join("vault.db-wal")).unwrap_or_default();
        assert!(wal.is_empty(), "the WAL was truncated");
        assert!(!raw.windows(wrapped.len()).any(|w| w == wrapped.as_slice()));
        assert!(!raw.windows(32).any(|w| w == pk.to_bytes().as_slice()));
        assert!(
            raw.windows(32).any(|w| w == other.to_bytes().as_slice()),
            "positive control"
        );
    }

    #[test]
    fn two_step_secrets_are_wrapped_accepted_once_per_step_and_shredded() {
        let tmp = tempfile::tempdir().unwrap();
        let master = MasterKey::load_or_create(&tmp.path().join("k")).unwrap();
        let vault = Vault::open(&tmp.path().join("vault.db"), master).unwrap();
        let secret = b"a-secret-of-20-bytes".to_vec();
        vault.totp_begin(U(3), &secret).unwrap();
        let t = vault.totp(U(3)).unwrap().unwrap();
        assert_eq!(
            (t.secret.as_slice(), t.confirmed),
            (secret.as_slice(), false)
        );
        let raw = std::fs::read(tmp.path().join("vault.db")).unwrap();
        let wal = std::fs::read(tmp.path().join("vault.db-wal")).unwrap_or_default();
        for file in [&raw, &wal] {
            assert!(
                !file.windows(secret.len()).any(|w| w == secret),
                "stored in the clear"
            );
        }
        assert!(vault.totp_accept(U(3), 10).unwrap());
        assert!(!vault.totp_accept(U(3), 10).unwrap(), "the same step twice");
        assert!(!vault.totp_accept(U(3), 9).unwrap(), "an older step");
        let t = vault.totp(U(3)).unwrap().unwrap();
        assert_eq!((t.confirmed, t.last_step), (true, Some(10)));
        // Bound to its owner: moved to another account, it does not open.
        vault
            .conn
            .execute("UPDATE totp_secrets SET user_id = 4", [])
            .unwrap();
        assert!(vault.totp(U(4)).is_err());
        vault.shred(U(4), 0).unwrap();
        assert!(vault.totp(U(4)).unwrap().is_none(), "leaving removes it");
    }

    #[test]
    fn keys_round_trip_and_are_bound_to_their_owner() {
        let tmp = tempfile::tempdir().unwrap();
        let master = MasterKey::load_or_create(&tmp.path().join("k")).unwrap();
        let vault = Vault::open(&tmp.path().join("vault.db"), master).unwrap();
        let pk = vault.create_key(U(7), 0).unwrap();
        assert_eq!(vault.secret_key(U(7)).unwrap().unwrap().public_key(), &pk);
        assert_eq!(vault.owner_of(&pk.fingerprint()).unwrap(), Some(U(7)));
        // A wrapped key moved to another account does not open.
        vault
            .conn
            .execute("UPDATE teacher_keys SET user_id = 8 WHERE user_id = 7", [])
            .unwrap();
        assert!(vault.secret_key(U(8)).is_err());
        // The secret key's bytes are not stored in the clear.
        let raw = std::fs::read(tmp.path().join("vault.db")).unwrap();
        let wal = std::fs::read(tmp.path().join("vault.db-wal")).unwrap_or_default();
        let master2 = MasterKey::load_or_create(&tmp.path().join("k")).unwrap();
        let sk = master2
            .unwrap(
                U(7),
                &vault
                    .conn
                    .query_row("SELECT wrapped_secret FROM teacher_keys", [], |r| {
                        r.get::<_, Vec<u8>>(0)
                    })
                    .unwrap(),
                &vault
                    .conn
                    .query_row("SELECT nonce FROM teacher_keys", [], |r| {
                        r.get::<_, Vec<u8>>(0)
                    })
                    .unwrap(),
            )
            .unwrap();
        let secret = sk.to_bytes();
        for file in [raw, wal] {
            assert!(!file.windows(32).any(|w| w == secret.as_ref()));
        }
    }
}
