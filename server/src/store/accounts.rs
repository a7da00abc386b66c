//! Users, roles, passwords and sessions. Plain functions over a SQLite connection,
//! so they are tested without a server and called from handlers off the async runtime.
//!
//! Session tokens are 32 random bytes; only their SHA-256 is
//! stored, so a copy of the database does not let anyone sign in, and lookup by hash means no
//! secret is ever compared byte by byte in variable time.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand_core::{OsRng, RngCore, TryRngCore};
use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::domain::clock;
use crate::domain::people::{Role, User, UserId};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccountError {
    #[error("password must be at least 8 characters")]
    WeakPassword,
    #[error("that password is one of the most common ones, which are tried first; choose another")]
    CommonPassword,
    #[error("username must be 1-64 characters of a-z, 0-9, '.', '-' or '_'")]
    BadUsername,
    #[error("a user named {0:?} already exists")]
    Exists(String),
    #[error(transparent)]
    Db(#[from] rusqlite::Error),
    #[error("the display name must be 1-100 characters")]
    BadDisplayName,
    #[error("password hashing failed")]
    Hash,
    #[error("another teacher already has that code; choose another")]
    CodeTaken,
}

fn roles_from(s: &str) -> Vec<Role> {
    s.split(',').filter_map(Role::parse).collect()
}

/// Passwords of 8 or more characters that lead public lists of leaked passwords (and a few a school
/// would guess first). Compared without regard to case.
const COMMON_PASSWORDS: &[&str] = &[
    "password",
    "12345678",
    "123456789",
    "1234567890",
    "qwertyuiop",
    "11111111",
    "00000000",
    "iloveyou",
    "password1",
    "sunshine",
    "princess",
    "football",
    "baseball",
    "welcome1",
    "qwerty123",
    "1q2w3e4r",
    "1qaz2wsx",
    "abc12345",
    "abcd1234",
    "aa123456",
    "trustno1",
    "superman",
    "whatever",
    "starwars",
    "passw0rd",
    "p@ssw0rd",
    "password123",
    "password12",
    "letmein1",
    "12341234",
    "87654321",
    "123123123",
    "11223344",
    "12121212",
    "asdfghjk",
    "asdfghjkl",
    "qwertyui",
    "zxcvbnm1",
    "michael1",
    "jennifer",
    "computer",
    "internet",
    "liverpool",
    "chelsea1",
    "arsenal1",
    "welcome123",
    "changeme",
    "admin123",
    "administrator",
    "letmein123",
    "dragon123",
    "monkey123",
    "shadow12",
    "master12",
    "qwer1234",
    "1234qwer",
    "q1w2e3r4",
    "zaq12wsx",
    "babygirl",
    "sweetheart",
    "chocolate",
    "butterfly",
    "basketball",
    "qazwsxedc",
    "987654321",
    "147258369",
    "123qweasd",
    "1q2w3e4r5t",
    "qwerty12",
    "password2",
    "password!",
    "iloveyou1",
    "princess1",
    "football1",
    "baseball1",
    "school123",
    "teacher1",
    "teacher123",
    "lessonlens",
    "classroom",
    "student1",
    "welcome!",
    "summer2024",
    "summer2025",
    "summer2026",
    "winter2025",
    "winter2026",
    "autumn2026",
    "spring2026",
];

pub fn hash_password(password: &str) -> Result<String, AccountError> {
    if password.chars().count() < 8 {
        return Err(AccountError::WeakPassword);
    }
    let lower = password.to_lowercase();
    if COMMON_PASSWORDS.contains(&lower.as_str()) {
        return Err(AccountError::CommonPassword);
    }
    let mut salt = [0u8; 16];
    OsRng.unwrap_err().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|_| AccountError::Hash)?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|_| AccountError::Hash)?
        .to_string())
}

