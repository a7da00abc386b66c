//! S3-compatible object storage for blobs (`[storage] backend = "s3"`), through the
//! `object_store` crate. An upload is staged in a local temp file while it is hashed, exactly as
//! for the folder backend; `commit` then PUTs it under `<prefix>/<2 hex>/<sha256>`. A PUT is
//! atomic (readers see the whole object or none) and durable once answered, so the database row
//! written after it is still the commit point. The store's own SHA-256 checksum header makes the
//! object store check the bytes it received.
//!
//! `object_store` is async; this backend runs its requests on a small runtime of its own, so
//! the [`BlobStore`] methods block like the folder's do.

use super::{begin_in, prepare_staging, shard, BlobStore, Incoming};
use crate::config::S3Config;
use anyhow::{bail, Context};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as Key;
use object_store::{ClientOptions, ObjectStoreExt, PutPayload, RetryConfig};
use std::path::{Path, PathBuf};
use std::time::Duration;
use zeroize::Zeroizing;

pub struct S3Blobs {
    store: AmazonS3,
    prefix: Key,
    /// Runs the store's requests; shut down in the background on drop, so dropping the store
    /// never blocks (or panics) inside async code.
    rt: Option<tokio::runtime::Runtime>,
    staging: PathBuf,
    place: String,
}

impl S3Blobs {
    /// Connects, and checks with a probe object that the bucket can be written, read and
    /// deleted with these credentials, so a mistake shows at start rather than at the first
    /// lesson.
    pub fn open(config: &S3Config, staging: &Path) -> anyhow::Result<S3Blobs> {
        config.validate()?;
        prepare_staging(staging)
            .with_context(|| format!("cannot prepare the staging folder {}", staging.display()))?;
        let secret = read_secret(&config.secret_access_key_file)?;
        let store = AmazonS3Builder::new()
            // First: the client options replace any set before them (allow_http among them).
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout(Duration::from_secs(60)),
            )
            .with_endpoint(&config.endpoint)
            .with_allow_http(config.endpoint.starts_with("http://"))
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_access_key_id(&config.access_key_id)
            .with_secret_access_key(secret.as_str())
            .with_checksum_algorithm(object_store::aws::Checksum::SHA256)
            // A device retries an upload that fails; keep the server's own retries short.
            .with_retry(RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(20),
                ..RetryConfig::default()
            })
            .build()
            .context("the [storage] settings are not usable")?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("object-store")
            .enable_all()
            .build()?;
        let blobs = S3Blobs {
            store,
            prefix: Key::from(config.prefix.as_str()),
            rt: Some(rt),
            staging: staging.to_path_buf(),
            place: config.place(),
        };
        blobs.probe().with_context(|| {
            format!(
                "cannot use {}: check the endpoint, that the bucket exists, and the access key",
                blobs.place
            )
        })?;
        Ok(blobs)
    }

    fn key(&self, sha: &str) -> Key {
        self.prefix.clone().join(shard(sha)).join(sha)
    }

    fn run<T>(
        &self,
        request: impl std::future::Future<Output = object_store::Result<T>>,
    ) -> std::io::Result<T> {
        self.rt
            .as_ref()
            .expect("runtime lives until drop")
            .block_on(request)
            .map_err(|e| match e {
                object_store::Error::NotFound { .. } => {
                    std::io::Error::new(std::io::ErrorKind::NotFound, e)
                }
                e => std::io::Error::other(super::Unavailable(format!(
                    "object storage ({}) failed: {e}",
                    self.place
                ))),
            })
    }

    fn probe(&self) -> std::io::Result<()> {
        let key = self.prefix.clone().join("probe");
        self.run(self.store.put(&key, PutPayload::from_static(b"lessonlens")))?;
        let back = self.run(async { self.store.get(&key).await?.bytes().await })?;
        self.run(self.store.delete(&key))?;
        if back.as_ref() != b"lessonlens" {
            return Err(std::io::Error::other(
                "the probe object came back different",
            ));
        }
        Ok(())
    }
}

fn read_secret(path: &Path) -> anyhow::Result<Zeroizing<String>> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .with_context(|| format!("cannot read secret_access_key_file {}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        bail!(
            "secret_access_key_file {} has permissions {:o}, which lets other users read it; \
             fix with `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        );
    }
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read secret_access_key_file {}", path.display()))?,
    );
    Ok(Zeroizing::new(text.trim().to_string()))
}

impl BlobStore for S3Blobs {
    fn begin(&self) -> std::io::Result<Incoming> {
        begin_in(&self.staging)
    }

    /// PUTs the staged bytes; the temp file is removed when `incoming` is dropped.
    fn commit(&self, incoming: Incoming) -> std::io::Result<String> {
        let sha = incoming.sha256_so_far();
        let bytes = std::fs::read(incoming.path())?;
        if bytes.len() as u64 != incoming.len() {
            return Err(std::io::Error::other(
                "the staged upload changed size on disk; check the staging disk",
            ));
        }
        self.run(self.store.put(&self.key(&sha), PutPayload::from(bytes)))?;
        Ok(sha)
    }

    fn read(&self, sha: &str) -> std::io::Result<Vec<u8>> {
        let key = self.key(sha);
        let bytes = self.run(async { self.store.get(&key).await?.bytes().await })?;
        Ok(bytes.into())
    }

    fn remove(&self, sha: &str) -> std::io::Result<()> {
        self.run(self.store.delete(&self.key(sha)))
    }

    fn describe(&self) -> String {
        self.place.clone()
    }
}

impl Drop for S3Blobs {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}
