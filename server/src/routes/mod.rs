//! HTTP routes, one file per group.
//!
//! - [`device`]: the device API (`/api/device/v1/...`): teacher keys, segment and manifest upload.
//! - [`web`]: sign-in and the viewer's recording list (`/api/...`).
//! - [`playback`]: HLS playlist and on-the-fly decryption of segments.
//! - [`assets`]: the web app's files.

pub mod assets;
pub mod device;
pub mod playback;
pub mod web;