fn valid_username(username: &str) -> bool {
    !username.is_empty()
        && username.len() <= 64
        && username
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

pub fn add_user(
    conn: &Connection,
    username: &str,
    display_name: &str,
    password: &str,
    roles: &[Role],
) -> Result<UserId, AccountError> {
    if !valid_username(username) {
        return Err(AccountError::BadUsername);
    }
    insert_user(
        conn,
        username,
        display_name,
        &hash_password(password)?,
        roles,
    )
}

/// Stores a new user whose password was hashed with [`hash_password`] (slow: hash it outside
/// the database lock).
pub fn insert_user(
    conn: &Connection,
    username: &str,
    display_name: &str,
    hash: &str,
    roles: &[Role],
) -> Result<UserId, AccountError> {
    if !valid_username(username) {
        return Err(AccountError::BadUsername);
    }
    if display_name.is_empty() || display_name.chars().count() > 100 {
        return Err(AccountError::BadDisplayName);
    }
    let roles: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    let mut pseudonym = [0u8; 16];
    OsRng.unwrap_err().fill_bytes(&mut pseudonym);
    match conn.execute(
        "INSERT INTO users (username, display_name, password_hash, roles, created_at, audit_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![username, display_name, hash, roles.join(","), clock::now(), format!("u-{}", hex::encode(pseudonym))],
    ) {
        Ok(_) => Ok(UserId(conn.last_insert_rowid())),
        Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
            Err(AccountError::Exists(username.to_string()))
        }
        Err(e) => Err(e.into()),
    }
}

/// A user from `id, username, display_name, roles, audit_id`, starting at column `at`.
fn user_from_row_at(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<User> {
    Ok(User {
        id: r.get(at)?,
        username: r.get(at + 1)?,
        display_name: r.get(at + 2)?,
        roles: roles_from(&r.get::<_, String>(at + 3)?),
        audit_id: r.get(at + 4)?,
    })
}

pub fn user_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    user_from_row_at(r, 0)
}

pub fn find_user(conn: &Connection, username: &str) -> rusqlite::Result<Option<User>> {
    conn.query_row(
        "SELECT id, username, display_name, roles, audit_id FROM users WHERE username = ?1 AND disabled = 0",
        [username],
        user_from_row,
    )
    .optional()
}

/// Any user called `username`, enabled or not (for admins).
pub fn find_any_user(conn: &Connection, username: &str) -> rusqlite::Result<Option<User>> {
    conn.query_row(
        "SELECT id, username, display_name, roles, audit_id FROM users WHERE username = ?1",
        [username],
        user_from_row,
    )
    .optional()
}

/// Disables an account inside the caller's transaction: its sessions end and its device code
/// stops working at once.
pub fn disable_in(conn: &Connection, user_id: UserId) -> rusqlite::Result<()> {
    conn.execute("UPDATE users SET disabled = 1 WHERE id = ?1", [user_id])?;
    conn.execute("DELETE FROM sessions WHERE user_id = ?1", [user_id])?;
    conn.execute("DELETE FROM teacher_codes WHERE user_id = ?1", [user_id])?;
    Ok(())
}

/// Whether the user is marked as leaving (see `offboarding`).
pub fn is_leaving(conn: &Connection, user_id: UserId) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM leaving WHERE user_id = ?1)",
        [user_id],
        |r| r.get(0),
    )
}

/// A hash of a password nobody has, so that checking an unknown username costs as much as checking
/// a known one and response times do not reveal which usernames exist.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy password that never matches").expect("hashing works"))
}

/// The enabled user called `username` (if any) and the password hash to check against: theirs, or
/// a decoy that never matches. Read under the database lock; the slow check happens outside it.
pub fn login_candidate(
    conn: &Connection,
    username: &str,
) -> rusqlite::Result<(Option<User>, String)> {
    let row: Option<(String, User)> = conn
        .query_row(
            "SELECT password_hash, id, username, display_name, roles, audit_id FROM users WHERE username = ?1 AND disabled = 0",
            [username],
            |r| Ok((r.get(0)?, user_from_row_at(r, 1)?)),
        )
        .optional()?;
    Ok(match row {
        Some((hash, user)) => (Some(user), hash),
        None => (None, decoy_hash().to_string()),
    })
}

