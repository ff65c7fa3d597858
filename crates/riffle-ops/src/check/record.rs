//! The records other commands leave beside the registry for `riffle check` (`.riffle/`):
//! reading one ([`Record`]), where they live ([`records_dir`]), and the item judged from
//! one (missing, unreadable, failed, too old, or passed).

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::item::{item, Item, Outcome};
use super::thresholds::RECORD_MAX_AGE;

/// What a finished run of another command left for `riffle check` (`riffle drill`,
/// `riffle loadtest`, `riffle cost`): JSON with at least `finished_at` (RFC 3339) and,
/// for drill and loadtest, `passed` (bool).
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Missing(PathBuf),
    Unreadable(PathBuf, String),
    Found {
        path: PathBuf,
        finished_at: chrono::DateTime<chrono::Utc>,
        passed: Option<bool>,
        /// The request rate a load test ran at (`rate`), when the record says.
        rate: Option<f64>,
    },
}

impl Record {
    pub fn read(path: &Path) -> Record {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Record::Missing(path.to_owned())
            }
            Err(e) => return Record::Unreadable(path.to_owned(), e.to_string()),
        };
        let value: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => return Record::Unreadable(path.to_owned(), format!("not JSON: {e}")),
        };
        let Some(at) = value.get("finished_at").and_then(Value::as_str) else {
            return Record::Unreadable(path.to_owned(), "no finished_at".into());
        };
        match chrono::DateTime::parse_from_rfc3339(at) {
            Ok(t) => Record::Found {
                path: path.to_owned(),
                finished_at: t.with_timezone(&chrono::Utc),
                passed: value.get("passed").and_then(Value::as_bool),
                rate: value.get("rate").and_then(Value::as_f64),
            },
            Err(e) => Record::Unreadable(
                path.to_owned(),
                format!("finished_at {at:?} is not RFC 3339: {e}"),
            ),
        }
    }
}

/// The directory beside the registry where commands leave their records: `.riffle/`.
pub fn records_dir(config_path: &Path) -> PathBuf {
    config_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join(".riffle")
}

/// The item judged from `record`: `missing` when there is none, `fail` when it is unreadable
/// or its run failed, `warn` when older than [`RECORD_MAX_AGE`], else `pass`. `run` is the
/// command that makes a new one.
pub(super) fn record_item(
    id: &'static str,
    section: &'static str,
    title: &'static str,
    record: &Record,
    now: chrono::DateTime<chrono::Utc>,
    missing: Outcome,
    run: String,
) -> Item {
    let (outcome, reason) = match record {
        Record::Missing(path) => (
            missing,
            format!("No record at {}: run `{run}`.", path.display()),
        ),
        Record::Unreadable(path, why) => (
            Outcome::Fail,
            format!(
                "Record {} unreadable ({why}): run `{run}` again.",
                path.display()
            ),
        ),
        Record::Found {
            path,
            finished_at,
            passed,
            ..
        } => {
            let age = now.signed_duration_since(*finished_at);
            let days = age.num_days();
            let when = format!(
                "{} ({} day(s) ago, {})",
                finished_at.to_rfc3339(),
                days,
                path.display()
            );
            match passed {
                Some(false) => (
                    Outcome::Fail,
                    format!("Last run failed at {when}: fix and run `{run}`."),
                ),
                _ if age > RECORD_MAX_AGE => (
                    Outcome::Warn,
                    format!("Last run passed at {when}, more than 30 days ago: run `{run}`."),
                ),
                _ => (
                    Outcome::Pass,
                    format!(
                        "Last run {} at {when}.",
                        if passed.is_some() {
                            "passed"
                        } else {
                            "finished"
                        }
                    ),
                ),
            }
        }
    };
    item(id, section, title, outcome, reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_sit_beside_the_registry() {
        assert_eq!(
            records_dir(Path::new("examples/fraud/riffle.toml")),
            Path::new("examples/fraud/.riffle")
        );
        assert_eq!(
            records_dir(Path::new("riffle.toml")),
            Path::new("./.riffle")
        );
    }

    #[test]
    fn a_record_needs_an_rfc3339_finish() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        assert!(matches!(Record::read(&path), Record::Missing(_)));
        std::fs::write(&path, r#"{"finished_at": "yesterday", "passed": true}"#).unwrap();
        assert!(matches!(Record::read(&path), Record::Unreadable(..)));
        std::fs::write(
            &path,
            r#"{"finished_at": "2026-11-01T10:00:00Z", "passed": false}"#,
        )
        .unwrap();
        assert!(matches!(
            Record::read(&path),
            Record::Found {
                passed: Some(false),
                ..
            }
        ));
    }
}
