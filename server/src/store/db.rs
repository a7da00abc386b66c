//! The metadata database: SQLite in WAL mode with `synchronous=FULL`, so a row that was committed
//! survives a power cut. Migrations are numbered and applied once, in order. Parameterised SQL only.

use anyhow::Context;
use rusqlite::{Connection, OptionalExtension};
use std::path::Path;

const MIGRATIONS: &[&str] = &[
    // 1: accounts, devices, recordings, segments, audit.
    "CREATE TABLE users (
         id INTEGER PRIMARY KEY,
         username TEXT NOT NULL UNIQUE,
         display_name TEXT NOT NULL,
         password_hash TEXT NOT NULL,
         roles TEXT NOT NULL,
         disabled INTEGER NOT NULL DEFAULT 0,
         created_at INTEGER NOT NULL
     );
     CREATE TABLE sessions (
         token_hash BLOB PRIMARY KEY,
         user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
         created_at INTEGER NOT NULL,
         expires_at INTEGER NOT NULL
     );
     CREATE TABLE devices (
         id INTEGER PRIMARY KEY,
         name TEXT NOT NULL UNIQUE,
         token_hash BLOB NOT NULL UNIQUE,
         revoked INTEGER NOT NULL DEFAULT 0,
         created_at INTEGER NOT NULL,
         last_seen INTEGER
     );
     CREATE TABLE recordings (
         id TEXT PRIMARY KEY,
         owner_id INTEGER NOT NULL REFERENCES users(id),
         device_id INTEGER NOT NULL REFERENCES devices(id),
         created_at INTEGER NOT NULL,
         started_at INTEGER,
         manifest TEXT,
         clean_stop INTEGER
     );
     CREATE INDEX recordings_owner ON recordings(owner_id);
     CREATE TABLE segments (
         recording_id TEXT NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
         idx INTEGER NOT NULL,
         sha256 TEXT NOT NULL,
         bytes INTEGER NOT NULL,
         start_us INTEGER NOT NULL,
         duration_us INTEGER NOT NULL,
         final INTEGER NOT NULL,
         stored_at INTEGER NOT NULL,
         PRIMARY KEY (recording_id, idx)
     );
     CREATE TABLE audit (
         id INTEGER PRIMARY KEY,
         at INTEGER NOT NULL,
         actor TEXT NOT NULL,
         action TEXT NOT NULL,
         target TEXT NOT NULL
     );",
    // 2: short codes (PINs) teachers type on a classroom device. Only an HMAC keyed by the
    // master key is stored, so a copy of the database does not reveal the codes.
    "CREATE TABLE teacher_codes (
         user_id INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
         code_tag BLOB NOT NULL UNIQUE
     );",
    // 3: the audit log becomes a hash chain (see audit.rs). Rows written before this migration
    // keep NULL hashes and are reported as unchained.
    "ALTER TABLE audit ADD COLUMN hash BLOB;",
    // 4: review (issue 5). Sharing with coaches, timestamped comments and replies (a private one is
    // the owner's reflection, never shown to coaches), the school's comment tags, and a random
    // pseudonym per user that the audit log names instead of the username or row id, so that the
    // chained log outlives an account without naming the person once the account is deleted.
    "CREATE TABLE shares (
         recording_id TEXT NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
         coach_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
         created_at INTEGER NOT NULL,
         PRIMARY KEY (recording_id, coach_id)
     );
     CREATE INDEX shares_coach ON shares(coach_id);
     CREATE TABLE comments (
         id INTEGER PRIMARY KEY,
         recording_id TEXT NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
         author_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
         parent_id INTEGER REFERENCES comments(id) ON DELETE CASCADE,
         at_ms INTEGER NOT NULL,
         body TEXT NOT NULL,
         tag TEXT,
         private INTEGER NOT NULL DEFAULT 0,
         created_at INTEGER NOT NULL
     );
     CREATE INDEX comments_recording ON comments(recording_id);
     CREATE TABLE tags (name TEXT PRIMARY KEY);
     INSERT INTO tags (name) VALUES ('questioning'), ('behaviour'), ('explanation'), ('feedback'), ('pace'), ('modelling');
     ALTER TABLE users ADD COLUMN audit_id TEXT;
     UPDATE users SET audit_id = 'u-' || lower(hex(randomblob(16)));
     CREATE UNIQUE INDEX users_audit_id ON users(audit_id);
     CREATE INDEX audit_target ON audit(target);
     CREATE TABLE blob_deletions (sha256 TEXT PRIMARY KEY);",
    // 5: retention and leaving (issue 6). One policy row; a hold per recording; whether a
    // recording was ever shared; a teacher who is leaving, and the progress of their deletion
    // (kept apart from the account row, which goes last); signed deletion receipts.
    "CREATE TABLE retention_policy (
         id INTEGER PRIMARY KEY CHECK (id = 1),
         keep_days INTEGER NOT NULL,
         unshared_days INTEGER,
         grace_days INTEGER NOT NULL
     );
     INSERT INTO retention_policy (id, keep_days, unshared_days, grace_days) VALUES (1, 365, NULL, 7);
     ALTER TABLE recordings ADD COLUMN ever_shared INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE recordings ADD COLUMN hold_reason TEXT;
     UPDATE recordings SET ever_shared = 1 WHERE id IN (SELECT recording_id FROM shares);
     CREATE TABLE leaving (
         user_id INTEGER PRIMARY KEY,
         subject TEXT NOT NULL,
         marked_at INTEGER NOT NULL,
         delete_after INTEGER NOT NULL,
         started_at INTEGER,
         fingerprint TEXT,
         recordings INTEGER NOT NULL DEFAULT 0,
         segments INTEGER NOT NULL DEFAULT 0,
         bytes INTEGER NOT NULL DEFAULT 0
     );
     CREATE TABLE deletion_receipts (
         id TEXT PRIMARY KEY,
         created_at INTEGER NOT NULL,
         receipt TEXT NOT NULL
     );",
    // 6: roster import (issue 6): the MIS staff id an account was made from, and its email.
    "ALTER TABLE users ADD COLUMN staff_id TEXT;
     ALTER TABLE users ADD COLUMN email TEXT;
     CREATE UNIQUE INDEX users_staff_id ON users(staff_id) WHERE staff_id IS NOT NULL;",
    // 7: devices authenticate with client certificates from the school CA instead of bearer
    // tokens (issue 4). The token column goes (a device enrolled before this must enrol again);
    // every certificate issued is kept until it expires, so a renewal whose answer was lost does
    // not lock the device out. Enrollment codes are single use and stored hashed.
    "CREATE TABLE devices_new (
         id INTEGER PRIMARY KEY,
         name TEXT NOT NULL UNIQUE,
         revoked INTEGER NOT NULL DEFAULT 0,
         created_at INTEGER NOT NULL,
         last_seen INTEGER
     );
     INSERT INTO devices_new (id, name, revoked, created_at, last_seen)
         SELECT id, name, revoked, created_at, last_seen FROM devices;
     DROP TABLE devices;
     ALTER TABLE devices_new RENAME TO devices;
     CREATE TABLE device_certs (
         sha256 BLOB PRIMARY KEY,
         device_id INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
         issued_at INTEGER NOT NULL,
         not_after INTEGER NOT NULL
     );
     CREATE INDEX device_certs_device ON device_certs(device_id);
     CREATE TABLE enrollment_codes (
         code_hash BLOB PRIMARY KEY,
         device_name TEXT NOT NULL,
         created_at INTEGER NOT NULL,
         expires_at INTEGER NOT NULL
     );",
    // 8: two-step sign-in. A session made by a password alone for someone the policy requires a
    // second factor of can only set that factor up.
    "ALTER TABLE sessions ADD COLUMN setup_only INTEGER NOT NULL DEFAULT 0;",
    // 9: each device's last report (state, backlog, last upload, encoder) for the admin's list.
    "ALTER TABLE devices ADD COLUMN report TEXT;
     ALTER TABLE devices ADD COLUMN reported_at INTEGER;",
    // 10: invitations: a link with which a person chooses their own first password.
    "CREATE TABLE invites (
         token_hash BLOB PRIMARY KEY,
         user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
         created_at INTEGER NOT NULL,
         expires_at INTEGER NOT NULL
     );",
    // 11: groups of coaches (e.g. a department's coaches), made by admins; a teacher can share a
    // lesson with a group, and whoever is in the group (and a coach) may then watch it.
    "CREATE TABLE coach_groups (
         id INTEGER PRIMARY KEY,
         name TEXT NOT NULL UNIQUE COLLATE NOCASE,
         created_at INTEGER NOT NULL
     );
     CREATE TABLE coach_group_members (
         group_id INTEGER NOT NULL REFERENCES coach_groups(id) ON DELETE CASCADE,
         user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
         PRIMARY KEY (group_id, user_id)
     );
     CREATE INDEX coach_group_members_user ON coach_group_members(user_id);
     CREATE TABLE group_shares (
         recording_id TEXT NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
         group_id INTEGER NOT NULL REFERENCES coach_groups(id) ON DELETE CASCADE,
         created_at INTEGER NOT NULL,
         PRIMARY KEY (recording_id, group_id)
     );
     CREATE INDEX group_shares_group ON group_shares(group_id);",
    // 12: the ids of deleted recordings, so that a device still uploading one is answered as if
    // the upload was stored (it stops sending) and nothing comes back. A random id and a time:
    // nothing about the lesson or its teacher.
    "CREATE TABLE deleted_recordings (
         id TEXT PRIMARY KEY,
         deleted_at INTEGER NOT NULL
     );",
    // 13: no admin path into an account. `own_password`: the person chose their password (an
    // invitation or the server's console), so no admin can make an invitation for the account;
    // existing accounts are taken as chosen, except those with an invitation waiting.
    // `recovery_hash`: SHA-256 of the recovery code only the person saw. `admin_actions_seen`:
    // the last audit entry about their account the person acknowledged. `added_seq` and
    // `shared_seq`: the order (the audit entry's id) in which a coach joined a group and a lesson
    // was shared with it, so a share made before they joined does not let them in unasked.
    "ALTER TABLE users ADD COLUMN own_password INTEGER NOT NULL DEFAULT 1;
     UPDATE users SET own_password = 0 WHERE id IN (SELECT user_id FROM invites);
     ALTER TABLE users ADD COLUMN recovery_hash BLOB;
     ALTER TABLE users ADD COLUMN admin_actions_seen INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE coach_group_members ADD COLUMN added_seq INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE group_shares ADD COLUMN shared_seq INTEGER NOT NULL DEFAULT 0;",
    // 14: a copied device identity. A certificate is retired once a newer one of the device's
    // is used; a retired one used again means two machines hold the identity.
    "ALTER TABLE device_certs ADD COLUMN retired_at INTEGER;
     ALTER TABLE devices ADD COLUMN identity_conflict_at INTEGER;",
    // 15: how many recordings a device began in the last day (routes/device.rs bounds it).
    "CREATE INDEX recordings_device ON recordings(device_id, created_at);",
    // 16: booked lessons (issue 16): a room, a teacher and a slot; a weekly booking is one row a
    // week, sharing a series id. The device says how each went (`outcome`: "recorded" with the
    // recording, or "not recorded"). Deleted with the teacher or the device.
    "CREATE TABLE bookings (
         id INTEGER PRIMARY KEY,
         device_id INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
         teacher_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
         starts_at INTEGER NOT NULL,
         ends_at INTEGER NOT NULL,
         series TEXT NOT NULL,
         created_at INTEGER NOT NULL,
         outcome TEXT,
         recording_id TEXT
     );
     CREATE INDEX bookings_device ON bookings(device_id, starts_at);
     CREATE INDEX bookings_teacher ON bookings(teacher_id, starts_at);",
];