/// Argon2id check; as slow for the decoy as for a real hash, so timing does not reveal which
/// usernames exist.
pub fn password_matches(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A device code is 4 to 8 digits: short enough to type on a classroom touchscreen, checked by
/// the server with a per-device limit on wrong guesses.
pub fn valid_code(code: &str) -> bool {
    (4..=8).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_digit())
}

/// Sets (or replaces) a teacher's device code, given its tag from the vault.
pub fn set_code(conn: &Connection, user_id: UserId, tag: &[u8]) -> Result<(), AccountError> {
    match conn.execute(
        "INSERT INTO teacher_codes (user_id, code_tag) VALUES (?1, ?2)
         ON CONFLICT (user_id) DO UPDATE SET code_tag = excluded.code_tag",
        params![user_id, tag],
    ) {
        Ok(_) => Ok(()),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Err(AccountError::CodeTaken)
        }
        Err(e) => Err(e.into()),
    }
}

/// The enabled teacher whose device code has this tag.
pub fn user_by_code(conn: &Connection, tag: &[u8]) -> rusqlite::Result<Option<User>> {
    conn.query_row(
        "SELECT u.id, u.username, u.display_name, u.roles, u.audit_id FROM teacher_codes c JOIN users u ON u.id = c.user_id
         WHERE c.code_tag = ?1 AND u.disabled = 0",
        [tag],
        user_from_row,
    )
    .optional()
}

/// A fresh random token (returned once, to be given to its holder) and the hash to store.
pub fn new_token() -> (Zeroizing<String>, Vec<u8>) {
    let mut raw = Zeroizing::new([0u8; 32]);
    OsRng.unwrap_err().fill_bytes(raw.as_mut());
    let token = Zeroizing::new(hex::encode(raw.as_ref()));
    let hash = token_hash(&token);
    (token, hash)
}

pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A new session for `user_id`. A `setup_only` one may do nothing but set up a second factor.
pub fn create_session(
    conn: &Connection,
    user_id: UserId,
    hours: u32,
    setup_only: bool,
) -> rusqlite::Result<Zeroizing<String>> {
    let (token, hash) = new_token();
    let t = clock::now();
    conn.execute(
        "INSERT INTO sessions (token_hash, user_id, created_at, expires_at, setup_only) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![hash, user_id, t, t + i64::from(hours) * 3600, setup_only],
    )?;
    Ok(token)
}

/// The user behind a session token, if the session is live and the account enabled, and whether
/// the session is only for setting up a second factor.
pub fn session_user(conn: &Connection, token: &str) -> rusqlite::Result<Option<(User, bool)>> {
    conn.query_row(
        "SELECT u.id, u.username, u.display_name, u.roles, u.audit_id, s.setup_only FROM sessions s JOIN users u ON u.id = s.user_id
         WHERE s.token_hash = ?1 AND s.expires_at > ?2 AND u.disabled = 0",
        params![token_hash(token), clock::now()],
        |r| Ok((user_from_row(r)?, r.get(5)?)),
    )
    .optional()
}

/// Ends every session of `user_id` but the one with `keep` (e.g. after their second factor
/// changed).
pub fn end_other_sessions(conn: &Connection, user_id: UserId, keep: &str) -> rusqlite::Result<()> {
    conn.execute(
        "DELETE FROM sessions WHERE user_id = ?1 AND token_hash != ?2",
        params![user_id, token_hash(keep)],
    )?;
    Ok(())
}

/// The account that owns recordings a device made while the server was unreachable (sealed to
/// the school's unassigned key) until their teacher claims them. The name is not a valid username,
/// so nobody can take it; the account is disabled and has no password, so nobody signs in as it.
pub const UNASSIGNED: &str = "(unassigned)";

/// The unassigned account's id, made if missing.
pub fn ensure_unassigned(conn: &Connection) -> rusqlite::Result<UserId> {
    conn.execute(
        "INSERT OR IGNORE INTO users (username, display_name, password_hash, roles, disabled, created_at, audit_id)
         VALUES (?1, 'Recorded offline (not claimed yet)', '!', '', 1, ?2, 'u-' || lower(hex(randomblob(16))))",
        params![UNASSIGNED, clock::now()],
    )?;
    conn.query_row(
        "SELECT id FROM users WHERE username = ?1",
        [UNASSIGNED],
        |r| r.get(0),
    )
}

