//! A recording's segments in order: what kind each is, the HLS playlist they make, the gaps a
//! player's timeline shows (privacy pauses, segments lost to a crash), and the parts a lesson
//! with privacy pauses downloads as.

use lessonlens_proto::{SegmentIndex, SegmentKind};
use std::fmt::Write;

/// One stored segment: its index, its length and whether it is the end marker.
#[derive(Clone, Copy, Debug)]
pub struct Seg {
    pub index: SegmentIndex,
    pub duration_us: i64,
    pub final_segment: bool,
}

impl Seg {
    pub fn kind(&self) -> SegmentKind {
        SegmentKind::of(
            self.index,
            u64::try_from(self.duration_us).unwrap_or(0),
            self.final_segment,
        )
    }

    /// Media to play: not an init segment, not the end marker.
    pub fn is_media(&self) -> bool {
        self.kind() == SegmentKind::Media
    }

    pub fn is_reinit(&self) -> bool {
        self.kind() == SegmentKind::Reinit
    }
}

/// A break in a recording's timeline, at a time on the player's clock (which runs over the media
/// the playlist lists, so a break takes no time on it).
#[derive(Debug, PartialEq, serde::Serialize)]
pub struct Gap {
    /// "pause" (a privacy pause) or "lost" (segments that never reached the server: a crash).
    pub kind: &'static str,
    pub at_seconds: f64,
    /// For "lost": how many segments.
    pub segments: u32,
}

/// The gaps of a recording, as the player's timeline shows them. `expected_end` is the index
/// after the last segment the manifest lists (if it has arrived), so segments lost at the end
/// count too.
pub fn gaps(segments: &[Seg], expected_end: Option<SegmentIndex>) -> Vec<Gap> {
    let mut out = Vec::new();
    let mut at_us = 0;
    let mut expected = 1;
    let lost = |out: &mut Vec<Gap>, from: SegmentIndex, to: SegmentIndex, at_us: i64| {
        if to > from {
            out.push(Gap {
                kind: "lost",
                at_seconds: at_us as f64 / 1e6,
                segments: to - from,
            });
        }
    };
    for s in segments.iter().filter(|s| s.index > 0) {
        lost(&mut out, expected, s.index, at_us);
        if s.is_reinit() {
            out.push(Gap {
                kind: "pause",
                at_seconds: at_us as f64 / 1e6,
                segments: 0,
            });
        }
        if s.is_media() {
            at_us += s.duration_us;
        }
        expected = s.index + 1;
    }
    if let Some(end) = expected_end {
        lost(&mut out, expected, end, at_us);
    }
    out
}

