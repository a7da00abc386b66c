//! What is kept, and how: the metadata database, the key vault, the blob store and the TLS
//! material. Each module answers with its own errors (or rusqlite's), never with HTTP's.

pub mod access;
pub mod accounts;
pub mod audit;
pub mod blobs;
pub mod comments;
pub mod db;
pub mod deletion;
pub mod devices;
pub mod groups;
pub mod leaving;
pub mod locks;
pub mod receipts;
pub mod recordings;
pub mod retention;
pub mod roster;
pub mod segments;
pub mod shares;
pub mod subject;
pub mod tls;
pub mod vault;
