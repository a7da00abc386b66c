//! Device configuration: a TOML file (see `config/capture.example.toml`), validated once at start.

use anyhow::{bail, Context};
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Base URL of the school server's device API (its mutual-TLS listener), e.g.
    /// `https://lessonlens.school.lan:8444`.
    pub server_url: String,
    /// This device's identity: its key and certificate, and the school CA it trusts (never the
    /// system roots, so it cannot be talked into uploading to another server). Written by
    /// `lessonlens-capture enroll`; mode 0700.
    pub identity_dir: PathBuf,
    /// Where sealed segments wait for upload. Holds ciphertext only.
    pub spool_dir: PathBuf,
    #[serde(default)]
    pub video: VideoConfig,
    /// The microphone: the teacher's (a lapel or USB microphone they wear) when `room_audio`
    /// names a second one, otherwise the only one.
    #[serde(default)]
    pub audio: AudioConfig,
    /// A second microphone for the room (optional). Both are mixed into the lesson's sound
    /// (each with its `gain`), and talk time can then tell the teacher from the pupils.
    #[serde(default)]
    pub room_audio: Option<AudioConfig>,
    #[serde(default)]
    pub talk: TalkConfig,
    /// Target fragment (segment) length in seconds; keyframes are forced at this interval.
    #[serde(default = "default_segment_seconds")]
    pub segment_seconds: u32,
    /// The local control API (`lessonlens-capture run`): loopback only, default 127.0.0.1:8765.
    #[serde(default = "default_control_addr")]
    pub control_addr: std::net::SocketAddr,
    /// Most the spool may hold, in MB (10^6 bytes). Default 4000.
    #[serde(default = "default_spool_budget_mb")]
    pub spool_budget_mb: u64,
    /// A recording starts only if this many minutes of it still fit in the spool budget, so a
    /// lesson is never begun that the device cannot keep while offline. Default 60.
    #[serde(default = "default_reserve_minutes")]
    pub reserve_minutes: u32,
    /// Segments uploaded at the same time (oldest first). Default 2: one upload waits on the
    /// network while the next is sent, without crowding a classroom's uplink.
    #[serde(default = "default_upload_concurrency")]
    pub upload_concurrency: usize,
    /// Lets the control API (and `record once`) start a recording by a teacher's username,
    /// without their code: for demos and for an admin's own test device. Off by default, so that
    /// no page or process on the device can record in a teacher's name without their code.
    #[serde(default)]
    pub demo_mode: bool,
    #[serde(default)]
    pub watchdog: WatchdogConfig,
    /// The record button (optional).
    #[serde(default)]
    pub button: Option<ButtonConfig>,
    /// The recording light (optional).
    #[serde(default)]
    pub light: Option<LightConfig>,
}

/// When a recording's microphone or camera is reported as not working. The recording goes on;
/// the warning shows on the screen, in `status`, `/metrics`, the light and the admin's list.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchdogConfig {
    /// A microphone whose peak stays below this level (dBFS) is "hearing nothing". Default -50.
    #[serde(default = "default_quiet_db")]
    pub quiet_db: f64,
    /// ...for this many seconds. Default 60.
    #[serde(default = "default_quiet_seconds")]
    pub quiet_seconds: u32,
    /// A picture that is black or does not change at all for this many seconds. Default 30.
    #[serde(default = "default_picture_seconds")]
    pub picture_seconds: u32,
    /// Warn when the picture does not change at all. Default on; turn it off for an HDMI capture
    /// card that may show a still slide for minutes.
    #[serde(default = "default_true")]
    pub frozen_picture: bool,
}

/// A USB button that sends a key (a "big red button" or a presenter remote), read through evdev.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ButtonConfig {
    /// The input device, preferably by its stable name, e.g.
    /// `/dev/input/by-id/usb-Example_Button-event-kbd`.
    pub device: std::path::PathBuf,
    /// The key it sends, by its Linux name (`KEY_F13`, `KEY_PAGEDOWN`...). Default `KEY_F13`.
    #[serde(default = "default_button_key")]
    pub key: String,
    /// A press held this long stops the recording; a shorter one pauses or resumes. Default 2000.
    #[serde(default = "default_long_press_ms")]
    pub long_press_ms: u32,
}