/// How long an invitation link works.
pub const INVITE_DAYS: i64 = 7;

/// A new invitation for `user_id` (replacing any earlier one): the secret for the link. Only its
/// hash is stored.
pub fn create_invite(
    conn: &Connection,
    user_id: UserId,
    now: i64,
) -> rusqlite::Result<Zeroizing<String>> {
    let (token, hash) = new_token();
    conn.execute("DELETE FROM invites WHERE user_id = ?1", [user_id])?;
    conn.execute(
        "INSERT INTO invites (token_hash, user_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
        params![hash, user_id, now, now + INVITE_DAYS * 86_400],
    )?;
    Ok(token)
}

/// Uses up an invitation: the person's password becomes `password_hash` and any session of theirs
/// ends. `None` if the link is wrong, used or expired, or the account is disabled.
pub fn redeem_invite(
    conn: &Connection,
    token: &str,
    password_hash: &str,
    now: i64,
) -> rusqlite::Result<Option<User>> {
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    let user = tx
        .query_row(
            "SELECT u.id, u.username, u.display_name, u.roles, u.audit_id FROM invites i JOIN users u ON u.id = i.user_id
             WHERE i.token_hash = ?1 AND i.expires_at > ?2 AND u.disabled = 0",
            params![token_hash(token), now],
            user_from_row,
        )
        .optional()?;
    if let Some(u) = &user {
        tx.execute("DELETE FROM invites WHERE user_id = ?1", [u.id])?;
        tx.execute(
            "UPDATE users SET password_hash = ?1, own_password = 1 WHERE id = ?2",
            params![password_hash, u.id],
        )?;
        tx.execute("DELETE FROM sessions WHERE user_id = ?1", [u.id])?;
    }
    tx.commit()?;
    Ok(user)
}

/// Whether the person chose their own password. No admin may then make an invitation for the
/// account: that would let the admin choose a new password and sign in as them.
pub fn own_password(conn: &Connection, user_id: UserId) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT own_password FROM users WHERE id = ?1",
        [user_id],
        |r| r.get(0),
    )
}

/// Marks accounts made by an admin (invitation pending) as not yet having a password of the
/// person's own.
pub fn mark_invited(conn: &Connection, user_id: UserId) -> rusqlite::Result<()> {
    conn.execute("UPDATE users SET own_password = 0 WHERE id = ?1", [user_id])?;
    Ok(())
}

/// A recovery code: 20 random base32 characters in groups of four (100 bits), shown to the
/// person once. Only its SHA-256 is stored; the code is random, so no salt or slow hash is
/// needed to keep a copy of the database from revealing it.
pub fn new_recovery_code() -> (Zeroizing<String>, Vec<u8>) {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = Zeroizing::new([0u8; 20]);
    OsRng.unwrap_err().fill_bytes(&mut *bytes);
    let mut code = Zeroizing::new(String::with_capacity(24));
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 && i % 4 == 0 {
            code.push('-');
        }
        code.push(ALPHABET[usize::from(*b) % 32] as char);
    }
    let hash = recovery_hash(&code);
    (code, hash)
}

/// The stored form of a recovery code, ignoring case, spaces and dashes as typed.
pub fn recovery_hash(code: &str) -> Vec<u8> {
    let normal: Zeroizing<String> = Zeroizing::new(
        code.chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_uppercase())
            .collect(),
    );
    let mut h = Sha256::new();
    h.update(b"lessonlens-recovery-v1");
    h.update(normal.as_bytes());
    h.finalize().to_vec()
}

