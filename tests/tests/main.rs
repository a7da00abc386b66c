//! The end-to-end tests, in one binary: the real server and capture binaries, real TLS, real
//! GStreamer and real Chromium. One module per area; the helpers they share are in `tests/src/`.
//! The test command runs them one at a time (`--test-threads=1`): they run real pipelines and
//! time crashes, which two cores shared between several of them would distort.

mod access;
mod authz;
mod backup;
mod bookings;
mod daemon;
mod devices;
mod elements;
mod export;
mod faults;
mod ingest;
mod live;
mod offline;
mod retention;
mod review;
mod rooms;
mod roster;
mod routes;
mod screen;
mod second_factor;
mod server_crash;
mod sources;
mod spine;
mod storage;
mod talk;
mod uploads;
