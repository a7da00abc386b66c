//! `lessonlens-capture doctor`: is this device ready to record? Each check says what is wrong and
//! what to install or change, in words a school technician can act on. The service runs the same
//! checks at start and shows them in `status`.
//!
//! - **elements**: every GStreamer element the configured pipeline uses is installed (the package
//!   for a missing one comes from `capture/gst-elements.txt`), and an H.264 and an AAC encoder work.
//! - **camera**, **microphone**: the configured source opens and delivers data.
//! - **spool**: the spool folder is writable and its disk has room for `reserve_minutes`.
//! - **server**: the server answers this device over mutual TLS.
//! - **clock**: the clock agrees with the server's (certificates and lesson times depend on it).

use crate::config::Config;
use crate::elements;
use crate::pipeline;
use crate::upload::Client;
use gst::prelude::*;
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime};

/// One check's outcome.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Check {
    /// `elements`, `camera`, `microphone`, `spool`, `server` or `clock`.
    pub name: String,
    pub ok: bool,
    /// What was found; when not ok, also what to do.
    pub detail: String,
}

impl Check {
    fn new(name: &str, result: Result<String, String>) -> Check {
        let (ok, detail) = match result {
            Ok(d) => (true, d),
            Err(d) => (false, d),
        };
        Check {
            name: name.into(),
            ok,
            detail,
        }
    }
}

/// The most a clock may differ from the server's before `doctor` complains.
pub(crate) const MAX_SKEW: Duration = Duration::from_secs(60);

/// Runs every check. `client` is `None` when the device is not enrolled yet.
pub fn run(config: &Config, client: Option<&Client>) -> Vec<Check> {
    let gst_ok = pipeline::init().is_ok();
    let mut checks = vec![Check::new("elements", check_elements(config, gst_ok))];
    if gst_ok {
        checks.push(Check::new(
            "camera",
            check_source("camera", &pipeline::video_source(config)),
        ));
        for (n, a) in pipeline::microphones(config).into_iter().enumerate() {
            let name = pipeline::MICROPHONES[n];
            checks.push(Check::new(
                name,
                check_source(name, &pipeline::audio_source(a, n)),
            ));
        }
    }
    checks.push(Check::new("spool", check_spool(config)));
    let server_time = match client {
        None => Err("this device is not enrolled: ask an admin for a code (Devices on the admin page) and run `lessonlens-capture enroll`".to_string()),
        Some(c) => c.server_time().map_err(|e| {
            format!("cannot reach the server at {}: {e}. Check the network cable, the server's address in the config, and that the server is running", config.server_url)
        }),
    };
    checks.push(Check::new(
        "server",
        server_time
            .as_ref()
            .map(|_| format!("{} answers this device", config.server_url))
            .map_err(Clone::clone),
    ));
    checks.push(Check::new(
        "clock",
        check_clock(SystemTime::now(), server_time.ok()),
    ));
    checks
}

/// The install hint for a missing element, from the table.
fn install_hint(element: &str) -> String {
    match elements::lookup(element) {
        Some(e) if e.package == "builtin" => {
            format!("{element} is built into lessonlens-capture; reinstall lessonlens-capture")
        }
        Some(e) => format!(
            "the GStreamer element {element} is missing: install the package {} (apt-get install --no-install-recommends {})",
            e.package, e.package
        ),
        None => format!("the GStreamer element {element} is missing and not in lessonlens' element table; report this"),
    }
}

fn check_elements(config: &Config, gst_ok: bool) -> Result<String, String> {
    if !gst_ok {
        return Err(
            "GStreamer cannot start: install libgstreamer1.0-0 and gstreamer1.0-plugins-base"
                .into(),
        );
    }
    let venc = pipeline::pick_video_encoder()
        .map_err(|_| format!("no H.264 encoder works: {}", install_hint("x264enc")))?;
    let aenc = pipeline::pick_audio_encoder()
        .map_err(|_| format!("no AAC encoder is installed: {}", install_hint("avenc_aac")))?;
    let desc = pipeline::describe(config, venc, aenc);
    let missing: Vec<String> = elements::in_description(&desc)
        .into_iter()
        .filter(|e| gst::ElementFactory::find(e).is_none())
        .map(|e| install_hint(&e))
        .collect();
    if !missing.is_empty() {
        return Err(missing.join("; "));
    }
    Ok(format!("all elements present; encoders {venc} and {aenc}"))
}

