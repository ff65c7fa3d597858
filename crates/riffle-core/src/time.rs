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

#[cfg(test)]
mod tests {
    use super::*;

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