/// LEDs under `/sys/class/leds` that show the recording state.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LightConfig {
    /// LED names (folders under `leds_dir`), e.g. `["lessonlens:red:record"]`.
    pub leds: Vec<String>,
    /// Where the LEDs are. Default `/sys/class/leds`.
    #[serde(default = "default_leds_dir")]
    pub leds_dir: std::path::PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VideoConfig {
    /// `test` (videotestsrc with a time overlay), `v4l2`, or `shm`: raw I420 frames of the
    /// configured size and rate from another process on the device over shared memory
    /// (GStreamer's `shmsink`), e.g. a camera service shared with a preview screen. The fault
    /// tests use it to make a camera disappear mid-lesson.
    #[serde(default = "default_test")]
    pub source: String,
    /// Camera device for `v4l2`; the socket path for `shm`.
    #[serde(default = "default_video_device")]
    pub device: String,
    #[serde(default = "default_width")]
    pub width: u32,
    #[serde(default = "default_height")]
    pub height: u32,
    #[serde(default = "default_fps")]
    pub fps: u32,
    /// H.264 bitrate in kbit/s.
    #[serde(default = "default_bitrate")]
    pub bitrate_kbps: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioConfig {
    /// `test` (audiotestsrc), `alsa`, `pulse`, or `shm` (48 kHz mono S16LE from another process,
    /// as for video).
    #[serde(default = "default_test")]
    pub source: String,
    /// ALSA device (e.g. `hw:1`), PulseAudio source name or `shm` socket path; empty for the
    /// default (required for `shm`).
    #[serde(default)]
    pub device: String,
    /// How loud it is in the lesson's mix: 1.0 as it comes, 0 to 4. Default 1.0.
    #[serde(default = "default_gain")]
    pub gain: f64,
}

/// Talk time: which seconds of a lesson the teacher talked, the pupils talked, or it was quiet,
/// worked out on the device from its microphones and sealed with the lesson.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TalkConfig {
    /// Work out talk time. Default on.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// With two microphones, voice is the teacher's when the teacher's microphone hears it more
    /// than this many dB louder than the room's (after gains). Default 0; raise it if pupils
    /// near the teacher are counted as the teacher. Between -30 and 30.
    #[serde(default)]
    pub balance_db: f64,
}

impl Default for TalkConfig {
    fn default() -> Self {
        TalkConfig {
            enabled: true,
            balance_db: 0.0,
        }
    }
}

fn default_gain() -> f64 {
    1.0
}
fn default_test() -> String {
    "test".into()
}
fn default_video_device() -> String {
    "/dev/video0".into()
}
fn default_width() -> u32 {
    1280
}
fn default_height() -> u32 {
    720
}
fn default_fps() -> u32 {
    30
}
fn default_bitrate() -> u32 {
    2500
}
fn default_control_addr() -> std::net::SocketAddr {
    "127.0.0.1:8765".parse().expect("valid default")
}
fn default_spool_budget_mb() -> u64 {
    4000
}
fn default_reserve_minutes() -> u32 {
    60
}
fn default_upload_concurrency() -> usize {
    2
}
fn default_segment_seconds() -> u32 {
    2
}
fn default_true() -> bool {
    true
}
fn default_quiet_db() -> f64 {
    -50.0
}
fn default_quiet_seconds() -> u32 {
    60
}
fn default_picture_seconds() -> u32 {
    30
}
fn default_button_key() -> String {
    "KEY_F13".into()
}
fn default_long_press_ms() -> u32 {
    2000
}
fn default_leds_dir() -> std::path::PathBuf {
    "/sys/class/leds".into()
}

impl Default for WatchdogConfig {
    fn default() -> Self {
        WatchdogConfig {
            quiet_db: default_quiet_db(),
            quiet_seconds: default_quiet_seconds(),
            picture_seconds: default_picture_seconds(),
            frozen_picture: true,
        }
    }
}

impl Default for VideoConfig {
    fn default() -> Self {
        VideoConfig {
            source: default_test(),
            device: default_video_device(),
            width: default_width(),
            height: default_height(),
            fps: default_fps(),
            bitrate_kbps: default_bitrate(),
        }
    }
}

