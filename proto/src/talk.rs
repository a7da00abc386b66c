//! Talk time: who was talking in each second of a lesson, as the device classed it from its
//! microphones (see `lessonlens-capture`'s `talk` module), and the figures a reviewer sees.
//!
//! The device seals it with the lesson under [`crate::TALK_INDEX`], like the poster frame, so the
//! server opens it only for people who may watch the lesson. It is small: one letter a second.

use serde::{Deserialize, Serialize};

pub const TALK_VERSION: u32 = 1;

/// The most seconds a lesson's talk time holds (a day, as [`crate::manifest::limits`]).
pub const MAX_SECONDS: usize = 86_400;
/// The most bytes a sealed talk time may hold: the seconds and a little JSON around them.
pub const MAX_BYTES: usize = MAX_SECONDS + 256;

/// One second of a lesson.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Second {
    /// The teacher was talking (two microphones).
    Teacher,
    /// Pupils were talking (two microphones).
    Pupils,
    /// Both at once (two microphones).
    Both,
    /// Someone was talking (one microphone cannot tell who).
    Talk,
    Silence,
}

impl Second {
    pub fn letter(self) -> char {
        match self {
            Second::Teacher => 't',
            Second::Pupils => 'p',
            Second::Both => 'b',
            Second::Talk => 'v',
            Second::Silence => '-',
        }
    }

    pub fn from_letter(c: char) -> Option<Second> {
        Some(match c {
            't' => Second::Teacher,
            'p' => Second::Pupils,
            'b' => Second::Both,
            'v' => Second::Talk,
            '-' => Second::Silence,
            _ => return None,
        })
    }

    /// The teacher was talking in this second (alone or not).
    fn teacher(self) -> bool {
        matches!(self, Second::Teacher | Second::Both)
    }
}

/// A lesson's talk time, as sealed: the number of microphones it was classed from, and one
/// letter per second of media time ([`Second::letter`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Talk {
    pub version: u32,
    pub microphones: u8,
    pub seconds: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TalkError {
    #[error("talk time does not parse: {0}")]
    Parse(String),
    #[error("talk time is {0} bytes, more than a day of it can be")]
    TooBig(usize),
    #[error("talk time version {0} is not known")]
    Version(u32),
    #[error("talk time from {0} microphones: only one or two are possible")]
    Microphones(u8),
    #[error("talk time is {0} seconds long, longer than a lesson can last")]
    TooLong(usize),
    #[error("talk time has a letter that is not a class: {0:?}")]
    Letter(char),
    #[error("talk time from one microphone cannot say who talked")]
    WhoFromOne,
}

impl Talk {
    pub fn new(microphones: u8, seconds: &[Second]) -> Talk {
        Talk {
            version: TALK_VERSION,
            microphones,
            seconds: seconds.iter().map(|s| s.letter()).collect(),
        }
    }

    /// Parses and checks what a device sealed: every number and letter bounded.
    pub fn parse(bytes: &[u8]) -> Result<Talk, TalkError> {
        if bytes.len() > MAX_BYTES {
            return Err(TalkError::TooBig(bytes.len()));
        }
        let talk: Talk =
            serde_json::from_slice(bytes).map_err(|e| TalkError::Parse(e.to_string()))?;
        if talk.version != TALK_VERSION {
            return Err(TalkError::Version(talk.version));
        }
        if !(1..=2).contains(&talk.microphones) {
            return Err(TalkError::Microphones(talk.microphones));
        }
        if talk.seconds.len() > MAX_SECONDS {
            return Err(TalkError::TooLong(talk.seconds.len()));
        }
        for c in talk.seconds.chars() {
            match Second::from_letter(c) {
                None => return Err(TalkError::Letter(c)),
                Some(Second::Teacher | Second::Pupils | Second::Both) if talk.microphones == 1 => {
                    return Err(TalkError::WhoFromOne)
                }
                Some(_) => {}
            }
        }
        Ok(talk)
    }

