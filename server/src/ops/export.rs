//! Subject access (UK GDPR article 15): everything lessonlens holds about one person, as one ZIP
//! archive written as a stream (the web app streams it to the browser; the CLI writes a file for
//! a formal request). Videos are decrypted one segment at a time into the archive and never
//! touch the server's disk in plaintext.
//!
//! The archive holds `README.txt`, `account.json`, `recordings.json` (their lessons, with shares
//! and deletion dates), `comments.json` (what they wrote anywhere, and what others wrote on their
//! lessons), `audit.json` (entries by them, about them or about their lessons; people named as
//! in the admin's log), `videos/`, one MP4 per lesson (one per part when a privacy pause
//! split it), `posters/`, each lesson's poster frame (JPEG) as the library shows it, and
//! `talk-time/`, each lesson's talk time as the device classed it (JSON, one letter a second).

use crate::domain::people::User;
use crate::domain::segments::parts;
use crate::store::blobs::BlobStore;
use crate::store::segments;
use crate::store::vault::Vault;
use anyhow::Context;
use lessonlens_proto::RecordingId;
use rusqlite::Connection;
use std::io::Write;
use std::sync::Mutex;
use zip::write::SimpleFileOptions;

const README: &str = "This archive holds everything lessonlens holds about you, as of the time in account.json.\n\
account.json     your account (with the groups you are in and the rooms you booked)\n\
recordings.json  your recorded lessons: when, where, how complete, who they are shared with, when they will be deleted\n\
comments.json    comments you wrote, and comments others wrote on your lessons\n\
audit.json       the audit log's entries about you and your lessons (sign-ins, views, shares, deletions)\n\
videos/          your lessons as MP4 files (one file per part when a privacy pause split a lesson)\n\
posters/         the first frame of each lesson (JPEG), as the library shows it\n\
talk-time/       who talked in each second of each lesson, as the classroom device worked it out (JSON: t teacher, p pupils, b both, v someone, - silence)\n";

