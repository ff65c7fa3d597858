//! `riffle check`: the seed lesson's 20-item production-readiness checklist, each item
//! judged `pass` / `warn` / `fail` / `manual` with its reason, from the registry (serve,
//! store, ingest settings and SLOs), the records other commands leave beside it
//! (`.riffle/last-drill.json`, `.riffle/last-loadtest.json`, `.riffle/last-cost.json`) and,
//! when a live target is given, the running deployment ([`live`]: serve's `/health` and
//! `/metrics`, a sample of live store keys, the published ingest watermarks).
//!
//! - [`items`] lists the items in the lesson's order; `reliability`, `performance`,
//!   `observability` and `operations` judge them by the lesson's sections; this module
//!   holds the report, the records and the output.
//! - Live facts that could not be gathered (a target that does not answer) make the items
//!   that needed them `fail`, saying why: an unreachable deployment is not ready.

pub mod items;
pub mod live;
mod observability;
mod operations;
mod performance;
mod reliability;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use riffle_registry::raw::RawRegistry;
use riffle_registry::Registry;
use serde_json::{json, Value};

pub use live::{probe, LiveFacts, ProbeTargets};

/// How one item came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    Pass,
    Manual,
    Warn,
    Fail,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Warn => "warn",
            Outcome::Fail => "fail",
            Outcome::Manual => "manual",
        }
    }
}

/// One judged checklist item.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// Stable id (`store_timeout`), for scripts reading `--json`.
    pub id: &'static str,
    /// The lesson's section: reliability, performance, observability, operations.
    pub section: &'static str,
    /// The lesson's wording, shortened.
    pub title: &'static str,
    pub outcome: Outcome,
    /// Why, with the numbers.
    pub reason: String,
}

/// The whole checklist.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub project: String,
    /// The live target, when one was checked.
    pub live: Option<String>,
    pub items: Vec<Item>,
}

impl Report {
    pub fn count(&self, outcome: Outcome) -> usize {
        self.items.iter().filter(|i| i.outcome == outcome).count()
    }

    pub fn failed(&self) -> bool {
        self.count(Outcome::Fail) > 0
    }
}

/// Why the checklist could not be judged at all.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("cannot read registry {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Registry(#[from] riffle_registry::RegistryError),
}

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

/// Everything the checklist is judged from.
#[derive(Debug)]
pub struct CheckInput<'a> {
    pub registry: &'a Registry,
    /// The registry as written (which SLOs were declared rather than defaulted).
    pub raw: &'a RawRegistry,
    /// The registry path as given (`riffle … --config PATH`), for the commands suggested.
    pub config_path: &'a Path,
    pub drill: Record,
    pub loadtest: Record,
    pub cost: Record,
    pub live: Option<&'a LiveFacts>,
    pub now: chrono::DateTime<chrono::Utc>,
}

/// The clock records are aged against.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

/// Reads the registry (valid, and as written) for a check.
pub fn load(path: &Path) -> Result<(Registry, RawRegistry), CheckError> {
    let text = std::fs::read_to_string(path).map_err(|source| CheckError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let registry = Registry::from_toml(&text)?;
    let raw = RawRegistry::from_toml(&text)?;
    Ok((registry, raw))
}

/// Judges all 20 items.
pub fn evaluate(input: &CheckInput<'_>) -> Report {
    Report {
        project: input.registry.project.clone(),
        live: input.live.map(|l| l.target.clone()),
        items: items::all(input),
    }
}

/// The report as JSON: `{project, live, ok, counts, items: [{id, section, title, outcome, reason}]}`.
pub fn to_json(report: &Report) -> Value {
    let items: Vec<Value> = report
        .items
        .iter()
        .map(|i| {
            json!({
                "id": i.id, "section": i.section, "title": i.title,
                "outcome": i.outcome.as_str(), "reason": i.reason,
            })
        })
        .collect();
    json!({
        "project": report.project,
        "live": report.live,
        "ok": !report.failed(),
        "counts": {
            "pass": report.count(Outcome::Pass), "warn": report.count(Outcome::Warn),
            "fail": report.count(Outcome::Fail), "manual": report.count(Outcome::Manual),
        },
        "items": items,
    })
}

/// The human table: aligned columns, the reason wrapped under its own column.
pub fn table(report: &Report) -> String {
    const REASON: usize = 72;
    let id_w = report
        .items
        .iter()
        .map(|i| i.id.len())
        .max()
        .unwrap_or(2)
        .max(4);
    let title_w = report
        .items
        .iter()
        .map(|i| i.title.chars().count())
        .max()
        .unwrap_or(4);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "readiness of project {} ({})",
        report.project,
        report
            .live
            .as_deref()
            .map_or_else(|| "files only".to_owned(), |l| format!("live: {l}"))
    );
    let _ = writeln!(
        out,
        "{:>2}  {:<id_w$}  {:<title_w$}  {:<6}  REASON",
        "#", "ITEM", "CHECK", "RESULT"
    );
    let indent = 2 + 2 + id_w + 2 + title_w + 2 + 6 + 2;
    for (n, item) in report.items.iter().enumerate() {
        let lines = wrap(&item.reason, REASON);
        let _ = writeln!(
            out,
            "{:>2}  {:<id_w$}  {:<title_w$}  {:<6}  {}",
            n + 1,
            item.id,
            item.title,
            item.outcome.as_str(),
            lines.first().map(String::as_str).unwrap_or("")
        );
        for line in lines.iter().skip(1) {
            let _ = writeln!(out, "{:indent$}{line}", "");
        }
    }
    let _ = writeln!(
        out,
        "{} pass, {} warn, {} fail, {} manual",
        report.count(Outcome::Pass),
        report.count(Outcome::Warn),
        report.count(Outcome::Fail),
        report.count(Outcome::Manual)
    );
    out
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
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

    #[test]
    fn wrapping_keeps_words_whole() {
        assert_eq!(wrap("aa bb cc", 5), vec!["aa bb", "cc"]);
    }
}