/// Sets a new password for `username` if `code` is their recovery code, uses the code up and ends
/// their sessions. `None` if the username or the code is wrong, or the account is disabled.
pub fn recover(
    conn: &Connection,
    username: &str,
    code: &str,
    password_hash: &str,
) -> rusqlite::Result<Option<User>> {
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    let user = tx
        .query_row(
            "SELECT id, username, display_name, roles, audit_id FROM users
             WHERE username = ?1 AND recovery_hash = ?2 AND disabled = 0",
            params![username, recovery_hash(code)],
            user_from_row,
        )
        .optional()?;
    if let Some(u) = &user {
        tx.execute(
            "UPDATE users SET password_hash = ?1, own_password = 1, recovery_hash = NULL WHERE id = ?2",
            params![password_hash, u.id],
        )?;
        tx.execute("DELETE FROM sessions WHERE user_id = ?1", [u.id])?;
    }
    tx.commit()?;
    Ok(user)
}

/// What audit entries about someone's account say to them, by action: the changes others (admins
/// or the server's console) made to it.
const ACCOUNT_CHANGES: &[(&str, &str)] = &[
    ("user-add", "created your account"),
    (
        "roster-add",
        "created your account from the school's roster",
    ),
    (
        "roster-rename",
        "changed your name to the one in the school's roster",
    ),
    (
        "roster-link",
        "linked your account to your record in the school's roster",
    ),
    ("invite", "made an invitation link for your account"),
    (
        "set-password",
        "set your password (from the server's console)",
    ),
    ("second-factor-reset", "turned off your two-step sign-in"),
    ("user-disable", "disabled your account"),
    ("user-enable", "enabled your account again"),
    (
        "offboard",
        "marked you as leaving: your account and lessons will be deleted",
    ),
    ("offboard-cancel", "cancelled your leaving"),
];

/// One change someone else made to a person's account.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AccountChange {
    /// Its audit entry: the notice acknowledges changes up to the newest one it showed.
    pub id: i64,
    pub at: i64,
    /// The admin's display name, or "the server's console".
    pub by: String,
    pub what: &'static str,
}

/// The newest 50 changes others made to `user`'s account, newest first, and how many of them the
/// person has not acknowledged yet.
pub fn account_changes(
    conn: &Connection,
    user: &User,
) -> rusqlite::Result<(Vec<AccountChange>, usize)> {
    let actions: Vec<&str> = ACCOUNT_CHANGES.iter().map(|(a, _)| *a).collect();
    let mut stmt = conn.prepare(
        "SELECT a.id, a.at, a.action, a.actor, u.display_name FROM audit a
         LEFT JOIN users u ON u.audit_id = a.actor
         WHERE a.target = ?1 AND a.actor != ?1 AND a.action IN (SELECT value FROM json_each(?2))
         ORDER BY a.id DESC LIMIT 50",
    )?;
    let list: Vec<AccountChange> = stmt
        .query_map(
            params![
                user.audit_id,
                serde_json::to_string(&actions).unwrap_or_default()
            ],
            |r| {
                let action: String = r.get(2)?;
                let actor: String = r.get(3)?;
                let name: Option<String> = r.get(4)?;
                Ok(AccountChange {
                    id: r.get(0)?,
                    at: r.get(1)?,
                    by: match (actor.as_str(), name) {
                        ("cli", _) => "the server's console".into(),
                        (_, Some(n)) => n,
                        (_, None) => "an admin who has since left".into(),
                    },
                    what: ACCOUNT_CHANGES
                        .iter()
                        .find(|(a, _)| *a == action)
                        .map_or("changed your account", |(_, w)| w),
                })
            },
        )?
        .collect::<Result<_, _>>()?;
    let seen: i64 = conn.query_row(
        "SELECT admin_actions_seen FROM users WHERE id = ?1",
        [user.id],
        |r| r.get(0),
    )?;
    let unseen = list.iter().filter(|c| c.id > seen).count();
    Ok((list, unseen))
}

pub fn end_session(conn: &Connection, token: &str) -> rusqlite::Result<()> {
    conn.execute(
        "DELETE FROM sessions WHERE token_hash = ?1",
        [token_hash(token)],
    )?;
    Ok(())
}