impl Default for AudioConfig {
    fn default() -> Self {
        AudioConfig {
            source: default_test(),
            device: String::new(),
            gain: default_gain(),
        }
    }
}

/// Device names go into the pipeline description: allow only what device names contain.
fn check_device(what: &str, value: &str) -> anyhow::Result<()> {
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/:_.,-".contains(&b))
    {
        bail!("{what} {value:?} may contain only letters, digits and / : _ . , -");
    }
    Ok(())
}

impl AudioConfig {
    /// Checks one microphone's settings (`what`: its section in the config file).
    fn check(&self, what: &str) -> anyhow::Result<()> {
        if !matches!(self.source.as_str(), "test" | "alsa" | "pulse" | "shm") {
            bail!(
                "{what}.source must be \"test\", \"alsa\", \"pulse\" or \"shm\", got {:?}",
                self.source
            );
        }
        check_device(&format!("{what}.device"), &self.device)?;
        if self.source == "shm" && self.device.is_empty() {
            bail!("{what}.source \"shm\" needs {what}.device: the socket path of the process that shares the microphone");
        }
        if !(0.0..=4.0).contains(&self.gain) {
            bail!("{what}.gain must be between 0 and 4, got {}", self.gain);
        }
        Ok(())
    }
}

impl Config {
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let config: Config = toml::from_str(&text)
            .with_context(|| format!("config file {} is not valid", path.display()))?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if !self.server_url.starts_with("https://") {
            bail!(
                "server_url must start with https:// (the device only talks TLS), got {:?}",
                self.server_url
            );
        }
        if !matches!(self.video.source.as_str(), "test" | "v4l2" | "shm") {
            bail!(
                "video.source must be \"test\", \"v4l2\" or \"shm\", got {:?}",
                self.video.source
            );
        }
        check_device("video.device", &self.video.device)?;
        self.audio.check("audio")?;
        if let Some(room) = &self.room_audio {
            room.check("room_audio")?;
            // A section with only a device would otherwise mix a test tone into every lesson.
            if room.source == "test" && !room.device.is_empty() {
                bail!(
                    "room_audio names a device ({:?}) but no source: set room_audio.source to \"alsa\", \"pulse\" or \"shm\"",
                    room.device
                );
            }
            if room.source != "test"
                && (room.source.as_str(), room.device.as_str())
                    == (self.audio.source.as_str(), self.audio.device.as_str())
            {
                bail!("audio and room_audio name the same microphone ({} {:?}): one device cannot be opened twice; name the room's microphone in room_audio.device (`arecord -L` lists them)", room.source, room.device);
            }
        }
        if !(-30.0..=30.0).contains(&self.talk.balance_db) {
            bail!(
                "talk.balance_db must be between -30 and 30, got {}",
                self.talk.balance_db
            );
        }
        if !self.control_addr.ip().is_loopback() {
            bail!("control_addr must be a loopback address (127.0.0.1 or ::1): the control API has no authentication of its own");
        }
        if !(1..=6).contains(&self.segment_seconds) {
            bail!(
                "segment_seconds must be between 1 and 6, got {}",
                self.segment_seconds
            );
        }
        if !(1..=8).contains(&self.upload_concurrency) {
            bail!(
                "upload_concurrency must be between 1 and 8, got {}",
                self.upload_concurrency
            );
        }
        if self.video.width == 0 || self.video.height == 0 || !(1..=60).contains(&self.video.fps) {
            bail!("video width/height must be positive and fps between 1 and 60");
        }
        let w = &self.watchdog;
        if !(-90.0..=0.0).contains(&w.quiet_db)
            || !(1..=3600).contains(&w.quiet_seconds)
            || !(1..=3600).contains(&w.picture_seconds)
        {
            bail!("watchdog: quiet_db must be between -90 and 0, quiet_seconds and picture_seconds between 1 and 3600");
        }
        if let Some(b) = &self.button {
            key_code(&b.key)?;
            if !(300..=10_000).contains(&b.long_press_ms) {
                bail!("button.long_press_ms must be between 300 and 10000");
            }
        }
        if let Some(l) = &self.light {
            for name in &l.leds {
                if name.is_empty() || name.contains('/') || name.starts_with('.') {
                    bail!(
                        "light.leds: {name:?} is not an LED name (a folder under {})",
                        l.leds_dir.display()
                    );
                }
            }
        }
        Ok(())
    }

    pub fn spool_budget_bytes(&self) -> u64 {
        self.spool_budget_mb * 1_000_000
    }

    /// Spool bytes one minute of recording needs: video and audio bitrates plus 10 % for
    /// container and envelope overhead.
    pub fn bytes_per_minute(&self) -> u64 {
        let kbps = u64::from(self.video.bitrate_kbps) + 128;
        kbps * 1000 / 8 * 60 * 11 / 10
    }
}

