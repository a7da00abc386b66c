//! The record button: a USB button or presenter remote that sends one key, read through evdev.
//! A short press pauses or resumes the running recording; a press held for `long_press_ms` (and
//! released) stops it. While idle a press only shows how to start: a button cannot say who is
//! recording, so starting takes the teacher's code on the screen.
//!
//! The device is opened with evdev and grabbed, so its key reaches no other program (the kiosk
//! browser). Events are then read as the kernel's `input_event` records from the same file
//! description. The same reader takes the records from a FIFO, which is how the tests feed real
//! events where `/dev/uinput` is not available.

use crate::config::{key_code, ButtonConfig};
use anyhow::Context;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// `EV_KEY`: a key or button event.
const EV_KEY: u16 = 1;
/// Bytes in a C `long`: the two fields of the event's `timeval` (8 on 64-bit Linux, 4 on 32-bit).
const LONG: usize = std::mem::size_of::<std::ffi::c_long>();
/// Bytes in one `struct input_event`: a timeval (two longs), type, code (2 bytes each) and value
/// (4 bytes). 24 on x86-64.
pub const EVENT_SIZE: usize = 2 * LONG + 8;

/// One `input_event` record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawEvent {
    /// The kernel's timestamp, in microseconds.
    pub time_us: i64,
    pub kind: u16,
    pub code: u16,
    pub value: i32,
}

impl RawEvent {
    // `c_long` is `i64` here but `i32` on 32-bit Linux, where the conversion is not useless.
    #[allow(clippy::useless_conversion)]
    pub fn decode(b: &[u8; EVENT_SIZE]) -> RawEvent {
        let long_at = |i: usize| {
            i64::from(std::ffi::c_long::from_ne_bytes(
                b[i..i + LONG].try_into().expect("a long"),
            ))
        };
        let u16_at = |i: usize| u16::from_ne_bytes(b[i..i + 2].try_into().expect("2 bytes"));
        let t = 2 * LONG;
        RawEvent {
            time_us: long_at(0)
                .saturating_mul(1_000_000)
                .saturating_add(long_at(LONG)),
            kind: u16_at(t),
            code: u16_at(t + 2),
            value: i32::from_ne_bytes(b[t + 4..t + 8].try_into().expect("4 bytes")),
        }
    }

