//! The spool: sealed segments waiting for upload, one folder per recording.
//!
//! ```text
//! spool/<recording-id>/recording.json    who the recording is sealed to, when it started
//! spool/<recording-id>/00000003.seg      a sealed envelope (ciphertext only)
//! spool/<recording-id>/segments.jsonl    journal: one line per segment sealed (index, sha256, timing)
//! spool/<recording-id>/manifest.json     written at stop (or at recovery); uploaded last
//! ```
//! Every file is written durably: tmp file -> fsync -> rename -> fsync the folder, so after a crash
//! or power cut a file is either whole or absent. Plaintext never reaches this folder.

use anyhow::Context;
use lessonlens_proto::envelope::SegmentHeader;
use lessonlens_proto::manifest::MANIFEST_VERSION;
use lessonlens_proto::{
    KeyFingerprint, Manifest, ManifestSegment, PublicKey, RecordingId, SegmentIndex, SegmentKind,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

const META: &str = "recording.json";
const JOURNAL: &str = "segments.jsonl";
const MANIFEST: &str = "manifest.json";

/// What the spool keeps about a recording besides its segments.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordingMeta {
    pub recording: RecordingId,
    /// Hex X25519 public key every segment is sealed to.
    pub recipient: String,
    pub started_at: i64,
    /// For a recording sealed to the school's unassigned key because the server was unreachable:
    /// the code the teacher typed, sealed to that key (see `lessonlens_proto::manifest::seal_claim`).
    #[serde(default)]
    pub claim: Option<String>,
}

/// Something the uploader should send next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending {
    Segment {
        recording: RecordingId,
        index: SegmentIndex,
        path: PathBuf,
    },
    Manifest {
        recording: RecordingId,
        path: PathBuf,
    },
}

#[derive(Debug, Clone)]
pub struct Spool {
    root: PathBuf,
    /// Exclusive lock on `spool/.lock`, held while any clone lives: a second capture process
    /// (or `drain` during a recording) would otherwise close the live recording under us.
    _lock: std::sync::Arc<File>,
    /// Bumped whenever something new is ready to upload, so the uploader sleeps until then
    /// instead of rescanning the folder on a timer.
    changed: std::sync::Arc<(std::sync::Mutex<u64>, std::sync::Condvar)>,
}

/// Removes a temp file if the write did not complete, so a failed write leaves nothing behind.
struct TmpGuard(Option<PathBuf>);

impl Drop for TmpGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_file(p);
        }
    }
}

fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// tmp -> fsync -> rename -> fsync dir. The file is readable by this service's user only.
pub fn write_durable(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut guard = TmpGuard(Some(tmp.clone()));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    // The data must be on disk before the name points at it.
    f.sync_all()?;
    fs::rename(&tmp, dir.join(name))?;
    guard.0 = None;
    // Make the rename itself durable.
    fsync_dir(dir)
}

fn segment_name(index: SegmentIndex) -> String {
    format!("{index:08}.seg")
}

impl Spool {
    pub fn open(root: &Path) -> anyhow::Result<Spool> {
        fs::create_dir_all(root)
            .with_context(|| format!("cannot create the spool folder {}", root.display()))?;
        let lock = File::create(root.join(".lock"))?;
        lock.try_lock().map_err(|_| {
            anyhow::anyhow!(
                "another lessonlens-capture is using the spool {}; wait for it to finish or stop it first",
                root.display()
            )
        })?;
        Ok(Spool {
            root: root.to_path_buf(),
            _lock: std::sync::Arc::new(lock),
            changed: Default::default(),
        })
    }

    fn dir(&self, rec: RecordingId) -> PathBuf {
        self.root.join(rec.to_string())
    }

    pub fn begin(&self, meta: &RecordingMeta) -> anyhow::Result<()> {
        let dir = self.dir(meta.recording);
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        fsync_dir(&self.root)?;
        write_durable(&dir, META, &serde_json::to_vec(meta)?)
            .with_context(|| format!("cannot write {} (disk full?)", dir.join(META).display()))
    }

