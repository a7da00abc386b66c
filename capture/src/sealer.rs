//! Seals fragments into envelopes and spools them, on its own thread so the GStreamer streaming
//! thread never waits on crypto or the disk.
//!
//! Each fragment is sealed as soon as it arrives. A clean stop appends an empty end-marker segment
//! flagged final (the envelope authenticates the flag), so a recording cut short is told apart
//! from one that ended.

use crate::pipeline::Fragment;
use crate::spool::Spool;
use crate::status::Stats;
use lessonlens_proto::envelope::{seal, Label, SealParams, DEFAULT_CHUNK_SIZE};
use lessonlens_proto::{PublicKey, RecordingId, SegmentIndex, POSTER_INDEX, TALK_INDEX};
use rand_core::{OsRng, TryRngCore};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use zeroize::Zeroize;

/// What the sealer is told.
#[derive(Debug)]
pub enum Input {
    Fragment(Fragment),
    /// The pipeline delivered its last fragment; `clean` when it ended with EOS rather than an
    /// error (only a clean end gets the final end marker).
    Stop {
        clean: bool,
    },
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Sealed {
    pub segments: u32,
    pub media_us: u64,
}

pub struct Sealer {
    pub spool: Spool,
    pub recording: RecordingId,
    pub recipient: PublicKey,
    /// The spool budget in bytes. Reaching it ends the recording (the segment that reached it is
    /// still kept: the budget is never enforced by dropping media).
    pub budget: u64,
    /// Set to end the recording cleanly.
    pub stop: Arc<AtomicBool>,
    pub stats: Arc<Stats>,
    /// Told when the first media segment is in the spool: from then on the lesson is recording.
    pub live: Arc<crate::live::Live>,
}

impl Sealer {
    fn put(
        &self,
        index: SegmentIndex,
        mut plaintext: Vec<u8>,
        final_segment: bool,
        start_us: u64,
        duration_us: u64,
    ) -> anyhow::Result<()> {
        // The muxer hands over a fragment once it is complete: its receipt is timed from here.
        let finished = std::time::Instant::now();
        let params = SealParams {
            label: Label {
                recording: self.recording,
                index,
            },
            final_segment,
            start_us,
            duration_us,
            chunk_size: DEFAULT_CHUNK_SIZE,
        };
        let sealed = seal(
            &params,
            &self.recipient,
            &plaintext,
            &mut OsRng.unwrap_err(),
        );
        // The plaintext is no longer needed; wipe it before anything can fail further on.
        plaintext.zeroize();
        let sealed = sealed?;
        self.spool
            .put_segment(self.recording, index, &sealed, (start_us, duration_us))?;
        self.stats.segment_finished(self.recording, index, finished);
        if self.spool.usage_bytes() >= self.budget && !self.stop.swap(true, Ordering::AcqRel) {
            tracing::error!(
                recording = %self.recording,
                budget_mb = self.budget / 1_000_000,
                "spool budget reached while the server is unreachable: recording stopped; everything recorded so far is kept"
            );
        }
        self.stats.spooled.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(recording = %self.recording, index, bytes = sealed.len(), final_segment, "segment spooled");
        Ok(())
    }

    /// Runs until `Stop` (or the sender goes away). Each fragment is sealed and spooled as soon as
    /// it arrives, so a crash costs at most the fragment still in the muxer. A clean stop adds an
    /// empty end marker flagged as the final segment, which proves the recording was not cut short.
    /// On an error, keeps draining the channel so the pipeline is not blocked, and reports the
    /// first error at the end.
    pub fn run(&self, rx: Receiver<Input>) -> anyhow::Result<Sealed> {
        let mut next_index: SegmentIndex = 1;
        let mut stats = Sealed::default();
        let mut first_error: Option<anyhow::Error> = None;
        let mut end_us = 0;
        let mut seen_init = false;
        let mut seen_poster = false;
        let mut offset_us = 0;
        for input in rx {
            let stopping = matches!(input, Input::Stop { .. });
            let step = match input {
                // The first init segment is index 0; one after a pause takes the next index.
                Input::Fragment(Fragment::Init(bytes)) if !seen_init => {
                    seen_init = true;
                    self.put(0, bytes, false, 0, 0)
                }
                Input::Fragment(Fragment::Init(bytes)) => {
                    // A new pipeline's clock starts at zero; keep the recording's timeline going.
                    offset_us = end_us;
                    let r = self.put(next_index, bytes, false, end_us, 0);
                    next_index += 1;
                    r
                }
                Input::Fragment(Fragment::Media {
                    bytes,
                    start_us,
                    duration_us,
                }) => {
                    let start_us = offset_us + start_us;
                    let r = self.put(next_index, bytes, false, start_us, duration_us);
                    if r.is_ok() {
                        self.live.set_sealed();
                    }
                    next_index += 1;
                    stats.segments += 1;
                    stats.media_us += duration_us;
                    end_us = start_us + duration_us;
                    r
                }
                // The recording's first frame; a pipeline made on resume sends another, unused.
                Input::Fragment(Fragment::Poster(bytes)) if !seen_poster => {
                    seen_poster = true;
                    self.put(POSTER_INDEX, bytes, false, 0, 0)
                }
                Input::Fragment(Fragment::Poster(mut bytes)) => {
                    bytes.zeroize();
                    Ok(())
                }
                Input::Fragment(Fragment::Talk(bytes)) => self.put(TALK_INDEX, bytes, false, 0, 0),
                Input::Stop { clean: true } => self.put(next_index, Vec::new(), true, end_us, 0),
                Input::Stop { clean: false } => Ok(()),
            };
            if let Err(e) = step {
                tracing::error!(error = %format!("{e:#}"), "could not seal or spool a segment; ending the recording");
                // Disk full or failing: stop rather than keep failing silently.
                self.stop.store(true, Ordering::Release);
                first_error.get_or_insert(e);
            }
            if stopping {
                break;
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(stats),
        }
    }
}