    pub fn encode(&self) -> [u8; EVENT_SIZE] {
        let mut b = [0u8; EVENT_SIZE];
        let long = |v: i64| std::ffi::c_long::try_from(v).expect("a time the kernel can hold");
        let (secs, usecs) = (
            long(self.time_us / 1_000_000),
            long(self.time_us % 1_000_000),
        );
        let t = 2 * LONG;
        b[0..LONG].copy_from_slice(&secs.to_ne_bytes());
        b[LONG..t].copy_from_slice(&usecs.to_ne_bytes());
        b[t..t + 2].copy_from_slice(&self.kind.to_ne_bytes());
        b[t + 2..t + 4].copy_from_slice(&self.code.to_ne_bytes());
        b[t + 4..t + 8].copy_from_slice(&self.value.to_ne_bytes());
        b
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Press {
    Short,
    Long,
}

/// A press that starts sooner than this after the last one ended is ignored: a bouncing switch or
/// a device that sends presses faster than a hand would rebuilds the pipeline at each resume.
const BETWEEN_PRESSES_US: i64 = 300_000;

/// Turns key events into presses, timed by the kernel's timestamps. Pure.
pub struct Presses {
    key: u16,
    long_us: i64,
    down_at: Option<i64>,
    last_up: Option<i64>,
}

impl Presses {
    pub fn new(key: u16, long_press: Duration) -> Presses {
        Presses {
            key,
            long_us: long_press.as_micros() as i64,
            down_at: None,
            last_up: None,
        }
    }

    /// A press ends when the key is released; auto-repeat and other keys are ignored.
    pub fn feed(&mut self, ev: RawEvent) -> Option<Press> {
        if ev.kind != EV_KEY || ev.code != self.key {
            return None;
        }
        match ev.value {
            1 => {
                let too_soon = self
                    .last_up
                    .is_some_and(|up| ev.time_us.saturating_sub(up) < BETWEEN_PRESSES_US);
                self.down_at = (!too_soon).then_some(ev.time_us);
                None
            }
            0 => {
                self.last_up = Some(ev.time_us);
                let down = self.down_at.take()?;
                Some(if ev.time_us.saturating_sub(down) >= self.long_us {
                    Press::Long
                } else {
                    Press::Short
                })
            }
            _ => None,
        }
    }
}

/// Reads presses from `source` until it ends or fails.
pub fn read_presses(
    mut source: impl Read,
    presses: &mut Presses,
    mut on_press: impl FnMut(Press),
) -> std::io::Result<()> {
    let mut record = [0u8; EVENT_SIZE];
    loop {
        match source.read_exact(&mut record) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        if let Some(p) = presses.feed(RawEvent::decode(&record)) {
            on_press(p);
        }
    }
}

/// The button's events: a grabbed evdev device, or a FIFO of `input_event` records. The evdev
/// handle is kept so the grab lasts as long as the reading.
fn open(path: &Path, key: u16) -> anyhow::Result<(std::fs::File, Option<evdev::Device>)> {
    let kind = std::fs::metadata(path)
        .with_context(|| format!("the record button {} is not connected", path.display()))?
        .file_type();
    if kind.is_fifo() {
        return Ok((std::fs::File::open(path)?, None));
    }
    let mut device = evdev::Device::open(path).with_context(|| {
        format!(
            "{} is not an input device the service can read (check button.device and that the service may read it)",
            path.display()
        )
    })?;
    // Only a device that sends the key and is no pointer or touchscreen: a renumbered path must
    // not take the kiosk's touchscreen or keyboard away from it.
    let sends_key = device
        .supported_keys()
        .is_some_and(|k| k.contains(evdev::KeyCode::new(key)));
    let points = device
        .supported_absolute_axes()
        .is_some_and(|a| a.iter().next().is_some())
        || device
            .supported_relative_axes()
            .is_some_and(|a| a.iter().next().is_some());
    if !sends_key || points {
        anyhow::bail!(
            "{} is not the record button: it {}; check button.device and button.key (`evtest` shows what a device sends)",
            path.display(),
            if sends_key { "is a pointer or touchscreen" } else { "does not send the configured key" }
        );
    }
    device
        .grab()
        .with_context(|| format!("cannot take {} for the service alone", path.display()))?;
    let file = std::fs::File::from(device.as_fd().try_clone_to_owned()?);
    Ok((file, Some(device)))
}

/// Reads the button until `shutdown`, opening it again when it comes back (unplugged, replaced),
/// and hands each press to `on_press`.
pub fn spawn(
    config: ButtonConfig,
    shutdown: Arc<AtomicBool>,
    on_press: impl Fn(Press) + Send + 'static,
) -> anyhow::Result<()> {
    let key = key_code(&config.key)?;
    let long = Duration::from_millis(config.long_press_ms.into());
    std::thread::spawn(move || {
        let mut told = false;
        while !shutdown.load(Ordering::Acquire) {
            match open(&config.device, key) {
                Ok((file, _grabbed)) => {
                    told = false;
                    tracing::info!(device = %config.device.display(), "record button ready");
                    let mut presses = Presses::new(key, long);
                    let read = read_presses(file, &mut presses, &on_press);
                    if let Err(e) = read {
                        tracing::warn!(error = %e, "the record button went away");
                    }
                }
                Err(e) if !told => {
                    tracing::warn!(error = %format!("{e:#}"), "record button not available; trying again every few seconds");
                    told = true;
                }
                Err(_) => {}
            }
            std::thread::sleep(Duration::from_secs(2));
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: u16, value: i32, ms: i64) -> RawEvent {
        RawEvent {
            time_us: ms * 1000,
            kind: EV_KEY,
            code,
            value,
        }
    }

    #[test]
    fn records_round_trip_and_presses_are_timed_by_the_kernel() {
        let f13 = key_code("KEY_F13").unwrap();
        assert_eq!(f13, 183);
        assert!(key_code("KEY_NOPE").is_err());
        let ev = key(f13, 1, 1_700_000_000_123);
        assert_eq!(RawEvent::decode(&ev.encode()), ev);

        let stream: Vec<u8> = [
            key(f13, 1, 1000),
            RawEvent {
                time_us: 1_000_000,
                kind: 0,
                code: 0,
                value: 0,
            }, // SYN_REPORT
            key(f13, 2, 1500), // auto-repeat
            key(30, 1, 1600),  // another key
            key(f13, 0, 1800),
            key(f13, 1, 5000),
            key(f13, 0, 7500),
            key(f13, 0, 9000), // a release without a press
            key(f13, 1, 9100), // too soon after the last release: a bounce
            key(f13, 0, 9150),
            key(f13, 1, 9600),
            key(f13, 0, 9700),
        ]
        .iter()
        .flat_map(|e| e.encode())
        .collect();
        let mut presses = Presses::new(f13, Duration::from_millis(2000));
        let mut seen = Vec::new();
        read_presses(stream.as_slice(), &mut presses, |p| seen.push(p)).unwrap();
        assert_eq!(seen, [Press::Short, Press::Long, Press::Short]);
    }
}
