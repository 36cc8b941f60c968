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

/// Formats Unix seconds as RFC 3339 UTC (`2022-11-22T04:37:12Z`), for
/// human-readable audit details.
pub fn rfc3339(seconds: i64) -> String {
    let days = seconds.div_euclid(SECONDS_PER_DAY);
    let secs = seconds.rem_euclid(SECONDS_PER_DAY);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Unix milliseconds as RFC 3339 UTC with milliseconds
/// (`2022-11-22T04:37:12.345Z`).
pub fn rfc3339_millis(millis: i64) -> String {
    let seconds = rfc3339(millis.div_euclid(1000));
    format!(
        "{}.{:03}Z",
        seconds.trim_end_matches('Z'),
        millis.rem_euclid(1000)
    )
}

#[cfg(test)]
mod tests {
    use super::{rfc3339, rfc3339_millis};

    #[test]
    fn millis() {
        assert_eq!(
            rfc3339_millis(1_669_091_832_345),
            "2022-11-22T04:37:12.345Z"
        );
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_millis(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_669_091_832), "2022-11-22T04:37:12Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }
}
