//! Counters the daemon reports in `status` and `/metrics`. Shared by the sealer, the uploader and
//! the control API; plain atomics, no locks on the media path.

use lessonlens_proto::{RecordingId, SegmentIndex};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
    /// When each segment spooled by this process left the muxer, until its receipt.
    finished_at: Mutex<HashMap<(RecordingId, SegmentIndex), Instant>>,
    /// Sum and count of the times from a segment leaving the muxer to its receipt.
    receipt_latency_us: AtomicU64,
    receipts_timed: AtomicU64,
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

    /// Notes when a segment's media was complete (it left the muxer), to time its receipt.
    pub fn segment_finished(&self, rec: RecordingId, index: SegmentIndex, at: Instant) {
        self.finished_at
            .lock()
            .expect("stats lock")
            .insert((rec, index), at);
    }

    /// The server acknowledged (or refused for good) a segment: returns how long it took since its
    /// media was complete, if this process spooled it.
    pub fn segment_done(&self, rec: RecordingId, index: SegmentIndex) -> Option<Duration> {
        let at = self
            .finished_at
            .lock()
            .expect("stats lock")
            .remove(&(rec, index))?;
        let took = at.elapsed();
        self.receipt_latency_us
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        self.receipts_timed.fetch_add(1, Ordering::Relaxed);
        Some(took)
    }

    /// Sum (seconds) and count of the receipt latencies timed so far.
    pub fn receipt_latency(&self) -> (f64, u64) {
        (
            self.receipt_latency_us.load(Ordering::Relaxed) as f64 / 1e6,
            self.receipts_timed.load(Ordering::Relaxed),
        )
    }

    pub fn last_upload_at(&self) -> Option<i64> {
        Some(self.last_upload_at.load(Ordering::Relaxed)).filter(|t| *t > 0)
    }
}
