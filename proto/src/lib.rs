//! Pure formats shared by every part of lessonlens: the encrypted segment envelope, the recording
//! manifest, the wire types and the id newtypes.
//!
//! # Layout
//! - [`ids`]: id newtypes (`RecordingId`, `SegmentIndex`) so ids of different things cannot be mixed up.
//! - [`keys`]: X25519 key pairs for HPKE, key fingerprints, and zeroizing data keys.
//! - [`envelope`]: sealing and opening one media segment (byte layout documented there).
//! - [`manifest`]: what a device says about a whole recording when it stops.
//! - [`talk`]: who talked in each second of a lesson, and the figures a reviewer sees.
//! - [`wire`]: JSON bodies exchanged between device, server and browser.
//!
//! Nothing here does I/O: sealing takes keys, bytes and a random number generator, parsing takes
//! `&[u8]`. That keeps the formats testable byte for byte (see `tests/vectors/`).

pub mod envelope;
pub mod ids;
pub mod keys;
pub mod manifest;
pub mod talk;
pub mod wire;

pub use envelope::{
    open, open_in_place, rewrap, seal, Label, OpenError, Opened, SealError, SealParams,
    SegmentHeader,
};
pub use ids::{RecordingId, SegmentIndex, SegmentKind, POSTER_INDEX, TALK_INDEX};
pub use keys::{KeyFingerprint, PublicKey, SecretKey};
pub use manifest::{Manifest, ManifestSegment};