/// Whether the person chose their own password, made a recovery code and set a device code.
pub fn secrets_set(conn: &Connection, user_id: UserId) -> rusqlite::Result<(bool, bool, bool)> {
    conn.query_row(
        "SELECT own_password, recovery_hash IS NOT NULL,
                EXISTS (SELECT 1 FROM teacher_codes WHERE user_id = users.id)
         FROM users WHERE id = ?1",
        [user_id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
}

/// The person acknowledged the changes to their account up to audit entry `up_to`.
pub fn admin_actions_seen(
    conn: &Connection,
    user_id: UserId,
    up_to: i64,
) -> rusqlite::Result<usize> {
    conn.execute(
        "UPDATE users SET admin_actions_seen = MAX(admin_actions_seen, ?1) WHERE id = ?2",
        params![up_to, user_id],
    )
}

/// Keeps the hash of the person's new recovery code (the old one stops working).
pub fn set_recovery_hash(conn: &Connection, user_id: UserId, hash: &[u8]) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE users SET recovery_hash = ?1 WHERE id = ?2",
        params![hash, user_id],
    )?;
    Ok(())
}

/// A password the person chose: kept (as its hash), and any invitation for them is gone.
pub fn set_own_password(conn: &Connection, user_id: UserId, hash: &str) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE users SET password_hash = ?1, own_password = 1 WHERE id = ?2",
        params![hash, user_id],
    )?;
    conn.execute("DELETE FROM invites WHERE user_id = ?1", [user_id])?;
    Ok(())
}

/// The session may do everything now (its person finished setting up two-step sign-in).
pub fn session_fully_signed_in(conn: &Connection, token: &str) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE sessions SET setup_only = 0 WHERE token_hash = ?1",
        [token_hash(token)],
    )?;
    Ok(())
}

/// A person as the admin's list shows them.
#[derive(serde::Serialize)]
pub struct AccountRow {
    pub username: String,
    pub display_name: String,
    pub roles: Vec<String>,
    pub disabled: bool,
    /// When their data will be deleted, if they are leaving.
    pub delete_after: Option<i64>,
    /// They chose their own password: no invitation can be made for them.
    pub own_password: bool,
}

/// Everyone but the account `except` (the unassigned one), by name.
pub fn everyone_but(conn: &Connection, except: UserId) -> rusqlite::Result<Vec<AccountRow>> {
    let mut stmt = conn.prepare(
        "SELECT u.username, u.display_name, u.roles, u.disabled, l.delete_after, u.own_password
         FROM users u LEFT JOIN leaving l ON l.user_id = u.id
         WHERE u.id != ?1 ORDER BY u.display_name",
    )?;
    let rows = stmt
        .query_map([except], |r| {
            Ok(AccountRow {
                username: r.get(0)?,
                display_name: r.get(1)?,
                roles: r
                    .get::<_, String>(2)?
                    .split(',')
                    .map(str::to_string)
                    .collect(),
                disabled: r.get(3)?,
                delete_after: r.get(4)?,
                own_password: r.get(5)?,
            })
        })?
        .collect();
    rows
}

/// Signs the person out everywhere.
pub fn end_all_sessions(conn: &Connection, user_id: UserId) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM sessions WHERE user_id = ?1", [user_id])?;
    Ok(())
}

/// Lets a disabled person sign in again. Teachers shared lessons with their groups while they
/// were disabled, not seeing them among the members: in each group they count as joined now, so
/// those shares do not let them in until the teacher shares again (see `store::groups`). Call it
/// just before the change's audit entry (see [`crate::store::access::NEXT_SEQ`]).
pub fn enable_in(conn: &Connection, user_id: UserId) -> rusqlite::Result<()> {
    conn.execute("UPDATE users SET disabled = 0 WHERE id = ?1", [user_id])?;
    conn.execute(
        &format!(
            "UPDATE coach_group_members SET added_seq = {} WHERE user_id = ?1",
            crate::store::access::NEXT_SEQ
        ),
        [user_id],
    )?;
    Ok(())
}

/// The teachers who are not leaving (whose keys must exist).
pub fn staying_teachers(conn: &Connection) -> rusqlite::Result<Vec<UserId>> {
    let mut stmt = conn.prepare(
        "SELECT id FROM users WHERE (',' || roles || ',') LIKE '%,teacher,%'
         AND id NOT IN (SELECT user_id FROM leaving)",
    )?;
    let ids = stmt.query_map([], |r| r.get(0))?.collect();
    ids
}

