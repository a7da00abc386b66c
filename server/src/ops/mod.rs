//! Operations of several steps over the store: ingest, claiming an offline lesson, a teacher
//! leaving, the retention sweep, subject access exports, backups. They take the database and the vault for one
//! step at a time (see `store::locks`), so requests go on meanwhile.

pub mod backup;
pub mod claim;
pub mod export;
pub mod ingest;
pub mod offboarding;
pub mod sweep;
