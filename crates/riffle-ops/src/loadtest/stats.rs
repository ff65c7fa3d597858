//! What the load generator counts: one [`Stats`] per (phase, selection), filled from each
//! request's [`Outcome`] — latency in an HdrHistogram, errors by kind, responses by
//! degradation level, values by group and status — and the server-contract checks made on
//! every answer: a value served with a default status (`missing`, `unavailable`, …) must be
//! exactly the registry's training default, and a response's degradation must be the worst
//! of its values' levels.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use hdrhistogram::Histogram;
use riffle_core::{FeatureType, FeatureValue};
use riffle_registry::Registry;
use serde::Deserialize;
use serde_json::Value;

/// Latencies are recorded in microseconds, 1 µs … 10 min, 3 significant figures.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).unwrap_or_else(|_| {
        // The bounds above are constants that hdrhistogram accepts.
        Histogram::new(3).unwrap_or_else(|_| unreachable!("3 significant figures is valid"))
    })
}

/// Why a request did not get a 2xx answer it could read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    /// No answer within the per-request timeout.
    Timeout,
    /// The connection could not be made.
    Connect,
    /// Any other transport failure (reset, broken body).
    Transport,
    Http4xx,
    Http5xx,
    /// A 2xx answer whose body is not the `/v1` response shape.
    BadBody,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connect => "connect",
            ErrorKind::Transport => "transport",
            ErrorKind::Http4xx => "http_4xx",
            ErrorKind::Http5xx => "http_5xx",
            ErrorKind::BadBody => "bad_body",
        }
    }
}

/// The `/v1/features` answer, as much of it as the load test reads.
#[derive(Debug, Deserialize)]
pub struct V1Response {
    pub degradation: String,
    pub results: Vec<V1Entity>,
}

#[derive(Debug, Deserialize)]
pub struct V1Entity {
    pub groups: Vec<V1Group>,
}

#[derive(Debug, Deserialize)]
pub struct V1Group {
    pub group: String,
    pub features: BTreeMap<String, V1Value>,
}

#[derive(Debug, Deserialize)]
pub struct V1Value {
    #[serde(default)]
    pub value: Value,
    pub status: String,
}

/// The error answer: `{"error": {"code", "message", "group"?}, "degradation"?}`.
#[derive(Debug, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorInner,
    #[serde(default)]
    pub degradation: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ErrorInner {
    pub code: String,
    #[serde(default)]
    pub group: Option<String>,
}

/// What one request came back with.
#[derive(Debug)]
pub enum Outcome {
    Ok(V1Response),
    Failed {
        kind: ErrorKind,
        /// The server's error body, when it sent one.
        body: Option<ErrorBody>,
    },
}

/// Statuses that mean "the training default was served".
pub fn is_default_status(status: &str) -> bool {
    matches!(status, "expired" | "missing" | "null" | "unavailable")
}

/// Statuses that mean "a stored value was served".
pub fn is_real_status(status: &str) -> bool {
    matches!(status, "fresh" | "stale")
}

fn level_rank(level: &str) -> u8 {
    match level {
        "healthy" => 0,
        "stale" => 1,
        "degraded" => 2,
        "critical" => 3,
        _ => 4,
    }
}

fn status_level(status: &str) -> &'static str {
    match status {
        "fresh" => "healthy",
        "stale" => "stale",
        _ => "degraded",
    }
}

/// The training default of every feature, to check what is served against.
#[derive(Debug, Default)]
pub struct Defaults {
    /// group → feature → (type, default); looked up by `&str`, nothing allocated.
    by_feature: HashMap<String, HashMap<String, (FeatureType, FeatureValue)>>,
}

impl Defaults {
    pub fn from_registry(registry: &Registry) -> Self {
        let mut by_feature: HashMap<String, HashMap<String, _>> = HashMap::new();
        for g in &registry.groups {
            let features = by_feature.entry(g.name.clone()).or_default();
            for f in &g.features {
                features.insert(f.name.clone(), (f.ty, f.default.clone()));
            }
        }
        Self { by_feature }
    }

    /// True when `served` is exactly the default of `group:feature`.
    fn matches(&self, group: &str, feature: &str, served: &Value) -> bool {
        match self.by_feature.get(group).and_then(|g| g.get(feature)) {
            Some((ty, default)) => {
                FeatureValue::from_json(*ty, served).is_ok_and(|v| &v == default)
            }
            None => false,
        }
    }
}

