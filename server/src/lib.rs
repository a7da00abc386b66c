//! `lessonlens-server`: the school's server. It accepts sealed segments from classroom devices,
//! stores them as ciphertext, keeps each teacher's keys in a vault, and decrypts on the fly for the
//! people allowed to watch.
//!
//! # Layout
//! - [`config`]: the TOML config, documented setting by setting, validated once at start.
//! - [`tls`]: the school CA, the server's certificate (made on first start), device certificates.
//! - [`db`]: the metadata database (SQLite, WAL, `synchronous=FULL`) and its migrations.
//! - [`vault`]: the master key and the key vault (teachers' X25519 keys, wrapped).
//! - [`blobs`]: where ciphertext lives: durable, content-addressed files.
//! - [`accounts`]: users, roles, passwords and sessions.
//! - [`devices`]: enrollment codes, device certificates, revocation.
//! - [`access`]: who may see a recording (owner, coaches it is shared with; nobody else).
//! - [`audit`]: the hash-chained audit log.
//! - [`deletion`]: deleting recordings for good, resumable after a crash.
//! - [`backup`]: consistent backups, and restores that never bring a shredded key back.
//! - [`error`]: one error type, one mapping to HTTP status.
//! - [`export`]: subject access: everything held about a person, as one ZIP archive.
//! - [`limits`]: failure counters that slow down password and device-code guessing.
//! - [`locks`]: taking the database or the vault for one step of a long job.
//! - [`network`]: which addresses count as the school's own.
//! - [`recordings`]: a recording's status (complete, incomplete, still recording).
//! - [`retention`]: the retention policy, its pure planner and the sweep.
//! - [`jobs`]: the loops the server runs by itself (the periodic sweep).
//! - [`offboarding`]: a teacher leaving: disable, crypto-shred, signed deletion receipt.
//! - [`roster`]: importing the school's staff list (CSV).
//! - [`second_factor`]: two-step sign-in (TOTP) and the policy that requires it.
//! - [`slow_clients`]: handshake and header timeouts, connections per address.
//! - [`routes`]: one file per route group (device API, web API, playback, static files).
//! - [`app`]: shared state and request extractors.
//! - [`http`]: middleware, the two routers (web; device API over mutual TLS) and the listeners.

pub mod access;
pub mod accounts;
pub mod app;
mod architecture;
pub mod audit;
pub mod backup;
pub mod blobs;
pub mod config;
pub mod db;
pub mod deletion;
pub mod devices;
pub mod error;
pub mod export;
pub mod http;
pub mod jobs;
pub mod limits;
pub mod locks;
pub mod network;
pub mod offboarding;
pub mod recordings;
pub mod retention;
pub mod roster;
pub mod routes;
pub mod second_factor;
pub mod slow_clients;
pub mod tls;
pub mod vault;
