//! Classroom devices: one-time enrollment codes, the client certificates the school CA issues to
//! them, and revocation. A device is known by the SHA-256 of its certificate; every certificate
//! issued is kept until it expires, and revoking the device forgets them all at once.

use lessonlens_proto::wire::DeviceReport;
use rand_core::{OsRng, RngCore, TryRngCore};
use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// How long an enrollment code works.
pub const CODE_SECONDS: i64 = 10 * 60;

/// Letters and digits that cannot be mistaken for each other when read aloud or typed (no 0/O,
/// 1/I/L, U).
const CODE_ALPHABET: &[u8; 30] = b"23456789ABCDEFGHJKMNPQRSTVWXYZ";
/// 12 symbols: about 59 bits, shown as three groups of four.
const CODE_LEN: usize = 12;

#[derive(Debug, Clone)]
pub struct Device {
    pub id: i64,
    pub name: String,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    #[error("a device name is 1 to 64 letters, digits, '-', '_' or '.' (e.g. room-12)")]
    BadName,
    #[error("device {0:?} was revoked; enrol its replacement under a new name")]
    Revoked(String),
    #[error("that enrollment code is wrong, used or expired; ask an admin for a new one")]
    BadCode,
    #[error("database error: {0}")]
    Db(#[from] rusqlite::Error),
}

pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// A code as typed: case and separators do not matter.
fn normalise(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

fn code_hash(code: &str) -> Vec<u8> {
    Sha256::digest(normalise(code).as_bytes()).to_vec()
}

fn is_revoked(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    Ok(conn
        .query_row("SELECT revoked FROM devices WHERE name = ?1", [name], |r| {
            r.get::<_, bool>(0)
        })
        .optional()?
        .unwrap_or(false))
}

/// A one-time code that enrols device `name` within [`CODE_SECONDS`]: a new device, or an
/// existing one that must enrol again (its certificate expired, or its disk was replaced).
pub fn create_code(
    conn: &Connection,
    name: &str,
    now: i64,
) -> Result<Zeroizing<String>, DeviceError> {
    if !valid_name(name) {
        return Err(DeviceError::BadName);
    }
    if is_revoked(conn, name)? {
        return Err(DeviceError::Revoked(name.into()));
    }
    // Rejection sampling: bytes from 240 up would favour the first symbols, so they are drawn
    // again.
    let mut symbols = Zeroizing::new(Vec::with_capacity(CODE_LEN));
    let mut byte = Zeroizing::new([0u8; 1]);
    while symbols.len() < CODE_LEN {
        OsRng.unwrap_err().fill_bytes(byte.as_mut());
        if byte[0] < 240 {
            symbols.push(CODE_ALPHABET[usize::from(byte[0]) % 30]);
        }
    }
    let code = Zeroizing::new(
        symbols
            .chunks(4)
            .map(|c| std::str::from_utf8(c).expect("ascii"))
            .collect::<Vec<_>>()
            .join("-"),
    );
    conn.execute("DELETE FROM enrollment_codes WHERE expires_at <= ?1", [now])?;
    conn.execute(
        "INSERT INTO enrollment_codes (code_hash, device_name, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
        params![code_hash(&code), name, now, now + CODE_SECONDS],
    )?;
    Ok(code)
}

/// Uses up `code` and returns its device, made now if it is new. A device enrolling again loses
/// its earlier certificates. Call inside the transaction that stores the new certificate.
pub fn redeem_code(conn: &Connection, code: &str, now: i64) -> Result<Device, DeviceError> {
    let name: String = conn
        .query_row(
            "DELETE FROM enrollment_codes WHERE code_hash = ?1 AND expires_at > ?2 RETURNING device_name",
            params![code_hash(code), now],
            |r| r.get(0),
        )
        .optional()?
        .ok_or(DeviceError::BadCode)?;
    if is_revoked(conn, &name)? {
        return Err(DeviceError::Revoked(name));
    }
    let existing: Option<i64> = conn
        .query_row("SELECT id FROM devices WHERE name = ?1", [&name], |r| {
            r.get(0)
        })
        .optional()?;
    let id = match existing {
        Some(id) => {
            conn.execute("DELETE FROM device_certs WHERE device_id = ?1", [id])?;
            id
        }
        None => {
            conn.execute(
                "INSERT INTO devices (name, created_at) VALUES (?1, ?2)",
                params![name, now],
            )?;
            conn.last_insert_rowid()
        }
    };
    Ok(Device { id, name })
}

/// Records a certificate issued to device `id`.
pub fn add_cert(
    conn: &Connection,
    id: i64,
    sha256: &[u8; 32],
    now: i64,
    not_after: i64,
) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM device_certs WHERE not_after <= ?1", [now])?;
    conn.execute(
        "INSERT INTO device_certs (sha256, device_id, issued_at, not_after) VALUES (?1, ?2, ?3, ?4)",
        params![sha256.as_slice(), id, now, not_after],
    )?;
    Ok(())
}

/// How long a certificate still works after a newer one of the device's was first used: requests
/// already on their way (another thread, a kept-alive connection) with the old one.
pub const RETIRED_GRACE_SECS: i64 = 60;

/// The device holding the certificate with this SHA-256, if the certificate is current and the
/// device not revoked. Notes when the device was last seen.
///
/// Renewal leaves the old certificate valid (its answer may have been lost), but once the new one
/// is used the older ones are retired. A retired certificate used again after
/// [`RETIRED_GRACE_SECS`] means another machine holds a copy of the identity: it is refused, and
/// the admin's device list says so.
pub fn by_cert(conn: &Connection, sha256: &[u8; 32], now: i64) -> rusqlite::Result<Option<Device>> {
    let row: Option<(i64, Option<i64>, Device)> = conn
        .query_row(
            "SELECT c.rowid, c.retired_at, d.id, d.name FROM device_certs c JOIN devices d ON d.id = c.device_id
             WHERE c.sha256 = ?1 AND c.not_after > ?2 AND d.revoked = 0",
            params![sha256.as_slice(), now],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    Device {
                        id: r.get(2)?,
                        name: r.get(3)?,
                    },
                ))
            },
        )
        .optional()?;
    let Some((cert, retired_at, device)) = row else {
        return Ok(None);
    };
    match retired_at {
        Some(at) if now - at > RETIRED_GRACE_SECS => {
            tracing::warn!(device = %device.name, "a retired certificate was used: two machines hold this device's identity");
            conn.execute(
                "UPDATE devices SET identity_conflict_at = ?1 WHERE id = ?2",
                params![now, device.id],
            )?;
            return Ok(None);
        }
        Some(_) => {}
        None => {
            conn.execute(
                "UPDATE device_certs SET retired_at = ?1
                 WHERE device_id = ?2 AND rowid < ?3 AND retired_at IS NULL",
                params![now, device.id, cert],
            )?;
        }
    }
    conn.execute(
        "UPDATE devices SET last_seen = ?1 WHERE id = ?2",
        params![now, device.id],
    )?;
    Ok(Some(device))
}

