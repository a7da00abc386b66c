//! Talk time on the device: a voice-activity detector (earshot, whose small network ships in its
//! crate) listens to each microphone, and every second of the lesson is classed as teacher talk,
//! pupil talk, both, or silence (with one microphone: talk or silence). Only the classes are kept,
//! never sound, and they are sealed with the lesson (see `lessonlens_proto::talk`).
//!
//! Who is talking comes from the two microphones' loudness: the teacher's microphone is close to
//! the teacher, the room's hears the pupils. Each 16 ms frame in which either hears a voice counts
//! for the teacher when the teacher's microphone hears it more than `balance_db` louder than the
//! room's, and for the pupils otherwise. A second with little voice is silence; one with a fair
//! share of both is "both".

use lessonlens_proto::talk::{Second, Talk, MAX_SECONDS};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Samples the detector takes at a time: 16 ms at 16 kHz.
pub const FRAME: usize = 256;
/// The rate the microphones are resampled to for the detector.
pub const RATE: u64 = 16_000;
const FRAME_NS: u64 = FRAME as u64 * 1_000_000_000 / RATE;
/// Frames in a second (62.5, rounded up).
const SLOTS: usize = 63;
/// A frame is voice at this detector score (the crate's suggested threshold).
const VOICE: f32 = 0.5;
/// A second is silence unless this many of its frames are voice (about a quarter of a second).
const MIN_VOICED: usize = 16;
/// A frame the detector calls voice counts only if it is this much louder than the microphone's
/// background (the detector's memory of a word just ended would otherwise count the room's hum).
const ABOVE_BACKGROUND_DB: f32 = 9.0;
/// How fast the background level may rise, per frame (about 0.3 dB a second): it follows the
/// quiet moments between words, not the words.
const BACKGROUND_RISE_DB: f32 = 0.005;
/// Frames either side whose loudness is averaged before the microphones are compared, so that
/// two microphones a few tens of milliseconds apart still agree on who spoke.
const SMOOTH: usize = 2;

/// One microphone's frames in one second: voice or not, and loudness (dBFS), by slot.
#[derive(Clone)]
struct Heard {
    frames: [Option<(bool, f32)>; SLOTS],
}

impl Default for Heard {
    fn default() -> Self {
        Heard {
            frames: [None; SLOTS],
        }
    }
}

/// What one microphone's detector has not yet taken: samples short of a frame, and the running
/// time of the first of them.
struct Ear {
    detector: Box<earshot::Detector>,
    left: Vec<i16>,
    at_ns: u64,
    /// The microphone's background level (dBFS): the quietest it has been lately.
    background: f32,
    /// The latest second this microphone has reached.
    reached: u64,
}

/// The lesson's seconds so far, across the pipelines a lesson is made of (one more after each
/// privacy pause): one per recording, shared by the microphones' streaming threads.
pub struct Listener {
    ears: Vec<Ear>,
    balance_db: f32,
    /// Seconds of the current pipeline not yet classed, by second of its running time.
    pending: BTreeMap<u64, Vec<Heard>>,
    /// The next second of the current pipeline to class.
    next: u64,
    done: Vec<Second>,
}

pub type Shared = Arc<Mutex<Listener>>;

impl Listener {
    /// A listener for `microphones` (1 or 2: the teacher's first).
    pub fn new(microphones: usize, balance_db: f64) -> Shared {
        Arc::new(Mutex::new(Listener {
            ears: (0..microphones.clamp(1, 2))
                .map(|_| Ear {
                    detector: earshot::Detector::default_boxed(),
                    left: Vec::with_capacity(FRAME * 2),
                    at_ns: 0,
                    background: -60.0,
                    reached: 0,
                })
                .collect(),
            balance_db: balance_db as f32,
            pending: BTreeMap::new(),
            next: 0,
            done: Vec::new(),
        }))
    }

    /// Takes microphone `mic`'s 16 kHz mono samples, the first at `at_ns` of running time.
    pub fn hear(&mut self, mic: usize, at_ns: u64, samples: &[i16]) {
        let mics = self.ears.len();
        let Some(ear) = self.ears.get_mut(mic) else {
            return;
        };
        if ear.left.is_empty() {
            ear.at_ns = at_ns;
        }
        ear.left.extend_from_slice(samples);
        let mut offset = 0;
        while ear.left.len() - offset >= FRAME {
            let frame = &ear.left[offset..offset + FRAME];
            let score = ear.detector.predict_i16(frame);
            let db = loudness(frame);
            ear.background = if db < ear.background {
                db
            } else {
                ear.background + BACKGROUND_RISE_DB
            };
            let voice = score >= VOICE && db > ear.background + ABOVE_BACKGROUND_DB;
            let second = ear.at_ns / 1_000_000_000;
            let slot = ((ear.at_ns % 1_000_000_000) / FRAME_NS) as usize;
            if second >= self.next && second < self.next + 120 {
                let heard = self
                    .pending
                    .entry(second)
                    .or_insert_with(|| vec![Heard::default(); mics]);
                heard[mic].frames[slot.min(SLOTS - 1)] = Some((voice, db));
            }
            ear.reached = ear.reached.max(second);
            ear.at_ns += FRAME_NS;
            offset += FRAME;
        }
        ear.left.drain(..offset);
        // A second is classed once every microphone has gone past it.
        let all_past = self.ears.iter().map(|e| e.reached).min().unwrap_or(0);
        while self.next < all_past {
            self.class_next();
        }
    }