    pub fn seconds(&self) -> impl Iterator<Item = Second> + '_ {
        self.seconds.chars().filter_map(Second::from_letter)
    }

    /// The figures a reviewer sees.
    pub fn summary(&self) -> Summary {
        let all: Vec<Second> = self.seconds().collect();
        let count = |s: Second| all.iter().filter(|&&x| x == s).count() as u32;
        let mut summary = Summary {
            seconds: all.len() as u32,
            teacher: count(Second::Teacher),
            pupils: count(Second::Pupils),
            both: count(Second::Both),
            talk: count(Second::Talk),
            silence: count(Second::Silence),
            longest_teacher: 0,
            waits: 0,
            mean_wait: None,
        };
        // The longest stretch of teacher talk, across pauses of up to BRIDGED seconds (a breath,
        // a word written on the board).
        let (mut longest, mut run, mut quiet) = (0u32, 0u32, 0u32);
        for s in &all {
            if s.teacher() {
                run += quiet + 1;
                quiet = 0;
                longest = longest.max(run);
            } else if *s == Second::Silence && run > 0 && quiet < BRIDGED {
                quiet += 1;
            } else {
                (run, quiet) = (0, 0);
            }
        }
        summary.longest_teacher = longest;
        // Wait time: after the teacher stops, the silence before pupils answer. A silence the
        // teacher ends themselves is not a wait for an answer.
        let mut total_wait = 0u32;
        let mut i = 0;
        while i < all.len() {
            if all[i] == Second::Teacher {
                let quiet = all[i + 1..]
                    .iter()
                    .take_while(|s| **s == Second::Silence)
                    .count();
                if let Some(Second::Pupils | Second::Both) = all.get(i + 1 + quiet) {
                    summary.waits += 1;
                    total_wait += quiet as u32;
                }
                i += 1 + quiet;
            } else {
                i += 1;
            }
        }
        if summary.waits > 0 {
            summary.mean_wait = Some(f64::from(total_wait) / f64::from(summary.waits));
        }
        summary
    }
}

/// Silences of up to this many seconds inside a stretch of teacher talk do not end it.
pub const BRIDGED: u32 = 2;

/// A lesson's talk time in figures (seconds).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub seconds: u32,
    pub teacher: u32,
    pub pupils: u32,
    pub both: u32,
    /// Talk from one microphone (it cannot say who).
    pub talk: u32,
    pub silence: u32,
    /// The longest stretch of teacher talk.
    pub longest_teacher: u32,
    /// How many times pupils answered after the teacher stopped.
    pub waits: u32,
    /// The mean silence before they did.
    pub mean_wait: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn talk(microphones: u8, seconds: &str) -> Talk {
        Talk {
            version: TALK_VERSION,
            microphones,
            seconds: seconds.into(),
        }
    }

    #[test]
    fn what_a_device_sealed_is_checked_before_it_is_used() {
        let ok = Talk::new(2, &[Second::Teacher, Second::Silence, Second::Pupils]);
        assert_eq!(ok.seconds, "t-p");
        let bytes = serde_json::to_vec(&ok).unwrap();
        assert_eq!(Talk::parse(&bytes).unwrap(), ok);
        let bad = |t: Talk| Talk::parse(&serde_json::to_vec(&t).unwrap()).unwrap_err();
        assert_eq!(bad(talk(3, "t")), TalkError::Microphones(3));
        assert_eq!(bad(talk(2, "tx")), TalkError::Letter('x'));
        assert_eq!(bad(talk(1, "v-t")), TalkError::WhoFromOne);
        assert_eq!(
            bad(talk(1, &"-".repeat(MAX_SECONDS + 1))),
            TalkError::TooLong(MAX_SECONDS + 1)
        );
        assert!(matches!(
            bad(Talk {
                version: 9,
                ..ok.clone()
            }),
            TalkError::Version(9)
        ));
        assert!(matches!(Talk::parse(b"not json"), Err(TalkError::Parse(_))));
        assert_eq!(
            Talk::parse(&vec![b' '; MAX_BYTES + 1]),
            Err(TalkError::TooBig(MAX_BYTES + 1))
        );
    }

    #[test]
    fn totals_the_longest_teacher_stretch_and_the_wait_for_an_answer() {
        // Teacher 2 s, a 2 s pause (bridged), 1 s, waits 3 s, pupils answer 2 s; teacher 2 s,
        // waits 1 s, both answer; teacher 1 s, a 3 s silence the teacher ends: not a wait.
        let s = talk(2, "tt--t---pptt-bt---t");
        let sum = s.summary();
        assert_eq!(sum.seconds, 19);
        assert_eq!(
            (sum.teacher, sum.pupils, sum.both, sum.silence),
            (7, 2, 1, 9)
        );
        assert_eq!(sum.longest_teacher, 5);
        assert_eq!(sum.waits, 2, "{sum:?}");
        assert_eq!(sum.mean_wait, Some(2.0));
        // A pause of three seconds ends the stretch.
        assert_eq!(talk(2, "tt---tt").summary().longest_teacher, 2);
        // One microphone: talk and silence only.
        let one = talk(1, "vv--v").summary();
        assert_eq!(
            (one.talk, one.silence, one.teacher, one.waits),
            (3, 2, 0, 0)
        );
    }
}
