//! The account of a load: what was read, written, skipped and not written, line by line
//! where it matters. It is produced for every load that got past the header, so a load is
//! never half-written silently.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use super::format::Format;

/// A row that was not loaded because it is invalid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    /// 1-based line number in the file.
    pub line: u64,
    pub reason: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// A batch of valid rows that did not reach the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedBatch {
    pub batch: u64,
    pub first_line: u64,
    pub last_line: u64,
    pub rows: u64,
    pub reason: String,
}

impl fmt::Display for FailedBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "batch {} (lines {}-{}, {} rows) not written: {}",
            self.batch, self.first_line, self.last_line, self.rows, self.reason
        )
    }
}

/// Everything a load did. `rows_read = rows_written + rows_skipped + rows_not_written`.
#[derive(Debug, Clone, Serialize)]
pub struct LoadSummary {
    pub group: String,
    pub format: Format,
    pub strict: bool,
    /// Data rows read from the file (valid or not).
    pub rows_read: u64,
    /// Rows the store acknowledged.
    pub rows_written: u64,
    /// Invalid rows, not written.
    pub rows_skipped: u64,
    /// Valid rows whose batch failed or was never sent.
    pub rows_not_written: u64,
    pub batches_written: u64,
    /// The first invalid rows (up to the load's error limit), in line order.
    pub errors: Vec<RowError>,
    pub failed_batches: Vec<FailedBatch>,
    /// Strict mode: the line of the first invalid row, where the load stopped. Rows before
    /// it were written; nothing from it on was.
    pub stopped_at_line: Option<u64>,
    /// After a store failure the file was not read further: lines after this one were not
    /// loaded.
    pub unread_after_line: Option<u64>,
    /// The file could not be read to its end.
    pub read_error: Option<String>,
    #[serde(rename = "elapsed_ms", serialize_with = "millis")]
    pub elapsed: Duration,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

impl LoadSummary {
    pub(super) fn new(group: &str, format: Format, strict: bool) -> Self {
        Self {
            group: group.to_owned(),
            format,
            strict,
            rows_read: 0,
            rows_written: 0,
            rows_skipped: 0,
            rows_not_written: 0,
            batches_written: 0,
            errors: Vec::new(),
            failed_batches: Vec::new(),
            stopped_at_line: None,
            unread_after_line: None,
            read_error: None,
            elapsed: Duration::ZERO,
        }
    }

    /// Rows written per second of wall time.
    pub fn rows_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.rows_written as f64 / secs
        } else {
            0.0
        }
    }

    /// Why the load counts as failed, if it does: a store write failed, the file could not
    /// be read to its end, or a strict load met an invalid row. Skipped rows of a non-strict
    /// load are reported but are not a failure.
    pub fn failure(&self) -> Option<String> {
        if let Some(first) = self.failed_batches.first() {
            return Some(format!(
                "{} batch(es), {} valid row(s) not written; first: {first}",
                self.failed_batches.len(),
                self.rows_not_written
            ));
        }
        if let Some(e) = &self.read_error {
            return Some(format!("the file could not be read to its end: {e}"));
        }
        if self.strict && self.rows_skipped > 0 {
            return Some(format!(
                "strict load found {} invalid row(s){}; nothing was written",
                self.rows_skipped,
                self.errors
                    .first()
                    .map(|e| format!(", first at line {}", e.line))
                    .unwrap_or_default()
            ));
        }
        None
    }

    pub fn succeeded(&self) -> bool {
        self.failure().is_none()
    }

    pub(super) fn add_error(&mut self, error: RowError, max_errors: usize) {
        self.rows_skipped += 1;
        if self.errors.len() < max_errors {
            self.errors.push(error);
        }
    }

    pub(super) fn add_failed(&mut self, failed: FailedBatch) {
        self.rows_not_written += failed.rows;
        self.failed_batches.push(failed);
    }

    pub(super) fn finish(&mut self, elapsed: Duration) {
        self.elapsed = elapsed;
        self.errors.sort_by_key(|e| e.line);
        self.failed_batches.sort_by_key(|b| b.first_line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skipped_rows_fail_only_strict_loads() {
        let mut s = LoadSummary::new("g", Format::Csv, false);
        s.add_error(
            RowError {
                line: 3,
                reason: "bad".into(),
            },
            1,
        );
        s.add_error(
            RowError {
                line: 4,
                reason: "bad".into(),
            },
            1,
        );
        assert_eq!(s.rows_skipped, 2);
        assert_eq!(s.errors.len(), 1);
        assert!(s.succeeded());
        s.strict = true;
        s.stopped_at_line = Some(3);
        assert!(s.failure().unwrap().contains("line 3"));
        s.strict = false;
        s.add_failed(FailedBatch {
            batch: 0,
            first_line: 2,
            last_line: 9,
            rows: 8,
            reason: "down".into(),
        });
        assert_eq!(s.rows_not_written, 8);
        assert!(s.failure().unwrap().contains("lines 2-9"));
    }
}