/// The key code for a Linux key name such as `KEY_F13`.
pub fn key_code(name: &str) -> anyhow::Result<u16> {
    <evdev::KeyCode as std::str::FromStr>::from_str(name)
        .map(|k| k.code())
        .map_err(|_| anyhow::anyhow!("button.key {name:?} is not a Linux key name (e.g. KEY_F13, KEY_PAGEDOWN); `evtest` shows what a button sends"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> String {
        "server_url = \"https://127.0.0.1:8443\"\nidentity_dir = \"id\"\nspool_dir = \"s\"\n".into()
    }

    #[test]
    fn defaults_apply_and_validate() {
        let c: Config = toml::from_str(&base()).unwrap();
        c.validate().unwrap();
        assert_eq!(c.video.source, "test");
        assert_eq!(c.segment_seconds, 2);
    }

    #[test]
    fn rejects_plain_http_and_unknown_sources() {
        let c: Config = toml::from_str(&base().replace("https", "http")).unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("https://"));
        let c: Config =
            toml::from_str(&format!("{}[video]\nsource = \"webcam\"\n", base())).unwrap();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("video.source"));
        assert!(toml::from_str::<Config>(&format!("{}colour = 1\n", base())).is_err());
        let c: Config = toml::from_str(&format!(
            "{}[audio]\nsource = \"alsa\"\ndevice = \"hw:0 ! filesink location=x\"\n",
            base()
        ))
        .unwrap();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("audio.device"));
    }

    #[test]
    fn a_room_microphone_needs_a_source_of_its_own() {
        let room = |section: &str| -> String {
            let c: Config = toml::from_str(&format!(
                "{}[audio]\nsource = \"alsa\"\ndevice = \"hw:1\"\n[room_audio]\n{section}",
                base()
            ))
            .unwrap();
            c.validate()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(room("device = \"hw:2\"\n").contains("no source"));
        assert!(room("source = \"alsa\"\ndevice = \"hw:1\"\n").contains("same microphone"));
        assert!(
            room("source = \"alsa\"\ndevice = \"hw:2\"\ngain = 9\n").contains("room_audio.gain")
        );
        assert_eq!(room("source = \"alsa\"\ndevice = \"hw:2\"\n"), "");
        assert_eq!(room("source = \"test\"\n"), "");
    }

    #[test]
    fn the_example_config_is_valid_with_and_without_its_button_and_light() {
        let example = include_str!("../../config/capture.example.toml");
        let c: Config = toml::from_str(example).unwrap();
        c.validate().unwrap();
        assert!(!c.demo_mode, "demo mode is off unless turned on");
        let all = example
            .replace("# [", "[")
            .replace("# device", "device")
            .replace("# source", "source")
            .replace("# gain", "gain")
            .replace("# key", "key")
            .replace("# long_press_ms", "long_press_ms")
            .replace("# leds", "leds");
        let c: Config = toml::from_str(&all).unwrap();
        c.validate().unwrap();
        assert_eq!(c.button.unwrap().long_press_ms, 2000);
        assert_eq!(c.light.unwrap().leds, ["lessonlens:red:record"]);
        let bad: Config = toml::from_str(&all.replace("KEY_F13", "F13")).unwrap();
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("Linux key name"));
        let bad: Config =
            toml::from_str(&all.replace("\"lessonlens:red:record\"", "\"../x\"")).unwrap();
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("not an LED name"));
    }
}