/// Writes the archive for `user` into `out`. The database and vault locks are taken per step,
/// never across the whole export, so a server stays responsive while a long one runs.
pub fn write_archive<W: Write>(
    db: &Mutex<Connection>,
    vault: &Mutex<Vault>,
    blobs: &dyn BlobStore,
    user: &User,
    now: i64,
    out: W,
) -> anyhow::Result<()> {
    let lock_db = || {
        db.lock()
            .map_err(|_| anyhow::anyhow!("database lock poisoned"))
    };
    let (docs, lessons) = crate::store::subject::gather(&*lock_db()?, user, now)?;
    let mut zip = zip::ZipWriter::new_stream(out);
    let stored = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .unix_permissions(0o600);
    zip.start_file("README.txt", stored)?;
    zip.write_all(README.as_bytes())?;
    for (name, value) in docs {
        zip.start_file(name, stored)?;
        zip.write_all(serde_json::to_string_pretty(&value)?.as_bytes())?;
    }
    // The key is looked up for each segment, not held for the whole export: the vault reuses it
    // for under a minute, and a key shredded meanwhile (the teacher left) ends the export.
    let key = || -> anyhow::Result<std::sync::Arc<lessonlens_proto::SecretKey>> {
        vault
            .lock()
            .map_err(|_| anyhow::anyhow!("vault lock poisoned"))?
            .secret_key(user.id)?
            .context("the teacher's key was deleted during the export; the archive is incomplete")
    };
    let has_key = vault
        .lock()
        .map_err(|_| anyhow::anyhow!("vault lock poisoned"))?
        .public_key(user.id)?
        .is_some();
    if has_key {
        for (id, created_at, segs) in &lessons {
            let rec: RecordingId = id.parse().context("a stored recording id does not parse")?;
            let day = time::OffsetDateTime::from_unix_timestamp(*created_at)
                .map(|t| t.date().to_string())
                .unwrap_or_default();
            let parts = parts(segs);
            for (n, part) in parts.iter().enumerate() {
                let name = if parts.len() == 1 {
                    format!("videos/{day}_{id}.mp4")
                } else {
                    format!("videos/{day}_{id}_part{}.mp4", n + 1)
                };
                zip.start_file(name, stored.large_file(true))?;
                for &index in part {
                    let sha = segments::sha_of(&*lock_db()?, rec, index)?
                        .context("a segment of the lesson is gone")?;
                    let plaintext = blobs.open_segment(&sha, &*key()?, rec, index)?;
                    zip.write_all(&plaintext)?;
                }
            }
            let poster = segments::sha_of(&*lock_db()?, rec, lessonlens_proto::POSTER_INDEX)?;
            if let Some(sha) = poster {
                zip.start_file(format!("posters/{day}_{id}.jpg"), stored)?;
                let jpeg =
                    blobs.open_segment(&sha, &*key()?, rec, lessonlens_proto::POSTER_INDEX)?;
                zip.write_all(&jpeg)?;
            }
            let talk = segments::sha_of(&*lock_db()?, rec, lessonlens_proto::TALK_INDEX)?;
            if let Some(sha) = talk {
                // Talk time that does not open (damaged, or a hostile device's) is named, and
                // the archive goes on.
                match blobs.open_segment(&sha, &*key()?, rec, lessonlens_proto::TALK_INDEX) {
                    Ok(json) => {
                        zip.start_file(format!("talk-time/{day}_{id}.json"), stored)?;
                        zip.write_all(&json)?;
                    }
                    Err(e) => {
                        tracing::warn!(recording = %rec, error = %format!("{e:#}"), "talk time does not open");
                        zip.start_file(format!("talk-time/{day}_{id}.txt"), stored)?;
                        zip.write_all(b"This lesson's talk time failed its integrity check and could not be opened.\n")?;
                    }
                }
            }
        }
    }
    zip.finish()?.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::domain::people::Role;
    use crate::store::accounts::{self};
    use crate::store::blobs::{BlobStore, LocalBlobs};
    use crate::store::vault::{MasterKey, Vault};
    use rusqlite::{params, Connection};
    use std::sync::Mutex;

    /// What the archive is written into: notes whether the database or vault lock was held while
    /// it was written to, and shreds the teacher's key once the video's bytes flow.
    struct Probe<'a> {
        db: &'a Mutex<Connection>,
        vault: &'a Mutex<Vault>,
        teacher: crate::domain::people::UserId,
        /// The end of the video's name in the archive.
        video: String,
        in_video: bool,
        shredded: bool,
        locked_while_writing: bool,
    }

    impl std::io::Write for Probe<'_> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.locked_while_writing |=
                self.db.try_lock().is_err() || self.vault.try_lock().is_err();
            if self.in_video && !self.shredded {
                // try_lock: a lock held by the export would make this fail, not hang.
                match self.vault.try_lock() {
                    Ok(v) => {
                        v.shred(self.teacher, 0).unwrap();
                    }
                    Err(_) => self.locked_while_writing = true,
                }
                self.shredded = true;
            }
            // The video's entry header names it; its bytes follow.
            self.in_video |= buf
                .windows(self.video.len())
                .any(|w| w == self.video.as_bytes());
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Issue 14.7: an export held the teacher's unwrapped key for its whole length and went on
    /// after the key was shredded; and nothing else could use the database or the vault while
    /// one ran. Now the key is looked up per segment and locks are held per step.
    #[test]
    fn a_key_shredded_during_an_export_ends_it_and_no_lock_is_held_while_writing() {
        let tmp = tempfile::tempdir().unwrap();
        let conn = crate::store::db::open(&tmp.path().join("db")).unwrap();
        let master = MasterKey::load_or_create(&tmp.path().join("master.key")).unwrap();
        let vault = Vault::open(&tmp.path().join("vault.db"), master).unwrap();
        let blobs = LocalBlobs::open(&tmp.path().join("blobs")).unwrap();
        let id = accounts::add_user(&conn, "alice", "Alice", "a-long-password", &[Role::Teacher])
            .unwrap();
        let pk = vault.create_key(id, 0).unwrap();
        let rec = lessonlens_proto::RecordingId::from_random_bytes([3; 16]);
        conn.execute(
            "INSERT INTO devices (id, name, created_at) VALUES (1, 'room-1', 0)",
            [],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO recordings (id, owner_id, device_id, created_at) VALUES (?1, ?2, 1, 0)",
            params![rec.to_string(), id],
        )
        .unwrap();
        for index in 0..4u32 {
            use lessonlens_proto::envelope::{seal, Label, SealParams, DEFAULT_CHUNK_SIZE};
            let duration_us = if index == 0 { 0 } else { 2_000_000 };
            let params = SealParams {
                label: Label {
                    recording: rec,
                    index,
                },
                final_segment: false,
                start_us: 0,
                duration_us,
                chunk_size: DEFAULT_CHUNK_SIZE,
            };
            let sealed = seal(
                &params,
                &pk,
                &[index as u8; 4096],
                &mut rand_core::TryRngCore::unwrap_err(rand_core::OsRng),
            )
            .unwrap();
            let mut incoming = blobs.begin().unwrap();
            incoming.write(&sealed).unwrap();
            let sha = blobs.commit(incoming).unwrap();
            conn.execute(
                "INSERT INTO segments (recording_id, idx, sha256, bytes, start_us, duration_us, final, stored_at)
                 VALUES (?1, ?2, ?3, ?4, 0, ?5, 0, 0)",
                params![rec.to_string(), index, sha, sealed.len() as i64, duration_us],
            )
            .unwrap();
        }
        let user = accounts::find_user(&conn, "alice").unwrap().unwrap();
        let (db, vault) = (Mutex::new(conn), Mutex::new(vault));
        let mut probe = Probe {
            db: &db,
            vault: &vault,
            teacher: id,
            video: format!("_{rec}.mp4"),
            in_video: false,
            shredded: false,
            locked_while_writing: false,
        };
        let err = super::write_archive(&db, &vault, &blobs, &user, 0, &mut probe)
            .expect_err("the export went on after the key was shredded");
        assert!(probe.shredded);
        assert!(
            format!("{err:#}").contains("key was deleted during the export"),
            "{err:#}"
        );
        assert!(!probe.locked_while_writing, "a lock was held while writing");
    }
}