/// The HLS playlist for the stored segments. A gap (a segment lost to a crash) is marked as a
/// discontinuity so the player skips it instead of stalling; a privacy pause is a discontinuity
/// with the new init segment the device made on resume.
pub fn playlist(segments: &[Seg], finished: bool) -> String {
    let has_init = segments.first().is_some_and(|s| s.index == 0);
    let target = segments
        .iter()
        .filter(|s| s.is_media())
        .map(|s| (s.duration_us as f64 / 1e6).ceil() as u64)
        .max()
        .unwrap_or(2)
        .max(1);
    let mut out = String::new();
    let _ = write!(
        out,
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:{}\n#EXT-X-INDEPENDENT-SEGMENTS\n",
        if finished { "VOD" } else { "EVENT" }
    );
    if has_init {
        out.push_str("#EXT-X-MAP:URI=\"init.mp4\"\n");
        let mut expected = 1;
        for s in segments.iter().filter(|s| s.index > 0) {
            if s.is_reinit() {
                let _ = write!(
                    out,
                    "#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"segments/{}.m4s\"\n",
                    s.index
                );
            } else if s.is_media() {
                if s.index != expected {
                    out.push_str("#EXT-X-DISCONTINUITY\n");
                }
                let _ = write!(
                    out,
                    "#EXTINF:{:.3},\nsegments/{}.m4s\n",
                    s.duration_us as f64 / 1e6,
                    s.index
                );
            }
            expected = s.index + 1;
        }
    }
    if finished {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    out
}

/// A lesson's playable parts: each starts with an init segment (index 0, or the one a device
/// made after a privacy pause) followed by its media segments.
pub fn parts(segs: &[Seg]) -> Vec<Vec<SegmentIndex>> {
    let mut parts: Vec<Vec<SegmentIndex>> = Vec::new();
    for s in segs {
        let kind = s.kind();
        if kind.starts_part() {
            parts.push(vec![s.index]);
        } else if kind == SegmentKind::Media {
            if let Some(p) = parts.last_mut() {
                p.push(s.index);
            }
        }
    }
    parts.retain(|p| p.len() > 1);
    parts
}

#[cfg(test)]
mod tests {
    use super::{gaps, parts, playlist, Seg};

    fn segs(list: &[(u32, i64, bool)]) -> Vec<Seg> {
        list.iter()
            .map(|&(index, duration_us, final_segment)| Seg {
                index,
                duration_us,
                final_segment,
            })
            .collect()
    }

    #[test]
    fn gaps_are_placed_on_the_players_clock() {
        // Lost 3, a pause (5 is the init made on resume), and 8 lost at the end (the manifest
        // lists segments up to 8).
        let list = segs(&[
            (0, 0, false),
            (1, 2_000_000, false),
            (2, 2_000_000, false),
            (4, 1_500_000, false),
            (5, 0, false),
            (6, 2_000_000, false),
            (7, 1_000_000, false),
        ]);
        let g = gaps(&list, Some(9));
        let summary: Vec<(&str, f64, u32)> = g
            .iter()
            .map(|g| (g.kind, g.at_seconds, g.segments))
            .collect();
        assert_eq!(
            summary,
            [("lost", 4.0, 1), ("pause", 5.5, 0), ("lost", 8.5, 1)]
        );
        // While recording (no manifest yet) nothing at the end counts as lost.
        assert_eq!(gaps(&list, None).len(), 2);
        assert!(gaps(
            &segs(&[(0, 0, false), (1, 2_000_000, false), (2, 0, true)]),
            Some(3)
        )
        .is_empty());
    }

    #[test]
    fn playlist_lists_segments_and_marks_gaps_and_pauses() {
        let p = playlist(
            &segs(&[
                (0, 0, false),
                (1, 2_000_000, false),
                (2, 2_000_000, false),
                (4, 1_500_000, false),
                (5, 0, true),
            ]),
            true,
        );
        assert!(p.contains("#EXT-X-MAP:URI=\"init.mp4\""));
        assert!(p.contains("#EXTINF:2.000,\nsegments/1.m4s\n"));
        assert!(
            p.contains("#EXT-X-DISCONTINUITY\n#EXTINF:1.500,\nsegments/4.m4s\n"),
            "lost segment 3: {p}"
        );
        assert!(
            p.ends_with("#EXTINF:1.500,\nsegments/4.m4s\n#EXT-X-ENDLIST\n"),
            "no end marker: {p}"
        );
        // A privacy pause: segment 3 is the new init made on resume.
        let p = playlist(
            &segs(&[
                (0, 0, false),
                (1, 2_000_000, false),
                (2, 1_000_000, false),
                (3, 0, false),
                (4, 2_000_000, false),
            ]),
            false,
        );
        assert!(p.contains("segments/2.m4s\n#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"segments/3.m4s\"\n#EXTINF:2.000,\nsegments/4.m4s\n"), "{p}");
        assert_eq!(
            p.matches("#EXT-X-DISCONTINUITY").count(),
            1,
            "the pause is one discontinuity: {p}"
        );
        assert!(p.contains("EVENT") && !p.contains("ENDLIST"));
        assert!(
            !playlist(&segs(&[(1, 2_000_000, false)]), false).contains("segments/1"),
            "no media without an init segment"
        );
    }

    #[test]
    fn a_privacy_pause_splits_a_lesson_into_parts() {
        // init, 2 media, a re-init after the pause, 1 media, the end marker.
        let list = segs(&[
            (0, 0, false),
            (1, 2, false),
            (2, 2, false),
            (3, 0, false),
            (4, 2, false),
            (5, 0, true),
        ]);
        assert_eq!(parts(&list), vec![vec![0, 1, 2], vec![3, 4]]);
        // A lesson whose init never arrived has nothing playable.
        assert!(parts(&segs(&[(1, 2, false)])).is_empty());
    }
}
