//! `lessonlens-server`: the school's server. It accepts sealed segments from classroom devices,
//! stores them as ciphertext, keeps each teacher's keys in a vault, and decrypts on the fly for the
//! people allowed to watch.
//!
//! # Layers (docs/architecture.md), from the top; a module imports only from its own layer or below
//! - `main.rs` and `cli/`: the console commands (in the binary).
//! - [`jobs`]: the loops the server runs by itself beside the listeners.
//! - [`http`]: middleware, routers, listeners, state, extractors, the error mapping and
//!   [`http::routes`], one file per resource.
//! - [`ops`]: operations of several steps (deletion, offboarding, export, backup, the sweep).
//! - [`store`]: the database, the vault, the blob store, TLS material.
//! - [`domain`]: pure rules; and [`config`], the settings, validated once at start.

pub mod config;
pub mod domain;
pub mod http;
pub mod jobs;
pub mod ops;
pub mod store;

mod architecture;
