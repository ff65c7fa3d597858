//! Durations as people write them in the registry: `50ms`, `30s`, `10m`, `2h`, `7d`.

use std::time::Duration;

/// Parses a human duration (`humantime` syntax: `50ms`, `30s`, `1h 30m`, `7d`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!("{text:?} is not a duration like \"50ms\", \"30s\", \"2h\", \"7d\" ({e})")
    })
}

/// Formats a duration compactly (`30s`, `2h`, `1h 30m`).
pub fn format_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_usual_units() {
        assert_eq!(parse_duration("50ms").unwrap(), Duration::from_millis(50));
        assert_eq!(
            parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86400)
        );
        assert!(parse_duration("soon").is_err());
        assert_eq!(format_duration(Duration::from_secs(90)), "1m 30s");
    }
}