/// Opens `source` (a description whose first element is named `what`) and waits for it to
/// deliver a few buffers.
fn check_source(what: &str, source: &str) -> Result<String, String> {
    let desc = format!("{source} ! fakesink sync=false");
    let p =
        gst::parse::launch(&desc).map_err(|e| format!("cannot build the {what} source: {e}"))?;
    if let Some(src) = p.downcast_ref::<gst::Bin>().and_then(|b| b.by_name(what)) {
        src.set_property("num-buffers", 3i32);
    }
    let outcome = match p.set_state(gst::State::Playing) {
        Err(_) => None,
        Ok(_) => p.bus().and_then(|bus| {
            bus.timed_pop_filtered(
                gst::ClockTime::from_seconds(5),
                &[gst::MessageType::Eos, gst::MessageType::Error],
            )
        }),
    };
    let error = p
        .bus()
        .and_then(|bus| bus.pop_filtered(&[gst::MessageType::Error]));
    let _ = p.set_state(gst::State::Null);
    let hint = match what {
        "camera" => "Check that the camera is plugged in and that `video.device` in the config names it (`v4l2-ctl --list-devices`)",
        "room-microphone" => "Check that the room's microphone is plugged in and that `room_audio.device` in the config names it (`arecord -L`)",
        _ => "Check that the microphone is plugged in and that `audio.device` in the config names it (`arecord -L`)",
    };
    match outcome.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Eos(_)) => Ok(format!("the {what} delivers data")),
        Some(gst::MessageView::Error(e)) => Err(format!(
            "the {what} cannot be opened: {}. {hint}",
            e.error()
        )),
        _ => match error.as_ref().map(|m| m.view()) {
            Some(gst::MessageView::Error(e)) => Err(format!(
                "the {what} cannot be opened: {}. {hint}",
                e.error()
            )),
            _ => Err(format!("the {what} delivered nothing within 5 s. {hint}")),
        },
    }
}

fn check_spool(config: &Config) -> Result<String, String> {
    let dir = &config.spool_dir;
    std::fs::create_dir_all(dir).map_err(|e| {
        format!(
            "cannot create the spool folder {}: {e}. Check `spool_dir` in the config and its owner",
            dir.display()
        )
    })?;
    let probe = dir.join(".doctor-probe");
    std::fs::write(&probe, b"probe")
        .and_then(|_| std::fs::remove_file(&probe))
        .map_err(|e| format!("cannot write in the spool folder {}: {e}. Check its owner and that the disk is not read-only", dir.display()))?;
    let fs = rustix::fs::statvfs(dir)
        .map_err(|e| format!("cannot read the free space of {}: {e}", dir.display()))?;
    let free = fs.f_bavail.saturating_mul(fs.f_frsize);
    let lesson = u64::from(config.reserve_minutes).saturating_mul(config.bytes_per_minute());
    let mb = |b: u64| b / 1_000_000;
    if free < lesson {
        return Err(format!(
            "the spool's disk has {} MB free, and a lesson of {} minutes needs {} MB. Free space on the disk (or lower reserve_minutes)",
            mb(free),
            config.reserve_minutes,
            mb(lesson)
        ));
    }
    Ok(format!(
        "{} is writable; {} MB free, a lesson needs {} MB",
        dir.display(),
        mb(free),
        mb(lesson)
    ))
}

/// The clock is plausible (not before this build was made) and, when the server answered, within
/// [`MAX_SKEW`] of the server's.
fn check_clock(now: SystemTime, server: Option<SystemTime>) -> Result<String, String> {
    // 2026-01-01: no real clock reads earlier than the build it runs.
    let floor = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600);
    if now < floor {
        return Err(format!(
            "the clock says {}, which is before this software was built. Set the time (enable NTP: `timedatectl set-ntp true`)",
            httpdate::fmt_http_date(now)
        ));
    }
    let Some(server) = server else {
        return Ok("the clock looks plausible (the server's clock could not be compared)".into());
    };
    let skew = now.duration_since(server).unwrap_or_else(|e| e.duration());
    if skew > MAX_SKEW {
        return Err(format!(
            "the clock differs from the server's by {} s: certificates and lesson times depend on it. Enable NTP (`timedatectl set-ntp true`) on this device and the server",
            skew.as_secs()
        ));
    }
    Ok(format!(
        "within {} s of the server's clock",
        skew.as_secs().max(1)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_check_flags_an_unset_clock_and_a_skew() {
        let server = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert!(check_clock(server, Some(server)).is_ok());
        assert!(check_clock(server + Duration::from_secs(59), Some(server)).is_ok());
        let ahead = check_clock(server + Duration::from_secs(120), Some(server)).unwrap_err();
        assert!(ahead.contains("120 s"), "{ahead}");
        let behind = check_clock(server - Duration::from_secs(300), Some(server)).unwrap_err();
        assert!(behind.contains("300 s"), "{behind}");
        assert!(check_clock(SystemTime::UNIX_EPOCH, None)
            .unwrap_err()
            .contains("timedatectl"));
        assert!(check_clock(server, None).is_ok());
    }

    #[test]
    fn a_missing_element_names_its_package() {
        assert!(install_hint("timeoverlay").contains("gstreamer1.0-x"));
        assert!(install_hint("alsasrc").contains("gstreamer1.0-alsa"));
        assert!(install_hint("nosuch").contains("not in lessonlens' element table"));
    }
}
