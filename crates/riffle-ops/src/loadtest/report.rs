//! The load test's result: latency percentiles, throughput achieved against intended, errors
//! by kind, values by status, responses by degradation, and the verdict per requested group
//! (p99 and availability against the registry's SLOs) — as a table or as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use riffle_registry::Registry;
use serde::Serialize;

use super::config::LoadtestConfig;
use super::plan::Mode;
use super::stats::Stats;

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        if h.is_empty() {
            return Self {
                p50: 0.0,
                p90: 0.0,
                p99: 0.0,
                p999: 0.0,
                max: 0.0,
                mean: 0.0,
            };
        }
        Self {
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            mean: h.mean() / 1000.0,
        }
    }
}

/// One requested group judged against its SLOs.
#[derive(Debug, Clone, Serialize)]
pub struct GroupVerdict {
    pub group: String,
    pub p99_slo_ms: f64,
    pub p99_ms: f64,
    pub availability_slo: f64,
    pub availability: f64,
    pub passed: bool,
}

/// Writes `value` as pretty JSON to `path`, creating its folder: the records that
/// `riffle check` reads (`.riffle/last-loadtest.json`, `last-drill.json`, `last-cost.json`).
pub fn write_record<T: Serialize>(value: &T, path: &std::path::Path) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// When the run ended (RFC 3339, UTC).
    pub finished_at: String,
    pub target: String,
    /// `open` or `closed`.
    pub mode: &'static str,
    pub rate: Option<f64>,
    /// `--peak` and `--factor` when the rate came from them (the lesson's 10× peak).
    pub peak_rps: Option<f64>,
    pub factor: Option<f64>,
    pub concurrency: Option<usize>,
    pub batch: usize,
    pub selection: String,
    pub duration_s: f64,
    /// Requests the open-loop schedule intended (bursts included).
    pub intended_requests: Option<u64>,
    pub sent: u64,
    pub ok: u64,
    pub achieved_rps: f64,
    pub intended_rps: Option<f64>,
    pub entities_per_s: f64,
    pub latency_ms: Percentiles,
    /// How late the generator sent requests after their intended time (open loop).
    pub dispatch_lag_p99_ms: Option<f64>,
    pub errors: BTreeMap<&'static str, u64>,
    pub error_codes: BTreeMap<String, u64>,
    pub degradation: BTreeMap<String, u64>,
    pub values: BTreeMap<String, BTreeMap<String, u64>>,
    pub default_mismatches: u64,
    pub mismatch_examples: Vec<String>,
    pub level_violations: u64,
    pub groups: Vec<GroupVerdict>,
    pub warnings: Vec<String>,
    pub passed: bool,
}