/// Whether the certificate with this SHA-256 has been retired (a newer one of the device's was
/// used); if so, notes that two machines hold the identity. Renewal asks this.
pub fn refuse_if_retired(
    conn: &Connection,
    device: i64,
    sha256: &[u8; 32],
    now: i64,
) -> rusqlite::Result<bool> {
    let retired: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM device_certs WHERE sha256 = ?1 AND retired_at IS NOT NULL)",
        [sha256.as_slice()],
        |r| r.get(0),
    )?;
    if retired {
        conn.execute(
            "UPDATE devices SET identity_conflict_at = ?1 WHERE id = ?2",
            params![now, device],
        )?;
    }
    Ok(retired)
}

/// Revokes device `name` for good: its certificates stop working on the next request and its
/// unused enrollment codes are void. False if there is no such device.
pub fn revoke(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.execute(
        "DELETE FROM enrollment_codes WHERE device_name = ?1",
        [name],
    )?;
    let n = conn.execute("UPDATE devices SET revoked = 1 WHERE name = ?1", [name])?;
    conn.execute(
        "DELETE FROM device_certs WHERE device_id IN (SELECT id FROM devices WHERE name = ?1)",
        [name],
    )?;
    Ok(n > 0)
}

/// A device as the admin page lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeviceInfo {
    /// Its row id (not shown).
    #[serde(skip)]
    pub id: i64,
    pub name: String,
    pub created_at: i64,
    pub last_seen: Option<i64>,
    pub revoked: bool,
    /// When its newest certificate expires; none if it holds none (revoked, or never enrolled).
    pub certificate_expires: Option<i64>,
    /// What it last reported, and when.
    pub report: Option<DeviceReport>,
    pub reported_at: Option<i64>,
    /// When a retired certificate of its was last used: two machines hold its identity.
    pub identity_conflict_at: Option<i64>,
}