pub fn open(path: &Path) -> anyhow::Result<Connection> {
    let mut conn = Connection::open(path)
        .with_context(|| format!("cannot open the database {}", path.display()))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA busy_timeout = 5000;
         PRAGMA secure_delete = ON;",
    )?;
    migrate(&mut conn)?;
    Ok(conn)
}

/// Whether the database answers (for `/healthz`).
pub fn ping(conn: &Connection) -> rusqlite::Result<()> {
    conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
        .map(|_| ())
}

/// Makes deleted personal data (comments, reflections, names) unreadable in the files: with
/// `secure_delete` the freed pages are zeroed, and a truncating checkpoint clears the WAL, which
/// still holds the pages as they were written. Best effort: a reader holding an old snapshot
/// keeps the WAL until its next checkpoint.
pub fn forget(conn: &Connection) -> rusqlite::Result<()> {
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
}

fn migrate(conn: &mut Connection) -> anyhow::Result<()> {
    let version: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > MIGRATIONS.len() {
        anyhow::bail!(
            "the database is at schema version {version}, newer than this build ({}); run the newer lessonlens-server",
            MIGRATIONS.len()
        );
    }
    // A migration may rebuild a table that others refer to (SQLite's documented way to change a
    // column): foreign keys are off meanwhile and checked before each migration commits.
    conn.pragma_update(None, "foreign_keys", false)?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)
            .with_context(|| format!("migration {} failed", i + 1))?;
        let broken: Option<String> = tx
            .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
            .optional()?;
        if let Some(table) = broken {
            anyhow::bail!("migration {} left broken references in {table}", i + 1);
        }
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
    }
    conn.pragma_update(None, "foreign_keys", true)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn rebuilding_the_devices_table_keeps_recordings_pointing_at_their_device() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("db");
        {
            // A database as the build before migration 7 left it, with a token-era device.
            let conn = rusqlite::Connection::open(&p).unwrap();
            for sql in &super::MIGRATIONS[..6] {
                conn.execute_batch(sql).unwrap();
            }
            conn.pragma_update(None, "user_version", 6).unwrap();
            conn.execute_batch(
                "INSERT INTO users (id, username, display_name, password_hash, roles, created_at, audit_id)
                     VALUES (1, 'alice', 'Alice', 'x', 'teacher', 0, 'u-1');
                 INSERT INTO devices (id, name, token_hash, created_at) VALUES (7, 'room-7', x'00', 0);
                 INSERT INTO recordings (id, owner_id, device_id, created_at) VALUES ('r', 1, 7, 0);",
            )
            .unwrap();
        }
        let conn = super::open(&p).unwrap();
        let name: String = conn
            .query_row(
                "SELECT d.name FROM recordings r JOIN devices d ON d.id = r.device_id",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(name, "room-7");
        // Foreign keys are back on: a recording for a device that does not exist is refused.
        assert!(conn
            .execute(
                "INSERT INTO recordings (id, owner_id, device_id, created_at) VALUES ('s', 1, 99, 0)",
                [],
            )
            .is_err());
    }

    #[test]
    fn migrates_once_and_refuses_newer_schemas() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("db");
        super::open(&p).unwrap();
        let conn = super::open(&p).unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        assert!(super::open(&p)
            .unwrap_err()
            .to_string()
            .contains("newer than this build"));
    }
}
