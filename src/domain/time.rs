//! Time as tokend stores it: whole seconds since the Unix epoch, UTC.
//!
//! The contract prints timestamps as `YYYY-MM-DDTHH:MM:SSZ`, so nothing finer
//! than a second is kept; both databases store plain integers, which sort and
//! compare the same way everywhere.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds in a day.
pub const SECONDS_PER_DAY: i64 = 86_400;

/// Seconds since the epoch, now.
pub fn now_seconds() -> i64 {
    i64::try_from(now_millis() / 1000).unwrap_or(i64::MAX)
}

/// Milliseconds since the epoch, now. A clock before 1970 reads as 0.
pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
