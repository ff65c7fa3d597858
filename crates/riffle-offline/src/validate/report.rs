//! What `riffle validate` found: per feature, the served values compared with their offline
//! recomputation and what became of each ([`FeatureReport`]), the groups it could not check
//! and why, and whether every checked feature is within the bound ([`Report`]).

use std::collections::BTreeMap;

use riffle_core::{FeatureValue, Timestamp};
use serde::Serialize;

use super::verdict::{numeric_error, Kind, Verdict};

/// Entities listed per feature, the most mismatched first.
const WORST: usize = 5;

/// The whole validation.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub log: String,
    pub files: usize,
    /// Served values read from the log.
    pub values: usize,
    /// Log rows that could not be used (with the first reason).
    pub unusable: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_unusable: Option<String>,
    /// The highest mismatch rate a feature may have.
    pub max_mismatch: f64,
    pub features: Vec<FeatureReport>,
    pub not_checked: Vec<NotChecked>,
    /// Every checked feature within the bound, and at least one value compared.
    pub passed: bool,
}

/// A group whose served values were not compared, and why: never counted as mismatches.
#[derive(Debug, Clone, Serialize)]
pub struct NotChecked {
    pub group: String,
    pub values: usize,
    pub reason: String,
}

/// One feature's values compared.
#[derive(Debug, Clone, Serialize)]
pub struct FeatureReport {
    /// `group:feature`.
    pub feature: String,
    pub compared: u64,
    pub matched: u64,
    /// Different, but equal to the offline value of a pipeline behind at the served row's
    /// basis: the pipeline was behind, and the served status said how far.
    pub lag_explained: u64,
    /// Served as `expired` or `unavailable` (the default, and the server said so).
    pub degraded: u64,
    /// Real mismatches (`missing` and `extra` included).
    pub mismatched: u64,
    /// Serve had no row where history has one.
    pub missing: u64,
    /// Serve had a row where history has none.
    pub extra: u64,
    /// `mismatched / compared`.
    pub mismatch_rate: f64,
    /// Over the numeric mismatches.
    pub mean_abs_error: Option<f64>,
    pub mean_rel_error: Option<f64>,
    /// The entities with the most mismatches, each with its first.
    pub worst: Vec<Example>,
    pub passed: bool,
}

/// An entity's mismatches of one feature, and its first.
#[derive(Debug, Clone, Serialize)]
pub struct Example {
    pub entity_id: String,
    pub mismatches: u64,
    pub at: String,
    pub served: serde_json::Value,
    pub offline: serde_json::Value,
    pub kind: &'static str,
}

/// One feature's counts as values are judged.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    compared: u64,
    matched: u64,
    lag: u64,
    degraded: u64,
    missing: u64,
    extra: u64,
    value: u64,
    abs_sum: f64,
    abs_n: u64,
    rel_sum: f64,
    rel_n: u64,
    /// Per entity: its mismatches and its first.
    entities: BTreeMap<String, (u64, Example)>,
}

impl Tally {
    pub(crate) fn add(
        &mut self,
        verdict: Verdict,
        entity: &str,
        at: Timestamp,
        served: &FeatureValue,
        offline: &FeatureValue,
    ) {
        self.compared += 1;
        let kind = match verdict {
            Verdict::Match => return self.matched += 1,
            Verdict::Lag => return self.lag += 1,
            Verdict::Degraded => return self.degraded += 1,
            Verdict::Mismatch(kind) => kind,
        };
        let name = match kind {
            Kind::Missing => {
                self.missing += 1;
                "missing"
            }
            Kind::Extra => {
                self.extra += 1;
                "extra"
            }
            Kind::Value => {
                self.value += 1;
                "value"
            }
        };
        if let Some((abs, rel)) = numeric_error(served, offline) {
            self.abs_sum += abs;
            self.abs_n += 1;
            if rel.is_finite() {
                self.rel_sum += rel;
                self.rel_n += 1;
            }
        }
        let entry = self.entities.entry(entity.to_string()).or_insert_with(|| {
            (
                0,
                Example {
                    entity_id: entity.to_string(),
                    mismatches: 0,
                    at: at.to_rfc3339(),
                    served: serde_json::to_value(served).unwrap_or_default(),
                    offline: serde_json::to_value(offline).unwrap_or_default(),
                    kind: name,
                },
            )
        });
        entry.0 += 1;
    }

    pub(crate) fn report(self, feature: String, max_mismatch: f64) -> FeatureReport {
        let mismatched = self.missing + self.extra + self.value;
        let mismatch_rate = if self.compared == 0 {
            0.0
        } else {
            mismatched as f64 / self.compared as f64
        };
        let mut worst: Vec<Example> = self
            .entities
            .into_values()
            .map(|(n, mut example)| {
                example.mismatches = n;
                example
            })
            .collect();
        worst.sort_by_key(|w| std::cmp::Reverse(w.mismatches));
        worst.truncate(WORST);
        let mean = |sum: f64, n: u64| (n > 0).then(|| sum / n as f64);
        FeatureReport {
            feature,
            compared: self.compared,
            matched: self.matched,
            lag_explained: self.lag,
            degraded: self.degraded,
            mismatched,
            missing: self.missing,
            extra: self.extra,
            mismatch_rate,
            mean_abs_error: mean(self.abs_sum, self.abs_n),
            mean_rel_error: mean(self.rel_sum, self.rel_n),
            worst,
            passed: mismatch_rate <= max_mismatch,
        }
    }
}
