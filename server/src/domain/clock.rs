//! The clock: the one place the server reads the time, in Unix seconds.

/// Seconds in a day, for policies counted in days.
pub const DAY: i64 = 86_400;

/// Now, in Unix seconds.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}
