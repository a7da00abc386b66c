//! Blob storage for sealed segments (ciphertext only). Blobs are named by the SHA-256 of their
//! bytes. A blob is written durably before its database row exists: the row is the commit point,
//! so a crash can leave an unreferenced blob but never a row without its blob.
//!
//! Two backends sit behind [`BlobStore`]: [`LocalBlobs`], a folder (the default), and
//! [`s3::S3Blobs`], S3-compatible object storage. Both receive an upload into a local temp file
//! while hashing it (see [`Incoming`]); they differ in how [`BlobStore::commit`] makes it
//! durable. Every method blocks: call them from blocking threads (`spawn_blocking`, the
//! database's worker), never from async code.

pub mod s3;

use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Where sealed segments are kept. One shared test suite runs against every backend
/// (`tests/tests/storage.rs`).
pub trait BlobStore: Send + Sync {
    /// Starts receiving a blob: its bytes go to a local temp file while they are hashed.
    fn begin(&self) -> std::io::Result<Incoming>;
    /// Makes a received blob durable under its hash and returns the hash. Once this returns,
    /// the blob survives a crash or power cut of this machine.
    fn commit(&self, incoming: Incoming) -> std::io::Result<String>;
    /// The blob's bytes; `NotFound` if there is no such blob.
    fn read(&self, sha: &str) -> std::io::Result<Vec<u8>>;
    /// Removes a blob. Removing one that is already gone may answer `Ok` or `NotFound`.
    fn remove(&self, sha: &str) -> std::io::Result<()>;
    /// Where the blobs are, for messages: a folder or a bucket at an endpoint.
    fn describe(&self) -> String;

    /// Reads and opens segment `index` of `recording` with its owner's key `sk`; the label in
    /// the envelope must match, so a blob swapped for another segment's is refused.
    fn open_segment(
        &self,
        sha: &str,
        sk: &lessonlens_proto::SecretKey,
        recording: lessonlens_proto::RecordingId,
        index: lessonlens_proto::SegmentIndex,
    ) -> anyhow::Result<Zeroizing<Vec<u8>>> {
        open_sealed(self.read(sha)?, sk, recording, index)
    }
}

/// Opens the blob store the configuration names.
pub fn open(config: &crate::config::Config) -> anyhow::Result<Box<dyn BlobStore>> {
    Ok(match &config.storage {
        crate::config::Storage::Local => Box::new(LocalBlobs::open(&config.blob_dir())?),
        crate::config::Storage::S3(s3) => Box::new(s3::S3Blobs::open(s3, &config.blob_dir())?),
    })
}

/// `inner`, with every failure (not a missing blob) counted in `metrics`.
pub fn counted(
    inner: Box<dyn BlobStore>,
    metrics: std::sync::Arc<crate::domain::metrics::Metrics>,
) -> Box<dyn BlobStore> {
    Box::new(Counted { inner, metrics })
}

struct Counted {
    inner: Box<dyn BlobStore>,
    metrics: std::sync::Arc<crate::domain::metrics::Metrics>,
}

impl Counted {
    fn count<T>(&self, r: std::io::Result<T>) -> std::io::Result<T> {
        if r.as_ref()
            .is_err_and(|e| e.kind() != std::io::ErrorKind::NotFound)
        {
            self.metrics.storage_error();
        }
        r
    }
}

impl BlobStore for Counted {
    fn begin(&self) -> std::io::Result<Incoming> {
        self.count(self.inner.begin())
    }
    fn commit(&self, incoming: Incoming) -> std::io::Result<String> {
        self.count(self.inner.commit(incoming))
    }
    fn read(&self, sha: &str) -> std::io::Result<Vec<u8>> {
        self.count(self.inner.read(sha))
    }
    fn remove(&self, sha: &str) -> std::io::Result<()> {
        self.count(self.inner.remove(sha))
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// An object store that failed or could not be reached, as opposed to a blob that is missing.
/// Carried inside an `std::io::Error`; the HTTP layer answers 503 for it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unavailable(pub String);

/// The first two hex digits of a blob's hash: its shard folder, or its key's folder.
fn shard(sha: &str) -> &str {
    &sha[..2]
}

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

/// Creates `dir` (and `dir/tmp`) durably if missing, and removes temp files a crash left behind:
/// they were never committed.
fn prepare_staging(dir: &Path) -> std::io::Result<()> {
    let fresh = !dir.exists();
    std::fs::create_dir_all(dir.join("tmp"))?;
    if fresh {
        // Make the new folders themselves durable before any blob relies on them.
        fsync_dir(dir)?;
        if let Some(parent) = dir.parent() {
            fsync_dir(parent)?;
        }
    }
    for e in std::fs::read_dir(dir.join("tmp"))?.flatten() {
        let _ = std::fs::remove_file(e.path());
    }
    Ok(())
}

/// Starts an upload into a new temp file under `dir/tmp`.
fn begin_in(dir: &Path) -> std::io::Result<Incoming> {
    let mut name = [0u8; 16];
    rand_core::RngCore::fill_bytes(
        &mut rand_core::TryRngCore::unwrap_err(rand_core::OsRng),
        &mut name,
    );
    let tmp = dir.join("tmp").join(hex::encode(name));
    let file = File::create(&tmp)?;
    Ok(Incoming {
        tmp: Some(tmp),
        file,
        hasher: Sha256::new(),
        len: 0,
        head: Vec::with_capacity(HEAD_LEN),
    })
}

impl LocalBlobs {
    pub fn open(root: &Path) -> std::io::Result<LocalBlobs> {
        prepare_staging(root)?;
        Ok(LocalBlobs {
            root: root.to_path_buf(),
        })
    }

    fn path(&self, sha: &str) -> PathBuf {
        self.root.join(shard(sha)).join(sha)
    }
}

impl BlobStore for LocalBlobs {
    fn begin(&self) -> std::io::Result<Incoming> {
        begin_in(&self.root)
    }

    /// fsync the file, rename it to its hash, fsync the folder.
    fn commit(&self, mut incoming: Incoming) -> std::io::Result<String> {
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

    fn read(&self, sha: &str) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.path(sha))
    }

    fn remove(&self, sha: &str) -> std::io::Result<()> {
        std::fs::remove_file(self.path(sha))
    }

    fn describe(&self) -> String {
        format!("the folder {}", self.root.display())
    }
}

/// Opens sealed segment bytes (see [`BlobStore::open_segment`]).
pub fn open_sealed(
    sealed: Vec<u8>,
    sk: &lessonlens_proto::SecretKey,
    recording: lessonlens_proto::RecordingId,
    index: lessonlens_proto::SegmentIndex,
) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(sealed);
    lessonlens_proto::open_in_place(
        Some(lessonlens_proto::envelope::Label { recording, index }),
        sk,
        &mut buf,
    )
    .map_err(|e| {
        anyhow::anyhow!("segment {index} of {recording} failed its integrity check: {e}")
    })?;
    Ok(buf)
}

impl Incoming {
    /// An upload written into `file` (a pipe, in a test), not kept anywhere.
    #[cfg(test)]
    pub fn writing_to(file: File) -> Incoming {
        Incoming {
            tmp: None,
            file,
            hasher: Sha256::new(),
            len: 0,
            head: Vec::with_capacity(HEAD_LEN),
        }
    }

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

    /// The temp file holding the bytes received so far.
    fn path(&self) -> &Path {
        self.tmp.as_deref().expect("not yet committed")
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            let _ = std::fs::remove_file(tmp);
        }
    }
}