/// The account with id `user_id`, disabled or not.
pub fn by_id(conn: &Connection, user_id: UserId) -> rusqlite::Result<Option<User>> {
    conn.query_row(
        "SELECT id, username, display_name, roles, audit_id FROM users WHERE id = ?1",
        [user_id],
        user_from_row,
    )
    .optional()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sign-in handler's two steps (candidate, then password check) in one.
    fn verify_login(
        conn: &Connection,
        username: &str,
        password: &str,
    ) -> rusqlite::Result<Option<User>> {
        let (user, hash) = login_candidate(conn, username)?;
        Ok(user.filter(|_| password_matches(&hash, password)))
    }

    fn db() -> (tempfile::TempDir, Connection) {
        let tmp = tempfile::tempdir().unwrap();
        let conn = crate::store::db::open(&tmp.path().join("db")).unwrap();
        (tmp, conn)
    }

    #[test]
    fn login_checks_password_and_disabled_accounts() {
        let (_t, conn) = db();
        let id = add_user(&conn, "alice", "Alice", "correct horse", &[Role::Teacher]).unwrap();
        assert_eq!(
            verify_login(&conn, "alice", "correct horse")
                .unwrap()
                .unwrap()
                .id,
            id
        );
        assert!(verify_login(&conn, "alice", "wrong password")
            .unwrap()
            .is_none());
        assert!(verify_login(&conn, "nobody", "correct horse")
            .unwrap()
            .is_none());
        let token = create_session(&conn, id, 1, false).unwrap();
        assert!(session_user(&conn, &token).unwrap().is_some());
        conn.execute("UPDATE users SET disabled = 1 WHERE id = ?1", [id])
            .unwrap();
        assert!(verify_login(&conn, "alice", "correct horse")
            .unwrap()
            .is_none());
        assert!(
            session_user(&conn, &token).unwrap().is_none(),
            "disabling revokes sessions at once"
        );
    }

    #[test]
    fn rejects_weak_passwords_bad_names_and_duplicates() {
        let (_t, conn) = db();
        assert!(matches!(
            add_user(&conn, "bob", "Bob", "short", &[]),
            Err(AccountError::WeakPassword)
        ));
        for common in ["Password1", "12345678", "qwertyuiop"] {
            assert!(matches!(
                add_user(&conn, "bob", "Bob", common, &[]),
                Err(AccountError::CommonPassword)
            ));
        }
        assert!(matches!(
            add_user(&conn, "Bob Smith", "Bob", "long enough", &[]),
            Err(AccountError::BadUsername)
        ));
        add_user(&conn, "bob", "Bob", "long enough", &[]).unwrap();
        assert!(matches!(
            add_user(&conn, "bob", "Bob", "long enough", &[]),
            Err(AccountError::Exists(_))
        ));
    }

    #[test]
    fn device_codes_are_unique_and_follow_the_account() {
        let (_t, conn) = db();
        let a = add_user(&conn, "ann", "Ann", "long enough", &[Role::Teacher]).unwrap();
        let b = add_user(&conn, "ben", "Ben", "long enough", &[Role::Teacher]).unwrap();
        assert!(valid_code("1234") && valid_code("12345678"));
        assert!(!valid_code("123") && !valid_code("12a4") && !valid_code("123456789"));
        set_code(&conn, a, b"tag-1").unwrap();
        assert!(matches!(
            set_code(&conn, b, b"tag-1"),
            Err(AccountError::CodeTaken)
        ));
        assert_eq!(user_by_code(&conn, b"tag-1").unwrap().unwrap().id, a);
        set_code(&conn, a, b"tag-2").unwrap();
        assert!(
            user_by_code(&conn, b"tag-1").unwrap().is_none(),
            "the old code stops working"
        );
        conn.execute("UPDATE users SET disabled = 1 WHERE id = ?1", [a])
            .unwrap();
        assert!(
            user_by_code(&conn, b"tag-2").unwrap().is_none(),
            "a disabled teacher's code stops working"
        );
    }
}