/// Everything counted for one (phase, selection).
#[derive(Debug, Clone)]
pub struct Stats {
    /// Request latency, µs: from the intended send time (open loop) or the send (closed).
    pub latency: Histogram<u64>,
    /// How late the generator sent requests after their intended time, µs (open loop).
    pub dispatch_lag: Histogram<u64>,
    pub sent: u64,
    pub ok: u64,
    pub errors: BTreeMap<&'static str, u64>,
    /// The server's error codes (`unsafe_to_serve`, `overloaded`, …).
    pub error_codes: BTreeMap<String, u64>,
    /// Responses by degradation level; a 503 whose body says `critical` counts as critical.
    pub degradation: BTreeMap<String, u64>,
    /// Values served, by group and status.
    pub values: BTreeMap<String, BTreeMap<String, u64>>,
    /// 503 `critical` answers naming each group.
    pub critical_by_group: BTreeMap<String, u64>,
    /// Values served with a default status that were not the registry's default.
    pub default_mismatches: u64,
    pub mismatch_examples: Vec<String>,
    /// Responses whose degradation is not the worst of their values' levels.
    pub level_violations: u64,
    /// Earliest completion (ms since the run started) of a response carrying a stored value.
    pub first_real_ms: Option<u64>,
    /// Earliest completion (ms since start) of a response carrying an `unavailable` value or
    /// a `critical` error.
    pub first_unavailable_ms: Option<u64>,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            latency: new_histogram(),
            dispatch_lag: new_histogram(),
            sent: 0,
            ok: 0,
            errors: BTreeMap::new(),
            error_codes: BTreeMap::new(),
            degradation: BTreeMap::new(),
            values: BTreeMap::new(),
            critical_by_group: BTreeMap::new(),
            default_mismatches: 0,
            mismatch_examples: Vec::new(),
            level_violations: 0,
            first_real_ms: None,
            first_unavailable_ms: None,
        }
    }
}

/// Adds one to `map[key]`, allocating the key only the first time it is seen.
fn bump(map: &mut BTreeMap<String, u64>, key: &str) {
    match map.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            map.insert(key.to_owned(), 1);
        }
    }
}

fn min_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

