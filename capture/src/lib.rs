//! `lessonlens-capture`: the classroom device's daemon. It records a lesson with GStreamer, seals
//! every segment to the teacher's public key while it is still in memory, keeps the ciphertext in a
//! durable spool and uploads it to the school server.
//!
//! # Layout
//! - [`config`]: the TOML config, validated once at start.
//! - [`elements`]: the GStreamer elements used and the Debian packages that provide them.
//! - [`doctor`]: the readiness checks (elements, camera, microphone, spool, server, clock).
//! - [`pipeline`]: the GStreamer pipeline (sources -> H.264 + AAC -> fragmented MP4 -> appsink).
//! - [`sealer`]: turns fragments into sealed segments off the streaming thread.
//! - [`spool`]: the durable on-disk queue of sealed segments (ciphertext only).
//! - [`identity`]: the device's key and certificate: enrollment (pinning the school CA) and renewal.
//! - [`upload`]: the HTTPS client (mutual TLS) and the uploader loop that drains the spool.
//! - [`recorder`]: one recording, start to stop, wiring the parts above together.
//! - [`live`]: a running recording's levels, preview and watchdogs, for the device screen.
//! - [`daemon`]: the service: one recording at a time, its truthful state, the reporter.
//! - [`control`]: the loopback control API and the device screen it serves.
//! - [`service`]: `lessonlens-capture run`, wiring the daemon and the control API together.
//! - [`button`], [`light`]: the record button (evdev) and the recording light (sysfs LEDs).

pub mod button;
pub mod channel;
pub mod config;
pub mod control;
pub mod daemon;
pub mod doctor;
pub mod elements;
pub mod identity;
pub mod light;
pub mod live;
pub mod pipeline;
pub mod recorder;
pub mod sealer;
pub mod service;
pub mod spool;
pub mod status;
pub mod talk;
pub mod upload;