    /// Stores a sealed segment durably, then notes it in the journal. Returns its sha256.
    pub fn put_segment(
        &self,
        rec: RecordingId,
        index: SegmentIndex,
        sealed: &[u8],
        entry_timing: (u64, u64),
    ) -> anyhow::Result<String> {
        let dir = self.dir(rec);
        let sha = hex::encode(Sha256::digest(sealed));
        write_durable(&dir, &segment_name(index), sealed).with_context(|| {
            format!(
                "cannot spool segment {index} of {rec} in {} (disk full?)",
                dir.display()
            )
        })?;
        let entry = ManifestSegment {
            index,
            sha256: sha.clone(),
            start_us: entry_timing.0,
            duration_us: entry_timing.1,
        };
        let mut line = serde_json::to_vec(&entry)?;
        line.push(b'\n');
        let mut j = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(JOURNAL))?;
        j.write_all(&line)?;
        j.sync_data()?;
        self.notify();
        Ok(sha)
    }

    /// Builds the manifest from the journal and any segment files the journal missed (a crash
    /// between the rename and the journal append), and writes it.
    pub fn finish(&self, rec: RecordingId, clean_stop: bool) -> anyhow::Result<Manifest> {
        let dir = self.dir(rec);
        let meta: RecordingMeta = serde_json::from_slice(&fs::read(dir.join(META))?)
            .with_context(|| format!("{} is damaged", dir.join(META).display()))?;
        let mut segments: BTreeMap<SegmentIndex, ManifestSegment> = BTreeMap::new();
        if let Ok(text) = fs::read_to_string(dir.join(JOURNAL)) {
            // A torn last line (crash mid-append) does not parse and is covered by the file scan.
            for e in text
                .lines()
                .filter_map(|l| serde_json::from_str::<ManifestSegment>(l).ok())
            {
                segments.insert(e.index, e);
            }
        }
        for (index, path) in self.segment_files(rec)? {
            if segments.contains_key(&index) {
                continue;
            }
            let bytes = fs::read(&path)?;
            if let Ok(h) = SegmentHeader::parse(&bytes) {
                segments.insert(
                    index,
                    ManifestSegment {
                        index,
                        sha256: hex::encode(Sha256::digest(&bytes)),
                        start_us: h.start_us,
                        duration_us: h.duration_us,
                    },
                );
            }
        }
        // The poster frame and talk time travel like segments but are not media.
        segments.retain(|&index, _| !SegmentKind::of(index, 0, false).attachment());
        let recipient = PublicKey::from_hex(&meta.recipient)
            .map(|pk| pk.fingerprint())
            .unwrap_or(KeyFingerprint([0; 16]));
        let manifest = Manifest {
            version: MANIFEST_VERSION,
            recording: rec,
            recipient,
            started_at: meta.started_at,
            segments: segments.into_values().collect(),
            clean_stop,
            claim: meta.claim,
        };
        write_durable(&dir, MANIFEST, &manifest.to_json())?;
        self.notify();
        Ok(manifest)
    }

    fn segment_files(&self, rec: RecordingId) -> anyhow::Result<Vec<(SegmentIndex, PathBuf)>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(self.dir(rec))? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if let Some(idx) = name.strip_suffix(".seg").and_then(|s| s.parse().ok()) {
                out.push((idx, path));
            }
        }
        out.sort();
        Ok(out)
    }

    fn recordings(&self) -> anyhow::Result<Vec<RecordingMeta>> {
        let mut metas = Vec::new();
        for entry in fs::read_dir(&self.root)? {
            let path = entry?.path().join(META);
            if let Ok(bytes) = fs::read(&path) {
                if let Ok(meta) = serde_json::from_slice::<RecordingMeta>(&bytes) {
                    metas.push(meta);
                }
            }
        }
        metas.sort_by_key(|m| (m.started_at, m.recording));
        Ok(metas)
    }

    /// Closes recordings left open by a crash or power cut (no manifest) as incomplete, so they are
    /// uploaded and shown truthfully. Call before a recording starts. Returns how many were closed.
    pub fn recover(&self) -> anyhow::Result<usize> {
        let mut n = 0;
        for meta in self.recordings()? {
            if !self.dir(meta.recording).join(MANIFEST).exists() {
                tracing::warn!(recording = %meta.recording, "closing a recording left open by a crash as incomplete");
                self.finish(meta.recording, false)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Everything waiting, oldest recording first, segments in order, each manifest after its
    /// recording's segments.
    pub fn pending(&self) -> anyhow::Result<Vec<Pending>> {
        let mut out = Vec::new();
        for meta in self.recordings()? {
            let rec = meta.recording;
            // Look for the manifest before listing segments: the manifest is written after the
            // last segment, so seeing it first means the listing below is complete.
            let manifest = self.dir(rec).join(MANIFEST);
            let finished = manifest.exists();
            let segs = self.segment_files(rec)?;
            let no_segments = segs.is_empty();
            out.extend(segs.into_iter().map(|(index, path)| Pending::Segment {
                recording: rec,
                index,
                path,
            }));
            if no_segments && finished {
                out.push(Pending::Manifest {
                    recording: rec,
                    path: manifest,
                });
            }
        }
        Ok(out)
    }

    /// A counter that changes whenever something new is ready to upload.
    pub fn generation(&self) -> u64 {
        *self.changed.0.lock().expect("spool lock")
    }

    /// Waits up to `timeout` for the spool to change after `seen`; true if it did.
    pub fn wait_changed(&self, seen: u64, timeout: std::time::Duration) -> bool {
        let (lock, cv) = &*self.changed;
        let guard = lock.lock().expect("spool lock");
        let (guard, _) = cv
            .wait_timeout_while(guard, timeout, |g| *g == seen)
            .expect("spool lock");
        *guard != seen
    }

    fn notify(&self) {
        let (lock, cv) = &*self.changed;
        *lock.lock().expect("spool lock") += 1;
        cv.notify_all();
    }

    /// Moves a segment the server refused for good (it will never accept these bytes) out of the
    /// upload queue, into `spool/quarantine/`, so the rest of the spool keeps flowing. It is kept,
    /// not deleted: the server has not acknowledged it.
    pub fn quarantine(
        &self,
        rec: RecordingId,
        index: SegmentIndex,
        path: &Path,
    ) -> anyhow::Result<PathBuf> {
        let q = self.root.join("quarantine");
        fs::create_dir_all(&q)?;
        let dest = q.join(format!("{rec}-{}", segment_name(index)));
        fs::rename(path, &dest)?;
        fsync_dir(&q)?;
        fsync_dir(path.parent().unwrap_or(&self.root))?;
        Ok(dest)
    }

    /// Removes an acknowledged segment.
    pub fn remove(&self, path: &Path) -> anyhow::Result<()> {
        fs::remove_file(path)?;
        fsync_dir(path.parent().unwrap_or(&self.root))?;
        Ok(())
    }

    /// Removes a recording whose manifest the server acknowledged.
    pub fn remove_recording(&self, rec: RecordingId) -> anyhow::Result<()> {
        let dir = self.dir(rec);
        for name in [MANIFEST, JOURNAL, META] {
            match fs::remove_file(dir.join(name)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }
        // Fails (and keeps them) if any segment is somehow still there.
        fs::remove_dir(&dir).with_context(|| {
            format!("{} still holds files; they stay for upload", dir.display())
        })?;
        fsync_dir(&self.root)?;
        Ok(())
    }

    /// Moves a recording whose manifest the server refused for good into `spool/quarantine/`.
    pub fn quarantine_recording(&self, rec: RecordingId) -> anyhow::Result<PathBuf> {
        let q = self.root.join("quarantine");
        fs::create_dir_all(&q)?;
        let dest = q.join(rec.to_string());
        fs::rename(self.dir(rec), &dest)?;
        fsync_dir(&q)?;
        fsync_dir(&self.root)?;
        Ok(dest)
    }

    /// How many recordings are waiting for upload (wholly or in part).
    pub fn recordings_waiting(&self) -> usize {
        self.recordings().map(|r| r.len()).unwrap_or(0)
    }

    /// Segments of `rec` still waiting for upload, or `None` once the whole recording (its
    /// manifest too) is with the server and gone from the spool.
    pub fn segments_waiting(&self, rec: RecordingId) -> Option<usize> {
        if !self.dir(rec).exists() {
            return None;
        }
        Some(self.segment_files(rec).map(|s| s.len()).unwrap_or(0))
    }

    /// Bytes waiting in the spool.
    pub fn usage_bytes(&self) -> u64 {
        fn walk(p: &Path) -> u64 {
            fs::read_dir(p)
                .map(|rd| {
                    rd.flatten()
                        .map(|e| match e.metadata() {
                            Ok(m) if m.is_dir() => walk(&e.path()),
                            Ok(m) => m.len(),
                            Err(_) => 0,
                        })
                        .sum()
                })
                .unwrap_or(0)
        }
        walk(&self.root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(rec: RecordingId, started_at: i64) -> RecordingMeta {
        RecordingMeta {
            recording: rec,
            recipient: "00".repeat(32),
            started_at,
            claim: None,
        }
    }

    #[test]
    fn pending_orders_oldest_first_and_manifest_last() {
        let tmp = tempfile::tempdir().unwrap();
        let spool = Spool::open(tmp.path()).unwrap();
        let old = RecordingId::from_random_bytes([2; 16]);
        let new = RecordingId::from_random_bytes([1; 16]);
        spool.begin(&meta(new, 200)).unwrap();
        spool.begin(&meta(old, 100)).unwrap();
        spool.put_segment(new, 0, b"n0", (0, 0)).unwrap();
        spool.put_segment(old, 1, b"o1", (0, 1)).unwrap();
        spool.put_segment(old, 0, b"o0", (0, 0)).unwrap();
        let p = spool.pending().unwrap();
        let order: Vec<_> = p
            .iter()
            .map(|x| match x {
                Pending::Segment {
                    recording, index, ..
                } => (*recording, *index),
                Pending::Manifest { .. } => panic!("no manifest yet"),
            })
            .collect();
        assert_eq!(order, vec![(old, 0), (old, 1), (new, 0)]);
        // Nothing half-written is left behind.
        assert!(fs::read_dir(tmp.path().join(old.to_string()))
            .unwrap()
            .all(|e| !e.unwrap().file_name().to_string_lossy().ends_with(".tmp")));
    }

    #[test]
    fn the_uploader_is_woken_when_a_segment_is_spooled() {
        let tmp = tempfile::tempdir().unwrap();
        let spool = Spool::open(tmp.path()).unwrap();
        let rec = RecordingId::from_random_bytes([5; 16]);
        spool.begin(&meta(rec, 1)).unwrap();
        let seen = spool.generation();
        assert!(
            !spool.wait_changed(seen, std::time::Duration::from_millis(20)),
            "nothing new yet"
        );
        let writer = spool.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            writer.put_segment(rec, 0, b"x", (0, 0)).unwrap();
        });
        assert!(spool.wait_changed(seen, std::time::Duration::from_secs(10)));
        t.join().unwrap();
    }

    #[test]
    fn a_second_process_cannot_use_the_same_spool() {
        let tmp = tempfile::tempdir().unwrap();
        let first = Spool::open(tmp.path()).unwrap();
        let err = Spool::open(tmp.path()).unwrap_err().to_string();
        assert!(err.contains("another lessonlens-capture"), "{err}");
        drop(first);
        Spool::open(tmp.path()).unwrap();
    }

    #[test]
    fn recover_closes_abandoned_recordings_as_incomplete() {
        let tmp = tempfile::tempdir().unwrap();
        let spool = Spool::open(tmp.path()).unwrap();
        let crashed = RecordingId::from_random_bytes([3; 16]);
        let closed = RecordingId::from_random_bytes([4; 16]);
        spool.begin(&meta(crashed, 1)).unwrap();
        spool.begin(&meta(closed, 2)).unwrap();
        spool.finish(closed, true).unwrap();
        spool.put_segment(crashed, 0, b"x", (0, 0)).unwrap();
        // A torn journal line from a crash mid-append is ignored.
        let mut j = OpenOptions::new()
            .append(true)
            .open(tmp.path().join(crashed.to_string()).join(JOURNAL))
            .unwrap();
        j.write_all(b"{\"index\":").unwrap();
        assert_eq!(
            spool.recover().unwrap(),
            1,
            "only the recording without a manifest"
        );
        let m: Manifest = Manifest::parse(
            &fs::read(tmp.path().join(crashed.to_string()).join(MANIFEST)).unwrap(),
        )
        .unwrap();
        assert!(!m.clean_stop);
        assert_eq!(m.segments.len(), 1);
        let kept =
            Manifest::parse(&fs::read(tmp.path().join(closed.to_string()).join(MANIFEST)).unwrap())
                .unwrap();
        assert!(
            kept.clean_stop,
            "a cleanly closed recording is left as it was"
        );
        // Once the segments are gone, the manifest is what is pending.
        let seg = tmp.path().join(crashed.to_string()).join(segment_name(0));
        spool.remove(&seg).unwrap();
        assert!(matches!(
            spool.pending().unwrap()[0],
            Pending::Manifest { .. }
        ));
    }
}