pub fn list(conn: &Connection) -> rusqlite::Result<Vec<DeviceInfo>> {
    let mut stmt = conn.prepare(
        "SELECT d.name, d.created_at, d.last_seen, d.revoked, MAX(c.not_after), d.report, d.reported_at,
                d.identity_conflict_at, d.id
         FROM devices d LEFT JOIN device_certs c ON c.device_id = d.id
         GROUP BY d.id ORDER BY d.name",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(DeviceInfo {
            name: r.get(0)?,
            created_at: r.get(1)?,
            last_seen: r.get(2)?,
            revoked: r.get(3)?,
            certificate_expires: r.get(4)?,
            // A report that no longer parses (an older format) is shown as none.
            report: r
                .get::<_, Option<String>>(5)?
                .and_then(|t| serde_json::from_str(&t).ok()),
            reported_at: r.get(6)?,
            identity_conflict_at: r.get(7)?,
            id: r.get(8)?,
        })
    })?;
    rows.collect()
}

/// Keeps device `id`'s latest report. Text fields are cut to 200 characters: a report is for a
/// list on a page, not a log.
pub fn save_report(
    conn: &Connection,
    id: i64,
    mut report: DeviceReport,
    now: i64,
) -> rusqlite::Result<()> {
    let cut = |s: &mut String| {
        if let Some((i, _)) = s.char_indices().nth(200) {
            s.truncate(i);
        }
    };
    cut(&mut report.version);
    cut(&mut report.state);
    for s in [&mut report.video_encoder, &mut report.last_error]
        .into_iter()
        .flatten()
    {
        cut(s);
    }
    // A key fingerprint is 32 hex digits, or it is not one.
    report.recipient = report
        .recipient
        .filter(|r| r.len() == 32 && r.bytes().all(|b| b.is_ascii_hexdigit()));
    // A device has four watchdogs; more is not a report to keep.
    report.warnings.truncate(4);
    report.warnings.iter_mut().for_each(cut);
    let text = serde_json::to_string(&report).expect("a report serialises");
    conn.execute(
        "UPDATE devices SET report = ?1, reported_at = ?2 WHERE id = ?3",
        params![text, now, id],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, Connection) {
        let t = tempfile::tempdir().unwrap();
        let c = crate::store::db::open(&t.path().join("db")).unwrap();
        (t, c)
    }

    #[test]
    fn a_code_enrols_once_within_ten_minutes() {
        let (_t, c) = db();
        let code = create_code(&c, "room-1", 1000).unwrap();
        assert_eq!(code.len(), 14, "three groups of four: {}", &*code);
        // Stored hashed only.
        let stored: Vec<u8> = c
            .query_row("SELECT code_hash FROM enrollment_codes", [], |r| r.get(0))
            .unwrap();
        assert_ne!(stored, code.as_bytes());
        // Typed in lower case without dashes, it still works, once.
        let typed = code.replace('-', "").to_lowercase();
        let d = redeem_code(&c, &typed, 1000 + CODE_SECONDS - 1).unwrap();
        assert_eq!(d.name, "room-1");
        assert!(matches!(
            redeem_code(&c, &code, 1001),
            Err(DeviceError::BadCode)
        ));
        // Expired.
        let late = create_code(&c, "room-2", 1000).unwrap();
        assert!(matches!(
            redeem_code(&c, &late, 1000 + CODE_SECONDS),
            Err(DeviceError::BadCode)
        ));
        assert!(matches!(
            create_code(&c, "room 3; drop", 0),
            Err(DeviceError::BadName)
        ));
    }

    #[test]
    fn certificates_identify_devices_until_revoked_or_expired() {
        let (_t, c) = db();
        let code = create_code(&c, "room-1", 0).unwrap();
        let d = redeem_code(&c, &code, 0).unwrap();
        let (first, second) = ([1u8; 32], [2u8; 32]);
        add_cert(&c, d.id, &first, 0, 100).unwrap();
        add_cert(&c, d.id, &second, 50, 200).unwrap();
        // Both the renewed and the earlier certificate work while current.
        assert_eq!(by_cert(&c, &first, 99).unwrap().unwrap().name, "room-1");
        assert!(by_cert(&c, &first, 100).unwrap().is_none(), "expired");
        assert!(by_cert(&c, &second, 100).unwrap().is_some());
        assert!(by_cert(&c, &[3u8; 32], 100).unwrap().is_none(), "unknown");
        // Enrolling again replaces the old certificates.
        let again = create_code(&c, "room-1", 100).unwrap();
        assert_eq!(redeem_code(&c, &again, 100).unwrap().id, d.id);
        assert!(by_cert(&c, &second, 101).unwrap().is_none());
        add_cert(&c, d.id, &first, 101, 300).unwrap();
        // Revoked: nothing works, and no new code can be made for the name.
        let pending = create_code(&c, "room-1", 102).unwrap();
        assert!(revoke(&c, "room-1").unwrap());
        assert!(by_cert(&c, &first, 103).unwrap().is_none());
        assert!(matches!(
            redeem_code(&c, &pending, 103),
            Err(DeviceError::BadCode)
        ));
        assert!(matches!(
            create_code(&c, "room-1", 103),
            Err(DeviceError::Revoked(_))
        ));
        assert!(!revoke(&c, "no-such-room").unwrap());
        let listed = list(&c).unwrap();
        assert_eq!(listed.len(), 1);
        assert!(listed[0].revoked && listed[0].certificate_expires.is_none());
    }

    /// Issue 14.6: a copied identity. Once the renewed certificate is used, the earlier one is
    /// retired; used again after the grace period, it is refused and the list says two machines
    /// hold the identity.
    #[test]
    fn a_retired_certificate_used_again_is_refused_and_reported() {
        let (_t, c) = db();
        let code = create_code(&c, "room-1", 0).unwrap();
        let d = redeem_code(&c, &code, 0).unwrap();
        let (old, new) = ([1u8; 32], [2u8; 32]);
        add_cert(&c, d.id, &old, 0, 10_000).unwrap();
        // Renewed, but the answer was lost: the old certificate goes on working.
        add_cert(&c, d.id, &new, 100, 10_000).unwrap();
        assert!(by_cert(&c, &old, 200).unwrap().is_some());
        // The new one is used: requests already on their way with the old one still pass...
        assert!(by_cert(&c, &new, 300).unwrap().is_some());
        assert!(by_cert(&c, &old, 300 + RETIRED_GRACE_SECS)
            .unwrap()
            .is_some());
        assert!(list(&c).unwrap()[0].identity_conflict_at.is_none());
        assert!(!refuse_if_retired(&c, d.id, &new, 301).unwrap());
        // ...but not to renew: a copy that renewed first would push the real device out.
        assert!(refuse_if_retired(&c, d.id, &old, 302).unwrap());
        assert_eq!(list(&c).unwrap()[0].identity_conflict_at, Some(302));
        // ...and later the old one is another machine's copy.
        assert!(by_cert(&c, &old, 301 + RETIRED_GRACE_SECS)
            .unwrap()
            .is_none());
        assert_eq!(
            list(&c).unwrap()[0].identity_conflict_at,
            Some(301 + RETIRED_GRACE_SECS)
        );
        assert!(by_cert(&c, &new, 400).unwrap().is_some());
    }
}
