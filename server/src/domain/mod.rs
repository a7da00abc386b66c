//! The rules, pure: no database, no HTTP, no async runtime. Everything above uses them; they use
//! nothing above. (docs/architecture.md)

pub mod access;
pub mod clock;
pub mod metrics;
pub mod network;
pub mod people;
pub mod receipt;
pub mod retention;
pub mod roster;
pub mod second_factor;
pub mod segments;
pub mod timetable;
