//! The drill's result ([`DrillReport`]): the verdict, what each phase looked like, the
//! verdict table, and the JSON record `riffle check` reads (`finished_at`, `passed`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use super::error::DrillError;
use super::verdict::Check;
use crate::loadtest::report::Percentiles;
use crate::loadtest::stats::Stats;

/// What one phase looked like.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseSummary {
    pub requests: u64,
    pub ok: u64,
    pub errors: BTreeMap<&'static str, u64>,
    pub degradation: BTreeMap<String, u64>,
    pub values: BTreeMap<String, BTreeMap<String, u64>>,
    pub latency_ms: Percentiles,
}

impl PhaseSummary {
    pub(super) fn of(s: &Stats) -> Self {
        Self {
            requests: s.sent,
            ok: s.ok,
            errors: s.errors.clone(),
            degradation: s.degradation.clone(),
            values: s.values.clone(),
            latency_ms: Percentiles::of(&s.latency),
        }
    }
}

/// The drill's result; also the record `riffle check` reads (`finished_at`, `passed`).
#[derive(Debug, Clone, Serialize)]
pub struct DrillReport {
    pub started_at: String,
    pub finished_at: String,
    pub passed: bool,
    pub target: String,
    pub store: String,
    /// `client_pause` or `commands`.
    pub method: &'static str,
    pub rate: f64,
    pub baseline_ms: u64,
    pub outage_ms: u64,
    pub checks: Vec<Check>,
    pub outage_p99_ms: f64,
    pub recovery_ms: Option<u64>,
    pub phases: BTreeMap<&'static str, PhaseSummary>,
}

/// Now, as the record writes times (RFC 3339, UTC, milliseconds).
pub(super) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Writes `report` as JSON to `path`, creating its folder.
pub fn write_record(report: &DrillReport, path: &Path) -> Result<(), DrillError> {
    crate::loadtest::report::write_record(report, path).map_err(|reason| DrillError::Record {
        path: path.display().to_string(),
        reason,
    })
}

impl DrillReport {
    /// The verdict table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "drill of {} (store {}, {}): baseline {} ms, outage {} ms at {:.0} req/s",
            self.target, self.store, self.method, self.baseline_ms, self.outage_ms, self.rate
        );
        let _ = writeln!(out, "{:<30} {:<6} OBSERVED (expected)", "CHECK", "RESULT");
        for c in &self.checks {
            let _ = writeln!(
                out,
                "{:<30} {:<6} {}",
                c.name,
                if c.passed { "pass" } else { "FAIL" },
                c.observed
            );
            let _ = writeln!(out, "{:<37} ({})", "", c.expected);
        }
        let _ = writeln!(
            out,
            "outage p99 {:.2} ms, recovery {}",
            self.outage_p99_ms,
            self.recovery_ms
                .map_or_else(|| "not seen".into(), |ms| format!("{ms} ms"))
        );
        let _ = writeln!(out, "{}", if self.passed { "PASS" } else { "FAIL" });
        out
    }
}
