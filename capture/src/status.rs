//! Counters the daemon reports in `status` and `/metrics`. Shared by the sealer, the uploader and
//! the control API; plain atomics, no locks on the media path.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct Stats {
    /// Segments sealed and written to the spool since the daemon started.
    pub spooled: AtomicU64,
    /// Segments the server acknowledged (receipt hash matched) since the daemon started.
    pub uploaded: AtomicU64,
    /// Whether the last upload attempt reached the server.
    pub server_reachable: AtomicBool,
    /// When the server last acknowledged a segment (Unix seconds; 0: not since the start).
    pub last_upload_at: AtomicI64,
    /// The H.264 encoder of the current or last recording.
    encoder: Mutex<Option<&'static str>>,
}

impl Stats {
    pub fn set_encoder(&self, name: &'static str) {
        *self.encoder.lock().expect("stats lock") = Some(name);
    }

    pub fn encoder(&self) -> Option<&'static str> {
        *self.encoder.lock().expect("stats lock")
    }

    pub fn spooled(&self) -> u64 {
        self.spooled.load(Ordering::Relaxed)
    }

    pub fn uploaded(&self) -> u64 {
        self.uploaded.load(Ordering::Relaxed)
    }

    pub fn reachable(&self) -> bool {
        self.server_reachable.load(Ordering::Relaxed)
    }

    pub fn last_upload_at(&self) -> Option<i64> {
        Some(self.last_upload_at.load(Ordering::Relaxed)).filter(|t| *t > 0)
    }
}
