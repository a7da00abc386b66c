//! The server's counters for `/metrics` (Prometheus text format): requests by status class,
//! ingest, playback, sweeps and storage errors. Counters only, no names: nothing here says who
//! did what. Pure: atomics and text.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct Metrics {
    /// Responses by status class: 1xx .. 5xx.
    responses: [AtomicU64; 5],
    ingest_bytes: AtomicU64,
    receipts: AtomicU64,
    playback: AtomicU64,
    sweeps: AtomicU64,
    sweep_failures: AtomicU64,
    storage_errors: AtomicU64,
}

impl Metrics {
    /// A response with `status` was sent.
    pub fn response(&self, status: u16) {
        if let Some(c) = self
            .responses
            .get(usize::from(status / 100).wrapping_sub(1))
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A segment of `bytes` was stored and its receipt given.
    pub fn receipt(&self, bytes: u64) {
        self.receipts.fetch_add(1, Ordering::Relaxed);
        self.ingest_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// A piece of a lesson was decrypted and served.
    pub fn played(&self) {
        self.playback.fetch_add(1, Ordering::Relaxed);
    }

    /// A retention sweep ran (`ok`) or failed.
    pub fn swept(&self, ok: bool) {
        let c = if ok {
            &self.sweeps
        } else {
            &self.sweep_failures
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// The blob store failed (not a missing blob: a store that failed or could not be reached).
    pub fn storage_error(&self) {
        self.storage_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// The text `/metrics` answers; `cert_ends_in` is how long the server certificate has left
    /// (seconds), if it could be read.
    pub fn render(&self, cert_ends_in: Option<i64>) -> String {
        let mut out = String::new();
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut counter = |name: &str, help: &str, lines: Vec<(String, u64)>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (labels, v) in lines {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        };
        counter(
            "lessonlens_http_responses_total",
            "Responses sent, by status class.",
            (0..5)
                .map(|i| {
                    (
                        format!("{{class=\"{}xx\"}}", i + 1),
                        get(&self.responses[i]),
                    )
                })
                .collect(),
        );
        counter(
            "lessonlens_ingest_bytes_total",
            "Bytes of sealed segments stored.",
            vec![(String::new(), get(&self.ingest_bytes))],
        );
        counter(
            "lessonlens_ingest_receipts_total",
            "Segments stored and receipted.",
            vec![(String::new(), get(&self.receipts))],
        );
        counter(
            "lessonlens_playback_pieces_total",
            "Pieces of lessons (segments, posters, talk time) decrypted and served.",
            vec![(String::new(), get(&self.playback))],
        );
        counter(
            "lessonlens_sweeps_total",
            "Retention sweeps, by outcome.",
            vec![
                ("{outcome=\"ok\"}".into(), get(&self.sweeps)),
                ("{outcome=\"failed\"}".into(), get(&self.sweep_failures)),
            ],
        );
        counter(
            "lessonlens_storage_errors_total",
            "Blob store operations that failed (not missing blobs).",
            vec![(String::new(), get(&self.storage_errors))],
        );
        if let Some(left) = cert_ends_in {
            let _ = writeln!(
                out,
                "# HELP lessonlens_server_certificate_expiry_seconds Seconds until the server certificate ends (it is renewed 30 days before).\n# TYPE lessonlens_server_certificate_expiry_seconds gauge\nlessonlens_server_certificate_expiry_seconds {left}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_render_as_prometheus_text() {
        let m = super::Metrics::default();
        m.response(200);
        m.response(204);
        m.response(503);
        m.response(999);
        m.receipt(1000);
        m.receipt(500);
        m.swept(true);
        m.swept(false);
        m.played();
        m.storage_error();
        let text = m.render(Some(86_400));
        for line in [
            "lessonlens_http_responses_total{class=\"2xx\"} 2",
            "lessonlens_http_responses_total{class=\"5xx\"} 1",
            "lessonlens_http_responses_total{class=\"4xx\"} 0",
            "lessonlens_ingest_bytes_total 1500",
            "lessonlens_ingest_receipts_total 2",
            "lessonlens_playback_pieces_total 1",
            "lessonlens_sweeps_total{outcome=\"ok\"} 1",
            "lessonlens_sweeps_total{outcome=\"failed\"} 1",
            "lessonlens_storage_errors_total 1",
            "lessonlens_server_certificate_expiry_seconds 86400",
            "# TYPE lessonlens_ingest_bytes_total counter",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
        assert!(!m.render(None).contains("certificate"));
    }
}
