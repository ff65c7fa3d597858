//! The rules of serving: read p99 per declared SLO, store calls and requests near their
//! bounds, the hot cache's hit rate, spikes of training defaults served, drift and corrupt
//! rows.

use std::collections::BTreeMap;
use std::time::Duration;

use riffle_registry::{format_duration, Registry};

use super::promql::{secs, served_default_share};
use super::rule::{Rule, Severity};
use super::thresholds::{
    CACHE_HIT_FLOOR, DEFAULT_SHARE_FLOOR, DEFAULT_SPIKE_FACTOR, DEFAULT_STATUSES_REGEX,
    IN_FLIGHT_SHARE, READ_ENDPOINTS_REGEX,
};
use crate::scenario::Scenario;

fn p99_rules(registry: &Registry) -> Vec<Rule> {
    let mut by_slo: BTreeMap<Duration, Vec<&str>> = BTreeMap::new();
    for g in &registry.groups {
        by_slo.entry(g.p99_slo).or_default().push(&g.name);
    }
    by_slo
        .into_iter()
        .map(|(slo, groups)| Rule {
            alert: "RiffleReadP99AboveSlo",
            expr: format!(
                "histogram_quantile(0.99, sum by (le) (rate(riffle_http_request_duration_seconds_bucket{{endpoint=~\"{READ_ENDPOINTS_REGEX}\"}}[5m]))) > {}",
                secs(slo)
            ),
            hold: Duration::from_secs(300),
            severity: Severity::Critical,
            labels: vec![("p99_slo", format_duration(slo))],
            summary: format!("Read p99 is above {} for 5m", format_duration(slo)),
            description: format!(
                "The p99 of read requests (riffle_http_request_duration_seconds, endpoints {READ_ENDPOINTS_REGEX}) is above {}, the p99_slo of {}. Latency is per request, which may read several groups.",
                format_duration(slo),
                groups.join(", ")
            ),
            scenario: Scenario::HighLatency,
        })
        .collect()
}

/// Every serving rule for the registry; the cache rule only when the cache is on.
pub(super) fn rules(registry: &Registry) -> Vec<Rule> {
    let mut rules = p99_rules(registry);
    let store_bound = registry.store.max_in_flight as f64 * IN_FLIGHT_SHARE;
    rules.push(Rule {
        alert: "RiffleStoreInFlightHigh",
        expr: format!(
            "max(riffle_store_in_flight) > {store_bound}\nor\nsum(rate(riffle_store_errors_total{{kind=\"overloaded\"}}[5m])) > 0"
        ),
        hold: Duration::from_secs(120),
        severity: Severity::Warning,
        labels: vec![],
        summary: format!(
            "Store calls in flight above {}% of the bound ({}) or refused at it",
            (IN_FLIGHT_SHARE * 100.0) as u32,
            registry.store.max_in_flight
        ),
        description: format!(
            "riffle_store_in_flight is above {store_bound} ({}% of store.max_in_flight = {}), or calls are failing fast at the bound (riffle_store_errors_total{{kind=\"overloaded\"}}), each served the training default. This is the lesson's pool exhaustion.",
            (IN_FLIGHT_SHARE * 100.0) as u32,
            registry.store.max_in_flight
        ),
        scenario: Scenario::HighLatency,
    });
    let http_bound = registry.serve.max_concurrent_requests as f64 * IN_FLIGHT_SHARE;
    rules.push(Rule {
        alert: "RiffleRequestsShed",
        expr: format!(
            "max(riffle_http_in_flight) > {http_bound}\nor\nsum(rate(riffle_http_shed_total[5m])) > 0"
        ),
        hold: Duration::from_secs(120),
        severity: Severity::Warning,
        labels: vec![],
        summary: "Requests near or past serve.max_concurrent_requests".to_owned(),
        description: format!(
            "riffle_http_in_flight is above {http_bound} ({}% of serve.max_concurrent_requests = {}), or requests are refused with 503 at the limit (riffle_http_shed_total).",
            (IN_FLIGHT_SHARE * 100.0) as u32,
            registry.serve.max_concurrent_requests
        ),
        scenario: Scenario::HighLatency,
    });
    if registry.serve.cache.enabled {
        let hits = "sum(rate(riffle_cache_hits_total[10m]))";
        let misses = "sum(rate(riffle_cache_misses_total[10m]))";
        rules.push(Rule {
            alert: "RiffleCacheHitRateLow",
            expr: format!("{hits} / ({hits} + {misses}) < {CACHE_HIT_FLOOR}"),
            hold: Duration::from_secs(900),
            severity: Severity::Warning,
            labels: vec![],
            summary: format!(
                "Hot-cache hit rate below {}%",
                (CACHE_HIT_FLOOR * 100.0) as u32
            ),
            description: format!(
                "Hits over lookups of the hot cache (riffle_cache_hits_total, riffle_cache_misses_total) are below {CACHE_HIT_FLOOR} over 10m. The cache holds at most {} rows for {} by default.",
                registry.serve.cache.max_entries,
                format_duration(registry.serve.cache.ttl)
            ),
            scenario: Scenario::CacheHitRate,
        });
    }
    for g in &registry.groups {
        let now = served_default_share(&g.name, "5m", None);
        let before = served_default_share(&g.name, "1h", Some("5m"));
        rules.push(Rule {
            alert: "RiffleDefaultRateSpike",
            expr: format!(
                "({now}) > {DEFAULT_SHARE_FLOOR}\nunless\n{DEFAULT_SPIKE_FACTOR} * ({before}) >= ({now})"
            ),
            hold: Duration::from_secs(600),
            severity: Severity::Warning,
            labels: vec![("group", g.name.clone())],
            summary: format!("Training defaults served for many values of {}", g.name),
            description: format!(
                "Over 5m more than {}% of {}'s values were served as training defaults (status {DEFAULT_STATUSES_REGEX} in riffle_values_served_total), at least {DEFAULT_SPIKE_FACTOR}x the share of the hour before.",
                (DEFAULT_SHARE_FLOOR * 100.0) as u32,
                g.name
            ),
            scenario: Scenario::DefaultRate,
        });
    }
    rules.push(Rule {
        alert: "RiffleFeatureDrift",
        expr: "riffle_feature_psi > riffle_feature_psi_threshold".to_owned(),
        hold: Duration::from_secs(900),
        severity: Severity::Warning,
        labels: vec![],
        summary: "A feature's served distribution drifted from its baseline".to_owned(),
        description: "riffle_feature_psi (population stability index of the sampled served values against the baseline `riffle serve --baseline` loads) is above riffle_feature_psi_threshold for 15m; the group and feature labels name it. Absent without a baseline.".to_owned(),
        scenario: Scenario::Drift,
    });
    rules.push(Rule {
        alert: "RiffleCorruptRows",
        expr: "sum by (group) (rate(riffle_corrupt_rows_total[5m])) > 0".to_owned(),
        hold: Duration::from_secs(300),
        severity: Severity::Warning,
        labels: vec![],
        summary: "Stored rows that do not decode with the registry's schema".to_owned(),
        description: "riffle_corrupt_rows_total grows: rows in the store do not match their group's declared features (a writer with another schema, a version not bumped). Training defaults are served for them.".to_owned(),
        scenario: Scenario::DeadLetter,
    });
    rules
}
