//! Timestamps: milliseconds since the Unix epoch, UTC.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, SecondsFormat, Utc};

/// Why a timestamp could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    #[error("{0:?} is neither RFC 3339 (2026-11-26T12:00:00Z) nor epoch milliseconds")]
    Unparseable(String),
    #[error("timestamp {0} ms is out of range")]
    OutOfRange(i64),
}

/// A point in time as milliseconds since the Unix epoch (UTC). Millisecond precision is
/// what every feature timestamp needs and it fits a varint in 6 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

/// Latest timestamp accepted: year 9999. Beyond it a value is a unit mistake (micros, nanos).
const MAX_MILLIS: i64 = 253_402_300_799_999;

impl Timestamp {
    pub const EPOCH: Timestamp = Timestamp(0);

    pub fn from_millis(ms: i64) -> Result<Self, TimestampError> {
        if !(0..=MAX_MILLIS).contains(&ms) {
            return Err(TimestampError::OutOfRange(ms));
        }
        Ok(Self(ms))
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    /// Wall-clock now.
    pub fn now() -> Self {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Self(ms)
    }

    /// Parses RFC 3339 (`2026-11-26T12:00:00Z`, also with a space instead of `T` as pandas
    /// prints it) or an integer of epoch milliseconds.
    pub fn parse(text: &str) -> Result<Self, TimestampError> {
        let text = text.trim();
        if let Ok(ms) = text.parse::<i64>() {
            return Self::from_millis(ms);
        }
        let parsed = DateTime::parse_from_rfc3339(text)
            .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%:z"))
            .map_err(|_| TimestampError::Unparseable(text.to_owned()))?;
        Self::from_millis(parsed.timestamp_millis())
    }

    /// Reads a JSON value: a string (RFC 3339 or digits) or a number of epoch milliseconds.
    pub fn from_json(value: &serde_json::Value) -> Result<Self, TimestampError> {
        match value {
            serde_json::Value::String(s) => Self::parse(s),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(ms) => Self::from_millis(ms),
                None => Err(TimestampError::Unparseable(n.to_string())),
            },
            other => Err(TimestampError::Unparseable(other.to_string())),
        }
    }

    /// Milliseconds from `self` to `later`, never negative.
    pub fn age_at(self, later: Timestamp) -> u64 {
        later.0.saturating_sub(self.0).max(0) as u64
    }

    /// RFC 3339 with seconds precision and a `Z`, as Feast prints event timestamps.
    pub fn to_rfc3339(self) -> String {
        match DateTime::<Utc>::from_timestamp_millis(self.0) {
            Some(dt) => {
                if self.0 % 1000 == 0 {
                    dt.to_rfc3339_opts(SecondsFormat::Secs, true)
                } else {
                    dt.to_rfc3339_opts(SecondsFormat::Millis, true)
                }
            }
            None => "1970-01-01T00:00:00Z".to_owned(),
        }
    }

    /// Appends [`Timestamp::to_rfc3339`]'s text to `out` without allocating: the read
    /// responses print one per group, and chrono's formatter was ~4% of a cached read.
    /// Hand-written (days to civil date, Howard Hinnant's algorithm) because chrono has no
    /// allocation-free RFC 3339 writer; times outside 1970–9999 take chrono's path.
    pub fn write_rfc3339(self, out: &mut Vec<u8>) {
        const END_OF_9999_MS: i64 = 253_402_300_800_000;
        if !(0..END_OF_9999_MS).contains(&self.0) {
            out.extend_from_slice(self.to_rfc3339().as_bytes());
            return;
        }
        let ms = self.0 % 1000;
        let secs = self.0 / 1000;
        let (days, sod) = (secs / 86_400, secs % 86_400);
        // civil_from_days: days since 1970-01-01 to (year, month, day).
        let z = days + 719_468;
        let era = z / 146_097;
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        digits_into(out, year, 4);
        let parts = [(b'-', month, 2), (b'-', day, 2), (b'T', sod / 3600, 2)];
        for (sep, v, w) in parts {
            out.push(sep);
            digits_into(out, v, w);
        }
        out.push(b':');
        digits_into(out, sod / 60 % 60, 2);
        out.push(b':');
        digits_into(out, sod % 60, 2);
        if ms != 0 {
            out.push(b'.');
            digits_into(out, ms, 3);
        }
        out.push(b'Z');
    }

    pub fn saturating_add_millis(self, ms: u64) -> Timestamp {
        Timestamp(
            self.0
                .saturating_add(ms.min(i64::MAX as u64) as i64)
                .min(MAX_MILLIS),
        )
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// Appends `v` (0 ≤ v < 10^width, width ≤ 4) as `width` zero-padded decimal digits.
fn digits_into(out: &mut Vec<u8>, mut v: i64, width: usize) {
    let mut buf = [b'0'; 4];
    for slot in buf[..width].iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out.extend_from_slice(&buf[..width]);
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The allocation-free writer prints exactly what chrono prints.
        #[test]
        fn write_rfc3339_equals_chrono(ms in 0i64..=MAX_MILLIS, whole in proptest::bool::ANY) {
            let t = Timestamp::from_millis(if whole { ms - ms % 1000 } else { ms }).unwrap();
            let mut out = Vec::new();
            t.write_rfc3339(&mut out);
            proptest::prop_assert_eq!(String::from_utf8(out).unwrap(), t.to_rfc3339());
        }
    }

    #[test]
    fn write_rfc3339_at_the_edges() {
        for ms in [0, 1, 999, 951_782_400_000, 1_795_700_603_000, MAX_MILLIS] {
            let t = Timestamp::from_millis(ms).unwrap();
            let mut out = Vec::new();
            t.write_rfc3339(&mut out);
            assert_eq!(String::from_utf8(out).unwrap(), t.to_rfc3339(), "{ms}");
        }
    }

    #[test]
    fn parses_the_forms_events_and_feast_use() {
        let t = Timestamp::parse("2026-11-26T12:00:00Z").unwrap();
        assert_eq!(t.millis(), 1_795_694_400_000);
        assert_eq!(Timestamp::parse("2026-11-26 12:00:00+00:00").unwrap(), t);
        assert_eq!(Timestamp::parse("1795694400000").unwrap(), t);
        assert_eq!(t.to_rfc3339(), "2026-11-26T12:00:00Z");
        assert_eq!(Timestamp::EPOCH.to_rfc3339(), "1970-01-01T00:00:00Z");
        assert!(Timestamp::parse("yesterday").is_err());
        assert!(Timestamp::from_millis(-1).is_err());
    }

    #[test]
    fn age_is_never_negative() {
        let t = Timestamp::from_millis(1000).unwrap();
        assert_eq!(t.age_at(Timestamp::from_millis(500).unwrap()), 0);
        assert_eq!(t.age_at(Timestamp::from_millis(1500).unwrap()), 500);
    }
}