    /// Classes what is left of this pipeline (it has ended) and starts counting afresh for the
    /// next one, whose running time starts again from zero.
    pub fn end_part(&mut self) {
        let last = self.pending.keys().next_back().copied();
        if let Some(last) = last {
            while self.next <= last {
                self.class_next();
            }
        }
        self.pending.clear();
        self.next = 0;
        for ear in &mut self.ears {
            ear.left.clear();
            ear.reached = 0;
        }
    }

    fn class_next(&mut self) {
        let heard = self.pending.remove(&self.next);
        self.next += 1;
        if self.done.len() >= MAX_SECONDS {
            return;
        }
        let second = match heard {
            None => Second::Silence,
            Some(h) => classify(&h, self.balance_db),
        };
        self.done.push(second);
    }

    /// The lesson's talk time so far, if it has any seconds.
    pub fn talk(&self) -> Option<Talk> {
        (!self.done.is_empty()).then(|| Talk::new(self.ears.len() as u8, &self.done))
    }
}

/// The loudness of a frame, in dBFS.
fn loudness(frame: &[i16]) -> f32 {
    let power: f64 = frame
        .iter()
        .map(|&s| f64::from(s) * f64::from(s))
        .sum::<f64>()
        / frame.len() as f64;
    (10.0 * (power / (32768.0 * 32768.0)).max(1e-10).log10()) as f32
}

/// Mean loudness of the frames within [`SMOOTH`] of `slot`.
fn smoothed(h: &Heard, slot: usize) -> Option<f32> {
    let near: Vec<f32> = h.frames[slot.saturating_sub(SMOOTH)..(slot + SMOOTH + 1).min(SLOTS)]
        .iter()
        .flatten()
        .map(|f| f.1)
        .collect();
    (!near.is_empty()).then(|| near.iter().sum::<f32>() / near.len() as f32)
}

/// One second from what each microphone heard in it.
fn classify(heard: &[Heard], balance_db: f32) -> Second {
    match heard {
        [one] => {
            let voiced = one.frames.iter().flatten().filter(|f| f.0).count();
            if voiced >= MIN_VOICED {
                Second::Talk
            } else {
                Second::Silence
            }
        }
        [teacher, room, ..] => {
            let (mut by_teacher, mut by_pupils) = (0usize, 0usize);
            for slot in 0..SLOTS {
                let voice = |h: &Heard| h.frames[slot].is_some_and(|f| f.0);
                let (Some(t), Some(r)) = (smoothed(teacher, slot), smoothed(room, slot)) else {
                    continue;
                };
                // The voice is whoever's microphone hears it louder, if that one hears a voice.
                if t - r > balance_db {
                    by_teacher += usize::from(voice(teacher));
                } else {
                    by_pupils += usize::from(voice(room));
                }
            }
            let voiced = by_teacher + by_pupils;
            if voiced < MIN_VOICED {
                Second::Silence
            } else if by_teacher * 3 >= voiced && by_pupils * 3 >= voiced {
                Second::Both
            } else if by_teacher > by_pupils {
                Second::Teacher
            } else {
                Second::Pupils
            }
        }
        [] => Second::Silence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A second of one microphone: `voiced` frames of voice at `db`, the rest quiet.
    fn heard(voiced: usize, db: f32) -> Heard {
        let mut h = Heard::default();
        for (i, f) in h.frames.iter_mut().enumerate() {
            *f = Some(if i < voiced {
                (true, db)
            } else {
                (false, -70.0)
            });
        }
        h
    }

    #[test]
    fn the_louder_microphone_says_who_talked() {
        let loud = heard(40, -20.0);
        let soft = heard(40, -32.0);
        assert_eq!(
            classify(&[loud.clone(), soft.clone()], 0.0),
            Second::Teacher
        );
        assert_eq!(classify(&[soft.clone(), loud.clone()], 0.0), Second::Pupils);
        // The balance moves the line: 12 dB louder is not enough at 15.
        assert_eq!(classify(&[loud.clone(), soft], 15.0), Second::Pupils);
        // A few frames of voice are not talk.
        assert_eq!(
            classify(&[heard(5, -20.0), heard(5, -30.0)], 0.0),
            Second::Silence
        );
        // Half the second the teacher, half the pupils: both.
        let mut t = heard(60, -20.0);
        let mut r = heard(60, -32.0);
        for slot in 30..SLOTS {
            t.frames[slot] = Some((true, -32.0));
            r.frames[slot] = Some((true, -20.0));
        }
        assert_eq!(classify(&[t, r], 0.0), Second::Both);
        // One microphone cannot say who.
        assert_eq!(classify(&[loud], 0.0), Second::Talk);
        assert_eq!(classify(&[heard(3, -20.0)], 0.0), Second::Silence);
    }

    #[test]
    fn seconds_are_classed_when_every_microphone_has_passed_them_and_parts_follow_on() {
        let listener = Listener::new(2, 0.0);
        let mut l = listener.lock().unwrap();
        let quiet = vec![0i16; 16_000];
        // Three seconds of the teacher's microphone: nothing is classed until the room's comes.
        for s in 0..3u64 {
            l.hear(0, s * 1_000_000_000, &quiet);
        }
        assert!(l.talk().is_none());
        for s in 0..3u64 {
            l.hear(1, s * 1_000_000_000, &quiet);
        }
        assert_eq!(l.talk().unwrap().seconds, "--");
        l.end_part();
        assert_eq!(l.talk().unwrap().seconds, "---");
        // After a pause the next part's seconds follow on.
        l.hear(0, 0, &quiet);
        l.hear(1, 0, &quiet);
        l.end_part();
        assert_eq!(l.talk().unwrap().seconds, "----");
        assert_eq!(l.talk().unwrap().microphones, 2);
    }
}