impl Report {
    pub fn build(
        registry: &Registry,
        cfg: &LoadtestConfig,
        stats: &Stats,
        elapsed: Duration,
        intended: Option<u64>,
    ) -> Self {
        let latency = Percentiles::of(&stats.latency);
        let secs = elapsed.as_secs_f64().max(1e-9);
        let availability = if stats.sent == 0 {
            0.0
        } else {
            stats.ok as f64 / stats.sent as f64
        };
        let groups: Vec<GroupVerdict> = cfg
            .selection
            .touched
            .iter()
            .filter_map(|name| registry.group(name))
            .map(|g| {
                let slo = g.p99_slo.as_secs_f64() * 1000.0;
                GroupVerdict {
                    group: g.name.clone(),
                    p99_slo_ms: slo,
                    p99_ms: latency.p99,
                    availability_slo: g.availability_slo,
                    availability,
                    passed: latency.p99 <= slo && availability >= g.availability_slo,
                }
            })
            .collect();
        let mut warnings = Vec::new();
        let lag = matches!(cfg.mode, Mode::Open { .. })
            .then(|| stats.dispatch_lag.value_at_quantile(0.99) as f64 / 1000.0);
        if let Some(lag) = lag.filter(|&l| l > 5.0) {
            warnings.push(format!(
                "the generator sent requests up to {lag:.1} ms late (p99): it may be the bottleneck; latencies still count from the intended times"
            ));
        }
        if stats.default_mismatches > 0 {
            warnings.push(format!(
                "{} values served with a default status differ from the registry's training default",
                stats.default_mismatches
            ));
        }
        if stats.level_violations > 0 {
            warnings.push(format!(
                "{} responses report a degradation other than the worst of their values",
                stats.level_violations
            ));
        }
        let passed = !groups.is_empty()
            && groups.iter().all(|g| g.passed)
            && stats.default_mismatches == 0
            && stats.level_violations == 0;
        let (mode, rate, concurrency) = match cfg.mode {
            Mode::Open { rate } => ("open", Some(rate), None),
            Mode::Closed { concurrency } => ("closed", None, Some(concurrency)),
        };
        Self {
            finished_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            target: cfg.target.clone(),
            mode,
            rate,
            peak_rps: cfg.peak,
            factor: cfg.factor,
            concurrency,
            batch: cfg.batch,
            selection: cfg.selection.label.clone(),
            duration_s: secs,
            intended_requests: intended,
            sent: stats.sent,
            ok: stats.ok,
            achieved_rps: stats.sent as f64 / secs,
            intended_rps: intended.map(|n| n as f64 / cfg.duration.as_secs_f64().max(1e-9)),
            entities_per_s: stats.sent as f64 * cfg.batch as f64 / secs,
            latency_ms: latency,
            dispatch_lag_p99_ms: lag,
            errors: stats.errors.clone(),
            error_codes: stats.error_codes.clone(),
            degradation: stats.degradation.clone(),
            values: stats.values.clone(),
            default_mismatches: stats.default_mismatches,
            mismatch_examples: stats.mismatch_examples.clone(),
            level_violations: stats.level_violations,
            groups,
            warnings,
            passed,
        }
    }

    /// The human report.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let pacing = match (self.rate, self.concurrency) {
            (Some(r), _) => format!("open loop at {r:.0} req/s"),
            (_, Some(c)) => format!("closed loop, {c} connections"),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "target {}  {pacing}  batch {}  selection {}  {:.1} s",
            self.target, self.batch, self.selection, self.duration_s
        );
        let intended = self
            .intended_rps
            .map_or_else(String::new, |r| format!(" (intended {r:.0})"));
        let _ = writeln!(
            out,
            "requests {} ok {}  throughput {:.0} req/s{intended}  {:.0} entities/s",
            self.sent, self.ok, self.achieved_rps, self.entities_per_s
        );
        let l = &self.latency_ms;
        let _ = writeln!(
            out,
            "latency ms  p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  mean {:.3}",
            l.p50, l.p90, l.p99, l.p999, l.max, l.mean
        );
        if let Some(lag) = self.dispatch_lag_p99_ms {
            let _ = writeln!(out, "dispatch lag p99 {lag:.3} ms");
        }
        let list = |m: &BTreeMap<String, u64>| {
            m.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let errors: BTreeMap<String, u64> = self
            .errors
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        let _ = writeln!(
            out,
            "errors      {}",
            if errors.is_empty() {
                "none".into()
            } else {
                list(&errors)
            }
        );
        if !self.error_codes.is_empty() {
            let _ = writeln!(out, "error codes {}", list(&self.error_codes));
        }
        let _ = writeln!(out, "degradation {}", list(&self.degradation));
        let _ = writeln!(out, "{:<22} values by status", "GROUP");
        for (g, m) in &self.values {
            let _ = writeln!(out, "{g:<22} {}", list(m));
        }
        let _ = writeln!(
            out,
            "{:<22} {:>10} {:>10} {:>10} {:>10}  VERDICT",
            "GROUP", "P99 SLO", "P99", "AVAIL SLO", "AVAIL"
        );
        for g in &self.groups {
            let _ = writeln!(
                out,
                "{:<22} {:>8.3}ms {:>8.3}ms {:>9.3}% {:>9.3}%  {}",
                g.group,
                g.p99_slo_ms,
                g.p99_ms,
                g.availability_slo * 100.0,
                g.availability * 100.0,
                if g.passed { "pass" } else { "FAIL" }
            );
        }
        for w in &self.warnings {
            let _ = writeln!(out, "warning: {w}");
        }
        for e in &self.mismatch_examples {
            let _ = writeln!(out, "  e.g. {e}");
        }
        let _ = writeln!(out, "{}", if self.passed { "PASS" } else { "FAIL" });
        out
    }
}
