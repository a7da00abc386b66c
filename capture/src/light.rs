//! The recording light: LEDs under `/sys/class/leds` (names in the config). Off when idle, solid
//! while recording, a slow blink while paused, a fast blink on an error or a watchdog warning.
//! "Starting" is off: the light never says recording before the first segment is sealed.

use crate::config::LightConfig;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    Off,
    Solid,
    /// Once a second.
    SlowBlink,
    /// Four times a second.
    FastBlink,
    /// A short flash every two seconds: a booked lesson waits for someone to start it.
    Pulse,
}

/// What the light needs to know, read cheaply (no spool walk) several times a second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signal {
    pub state: &'static str,
    /// A watchdog sees a problem in the running recording.
    pub warning: bool,
    /// The last recording ended by itself, or the server refuses this device.
    pub error: bool,
    /// A booked lesson's slot has begun and nobody has started it yet.
    pub booked: bool,
}

/// What the light shows.
pub fn pattern(s: Signal) -> Pattern {
    match s.state {
        "recording" if s.warning => Pattern::FastBlink,
        "recording" | "stopping" => Pattern::Solid,
        "paused" => Pattern::SlowBlink,
        "idle" if s.error => Pattern::FastBlink,
        "idle" if s.booked => Pattern::Pulse,
        _ => Pattern::Off,
    }
}

/// Whether the LED is lit `elapsed` into a pattern.
pub fn lit(p: Pattern, elapsed: Duration) -> bool {
    let ms = elapsed.as_millis();
    match p {
        Pattern::Off => false,
        Pattern::Solid => true,
        Pattern::SlowBlink => ms % 1000 < 500,
        Pattern::FastBlink => ms % 250 < 125,
        Pattern::Pulse => ms % 2000 < 200,
    }
}

/// The LEDs, each with the brightness that lights it (its `max_brightness`, or 1).
struct Leds(Vec<(PathBuf, String)>);

impl Leds {
    fn open(config: &LightConfig) -> Leds {
        Leds(
            config
                .leds
                .iter()
                .map(|name| {
                    let dir = config.leds_dir.join(name);
                    let max = std::fs::read_to_string(dir.join("max_brightness"))
                        .ok()
                        .map(|m| m.trim().to_string())
                        .filter(|m| m.parse::<u32>().is_ok_and(|v| v > 0))
                        .unwrap_or_else(|| "1".into());
                    (dir.join("brightness"), max)
                })
                .collect(),
        )
    }

    fn set(&self, on: bool) {
        for (path, max) in &self.0 {
            let value = if on { max.as_str() } else { "0" };
            if let Err(e) = std::fs::write(path, value) {
                tracing::warn!(led = %path.display(), error = %e, "cannot set the recording light");
            }
        }
    }
}

/// Runs the light until `shutdown`, showing what `signal` says, then turns it off.
pub fn spawn(
    config: LightConfig,
    shutdown: Arc<AtomicBool>,
    signal: impl Fn() -> Signal + Send + 'static,
) {
    std::thread::spawn(move || {
        let leds = Leds::open(&config);
        let (mut current, mut since) = (Pattern::Off, Instant::now());
        let mut shown: Option<bool> = None;
        let mut looked = Instant::now() - Duration::from_secs(1);
        leds.set(false);
        while !shutdown.load(Ordering::Acquire) {
            if looked.elapsed() >= Duration::from_millis(200) {
                looked = Instant::now();
                let next = pattern(signal());
                if next != current {
                    (current, since) = (next, Instant::now());
                }
            }
            let on = lit(current, since.elapsed());
            if shown != Some(on) {
                leds.set(on);
                shown = Some(on);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        leds.set(false);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_light_never_says_recording_before_it_is() {
        let at = |state, warning, error| {
            pattern(Signal {
                state,
                warning,
                error,
                booked: false,
            })
        };
        assert_eq!(at("starting", false, false), Pattern::Off);
        assert_eq!(at("recording", false, false), Pattern::Solid);
        assert_eq!(at("recording", true, false), Pattern::FastBlink);
        assert_eq!(at("paused", false, false), Pattern::SlowBlink);
        assert_eq!(at("idle", false, false), Pattern::Off);
        assert_eq!(at("idle", false, true), Pattern::FastBlink);
        let booked = |state| {
            pattern(Signal {
                state,
                warning: false,
                error: false,
                booked: true,
            })
        };
        assert_eq!(booked("idle"), Pattern::Pulse);
        assert_eq!(
            booked("recording"),
            Pattern::Solid,
            "a started lesson is just recording"
        );
    }

    #[test]
    fn blinks_have_their_rates() {
        let at = |p, ms| lit(p, Duration::from_millis(ms));
        assert!(
            at(Pattern::SlowBlink, 0)
                && !at(Pattern::SlowBlink, 600)
                && at(Pattern::SlowBlink, 1100)
        );
        assert!(
            at(Pattern::FastBlink, 0)
                && !at(Pattern::FastBlink, 130)
                && at(Pattern::FastBlink, 260)
        );
        assert!(at(Pattern::Solid, 12_345) && !at(Pattern::Off, 0));
        assert!(at(Pattern::Pulse, 100) && !at(Pattern::Pulse, 500) && at(Pattern::Pulse, 2100));
    }
}