impl Stats {
    pub fn errors_total(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Values of `group` with `status`.
    pub fn values_with(&self, group: &str, status: &str) -> u64 {
        self.values
            .get(group)
            .and_then(|m| m.get(status))
            .copied()
            .unwrap_or(0)
    }

    /// Values of any group with `status`.
    pub fn values_total(&self, status: &str) -> u64 {
        self.values.values().filter_map(|m| m.get(status)).sum()
    }

    /// Records one request: its latency, its dispatch lag and what came back;
    /// `done_ms` is when it completed, in ms since the run started.
    pub fn record(
        &mut self,
        latency: Duration,
        lag: Duration,
        outcome: &Outcome,
        defaults: &Defaults,
        done_ms: u64,
    ) {
        let _ = self
            .latency
            .record((latency.as_micros() as u64).clamp(1, 600_000_000));
        let _ = self
            .dispatch_lag
            .record((lag.as_micros() as u64).clamp(1, 600_000_000));
        self.sent += 1;
        match outcome {
            Outcome::Ok(resp) => {
                self.ok += 1;
                bump(&mut self.degradation, &resp.degradation);
                let mut worst = "healthy";
                let (mut real, mut unavailable) = (false, false);
                for entity in &resp.results {
                    for g in &entity.groups {
                        if !self.values.contains_key(&g.group) {
                            self.values.insert(g.group.clone(), BTreeMap::new());
                        }
                        let Some(counts) = self.values.get_mut(&g.group) else {
                            continue;
                        };
                        for (name, v) in &g.features {
                            bump(counts, &v.status);
                            let level = status_level(&v.status);
                            if level_rank(level) > level_rank(worst) {
                                worst = level;
                            }
                            real |= is_real_status(&v.status);
                            unavailable |= v.status == "unavailable";
                            if is_default_status(&v.status)
                                && !defaults.matches(&g.group, name, &v.value)
                            {
                                self.default_mismatches += 1;
                                if self.mismatch_examples.len() < 5 {
                                    self.mismatch_examples.push(format!(
                                        "{}:{name} served {} with status {}",
                                        g.group, v.value, v.status
                                    ));
                                }
                            }
                        }
                    }
                }
                if level_rank(&resp.degradation) != level_rank(worst) {
                    self.level_violations += 1;
                }
                if real {
                    self.first_real_ms = min_opt(self.first_real_ms, Some(done_ms));
                }
                if unavailable {
                    self.first_unavailable_ms = min_opt(self.first_unavailable_ms, Some(done_ms));
                }
            }
            Outcome::Failed { kind, body } => {
                *self.errors.entry(kind.as_str()).or_default() += 1;
                if let Some(body) = body {
                    *self.error_codes.entry(body.error.code.clone()).or_default() += 1;
                    if let Some(level) = &body.degradation {
                        *self.degradation.entry(level.clone()).or_default() += 1;
                        if level == "critical" {
                            self.first_unavailable_ms =
                                min_opt(self.first_unavailable_ms, Some(done_ms));
                            if let Some(g) = &body.error.group {
                                *self.critical_by_group.entry(g.clone()).or_default() += 1;
                            }
                        }
                    }
                }
            }
        }
    }

    /// The sum of `stats`.
    pub fn merged(stats: &[Stats]) -> Stats {
        let mut all = Stats::default();
        for s in stats {
            all.merge(s);
        }
        all
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &Stats) {
        let _ = self.latency.add(&other.latency);
        let _ = self.dispatch_lag.add(&other.dispatch_lag);
        self.sent += other.sent;
        self.ok += other.ok;
        for (k, v) in &other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        for (k, v) in &other.error_codes {
            *self.error_codes.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.degradation {
            *self.degradation.entry(k.clone()).or_default() += v;
        }
        for (g, m) in &other.values {
            let mine = self.values.entry(g.clone()).or_default();
            for (k, v) in m {
                *mine.entry(k.clone()).or_default() += v;
            }
        }
        for (k, v) in &other.critical_by_group {
            *self.critical_by_group.entry(k.clone()).or_default() += v;
        }
        self.default_mismatches += other.default_mismatches;
        for e in &other.mismatch_examples {
            if self.mismatch_examples.len() < 5 {
                self.mismatch_examples.push(e.clone());
            }
        }
        self.level_violations += other.level_violations;
        self.first_real_ms = min_opt(self.first_real_ms, other.first_real_ms);
        self.first_unavailable_ms = min_opt(self.first_unavailable_ms, other.first_unavailable_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGISTRY: &str = r#"
[project]
name = "t"
[[entities]]
name = "user"
join_key = "user_id"
[[feature_groups]]
name = "g"
entity = "user"
ttl = "1h"
freshness_slo = "1m"
[[feature_groups.features]]
name = "n"
type = "int64"
default = 7
"#;

    fn response(json: &str) -> Outcome {
        Outcome::Ok(serde_json::from_str(json).unwrap())
    }

    #[test]
    fn counts_statuses_and_catches_wrong_defaults_and_levels() {
        let registry = Registry::from_toml(REGISTRY).unwrap();
        let defaults = Defaults::from_registry(&registry);
        let mut s = Stats::default();
        let ok = r#"{"entity":"user","degradation":"degraded","results":[{"id":"u1","degradation":"degraded","groups":[{"group":"g","status":"missing","features":{"n":{"value":7,"status":"missing"}}}]}]}"#;
        s.record(
            Duration::from_millis(2),
            Duration::ZERO,
            &response(ok),
            &defaults,
            10,
        );
        assert_eq!(s.values_with("g", "missing"), 1);
        assert_eq!((s.default_mismatches, s.level_violations), (0, 0));
        let wrong = r#"{"entity":"user","degradation":"healthy","results":[{"id":"u1","degradation":"healthy","groups":[{"group":"g","status":"unavailable","features":{"n":{"value":0,"status":"unavailable"}}}]}]}"#;
        s.record(
            Duration::from_millis(2),
            Duration::ZERO,
            &response(wrong),
            &defaults,
            20,
        );
        assert_eq!((s.default_mismatches, s.level_violations), (1, 1));
        assert_eq!(s.first_unavailable_ms, Some(20));
        assert_eq!(s.first_real_ms, None);
        let err = Outcome::Failed {
            kind: ErrorKind::Http5xx,
            body: serde_json::from_str(
                r#"{"error":{"code":"unsafe_to_serve","message":"x","group":"g"},"degradation":"critical"}"#,
            )
            .ok(),
        };
        s.record(
            Duration::from_millis(1),
            Duration::ZERO,
            &err,
            &defaults,
            30,
        );
        assert_eq!(s.errors["http_5xx"], 1);
        assert_eq!(s.critical_by_group["g"], 1);
        assert_eq!(s.degradation["critical"], 1);
        let mut total = Stats::default();
        total.merge(&s);
        assert_eq!((total.sent, total.ok, total.errors_total()), (3, 2, 1));
    }
}
