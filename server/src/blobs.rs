//! Blob storage for sealed segments (ciphertext only). Blobs are named by the SHA-256 of their
//! bytes. A blob is written durably before its database row exists: the row is the commit point,
//! so a crash can leave an unreferenced blob but never a row without its blob.

use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

pub struct LocalBlobs {
    root: PathBuf,
}

/// A blob being received: bytes go to a temp file while they are hashed.
pub struct Incoming {
    /// `None` once committed; otherwise removed on drop, so an interrupted upload leaves nothing.
    tmp: Option<PathBuf>,
    file: File,
    hasher: Sha256,
    len: u64,
    /// The first bytes, kept to read the envelope header without reopening the file.
    head: Vec<u8>,
}

const HEAD_LEN: usize = lessonlens_proto::envelope::CONTENT_OFFSET;

fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl LocalBlobs {
    pub fn open(root: &Path) -> std::io::Result<LocalBlobs> {
        let fresh = !root.exists();
        std::fs::create_dir_all(root.join("tmp"))?;
        if fresh {
            // Make the new folders themselves durable before any blob relies on them.
            fsync_dir(root)?;
            if let Some(parent) = root.parent() {
                fsync_dir(parent)?;
            }
        }
        // Temp files left by a crash were never committed; remove them.
        for e in std::fs::read_dir(root.join("tmp"))?.flatten() {
            let _ = std::fs::remove_file(e.path());
        }
        Ok(LocalBlobs {
            root: root.to_path_buf(),
        })
    }

    fn path(&self, sha: &str) -> PathBuf {
        self.root.join(&sha[..2]).join(sha)
    }

    pub fn begin(&self) -> std::io::Result<Incoming> {
        let mut name = [0u8; 16];
        rand_core::RngCore::fill_bytes(
            &mut rand_core::TryRngCore::unwrap_err(rand_core::OsRng),
            &mut name,
        );
        let tmp = self.root.join("tmp").join(hex::encode(name));
        let file = File::create(&tmp)?;
        Ok(Incoming {
            tmp: Some(tmp),
            file,
            hasher: Sha256::new(),
            len: 0,
            head: Vec::with_capacity(HEAD_LEN),
        })
    }

    /// Makes a received blob durable under its hash: fsync the file, rename, fsync the folder.
    pub fn commit(&self, mut incoming: Incoming) -> std::io::Result<String> {
        let sha = incoming.sha256_so_far();
        // 1. The bytes must be on disk before the name points at them.
        incoming.file.sync_all()?;
        let final_path = self.path(&sha);
        let dir = final_path.parent().expect("blob path has a parent");
        if !dir.exists() {
            std::fs::create_dir_all(dir)?;
            // A new shard folder must itself survive a power cut.
            fsync_dir(&self.root)?;
        }
        // 2. Atomic rename: readers see the whole blob or nothing.
        let tmp = incoming.tmp.take().expect("not yet committed");
        if let Err(e) = std::fs::rename(&tmp, &final_path) {
            incoming.tmp = Some(tmp);
            return Err(e);
        }
        // 3. Make the rename durable.
        fsync_dir(dir)?;
        Ok(sha)
    }

    /// Removes a blob no row refers to (the losing side of a conflicting upload).
    pub fn remove(&self, sha: &str) -> std::io::Result<()> {
        std::fs::remove_file(self.path(sha))
    }

    /// Reads and opens segment `index` of `recording` with its owner's key `sk`; the label in
    /// the envelope must match, so a blob swapped for another segment's is refused.
    pub fn open_segment(
        &self,
        sha: &str,
        sk: &lessonlens_proto::SecretKey,
        recording: lessonlens_proto::RecordingId,
        index: lessonlens_proto::SegmentIndex,
    ) -> anyhow::Result<lessonlens_proto::envelope::Opened> {
        open_sealed(&self.read(sha)?, sk, recording, index)
    }

    pub fn read(&self, sha: &str) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.path(sha))
    }
}

/// Opens sealed segment bytes (see [`LocalBlobs::open_segment`]).
pub fn open_sealed(
    sealed: &[u8],
    sk: &lessonlens_proto::SecretKey,
    recording: lessonlens_proto::RecordingId,
    index: lessonlens_proto::SegmentIndex,
) -> anyhow::Result<lessonlens_proto::envelope::Opened> {
    lessonlens_proto::open(
        Some(lessonlens_proto::envelope::Label { recording, index }),
        sk,
        sealed,
    )
    .map_err(|e| anyhow::anyhow!("segment {index} of {recording} failed its integrity check: {e}"))
}

impl Incoming {
    pub fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if self.head.len() < HEAD_LEN {
            let take = (HEAD_LEN - self.head.len()).min(bytes.len());
            self.head.extend_from_slice(&bytes[..take]);
        }
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
        self.file.write_all(bytes)
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn head(&self) -> &[u8] {
        &self.head
    }

    pub fn sha256_so_far(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_names_by_hash_and_leaves_no_temp_files() {
        let tmp = tempfile::tempdir().unwrap();
        let blobs = LocalBlobs::open(tmp.path()).unwrap();
        let mut inc = blobs.begin().unwrap();
        inc.write(b"hello ").unwrap();
        inc.write(b"world").unwrap();
        let sha = blobs.commit(inc).unwrap();
        assert_eq!(sha, hex::encode(Sha256::digest(b"hello world")));
        assert_eq!(blobs.read(&sha).unwrap(), b"hello world");
        assert_eq!(
            std::fs::read_dir(tmp.path().join("tmp")).unwrap().count(),
            0
        );
        // An upload dropped half-way (client gone, bad body) leaves no temp file.
        let mut inc = blobs.begin().unwrap();
        inc.write(b"half").unwrap();
        drop(inc);
        assert_eq!(
            std::fs::read_dir(tmp.path().join("tmp")).unwrap().count(),
            0
        );
    }
}
