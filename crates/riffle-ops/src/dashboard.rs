//! `riffle alerts --dashboard`: a Grafana dashboard (JSON model, schema 39) over the metrics
//! `riffle serve` exports: read latency percentiles with each group's p99 SLO drawn as a
//! threshold, responses by degradation level, values by status per group, hot-cache hit
//! rate, breaker state, store and HTTP in-flight against their bounds, value age per group
//! against 2× its refresh interval, ingest lag per source against the lag threshold, and
//! per-feature drift (PSI) against its threshold.
//!
//! The data source is a template variable (`${datasource}`), so the file imports into any
//! Grafana with a Prometheus data source.

use riffle_registry::Registry;
use serde_json::{json, Value};

use crate::alerts::{self, READ_ENDPOINTS_REGEX};

fn target(expr: String, legend: &str, id: char) -> Value {
    json!({
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "expr": expr,
        "legendFormat": legend,
        "refId": id.to_string(),
    })
}

/// A time-series panel at grid position `slot` (two per row), with optional red thresholds.
fn panel(
    id: usize,
    title: &str,
    unit: &str,
    targets: Vec<Value>,
    thresholds: &[f64],
    description: &str,
) -> Value {
    let mut steps = vec![json!({"color": "green", "value": null})];
    steps.extend(
        thresholds
            .iter()
            .map(|t| json!({"color": "red", "value": t})),
    );
    json!({
        "id": id,
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": ((id - 1) % 2) * 12, "y": ((id - 1) / 2) * 8},
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "thresholds": {"mode": "absolute", "steps": steps},
                "custom": {"thresholdsStyle": {"mode": if thresholds.is_empty() { "off" } else { "line" }}},
            },
            "overrides": [],
        },
        "options": {"legend": {"displayMode": "table", "placement": "bottom"}},
        "targets": targets,
    })
}

/// The dashboard for `registry`.
pub fn dashboard(registry: &Registry) -> Value {
    let letters = ('A'..='Z').collect::<Vec<char>>();
    let letter = |i: usize| letters[i % letters.len()];
    let mut panels = Vec::new();
    let read = format!("endpoint=~\"{READ_ENDPOINTS_REGEX}\"");

    let quantiles = [0.5, 0.9, 0.99, 0.999];
    let latency: Vec<Value> = quantiles
        .iter()
        .enumerate()
        .map(|(i, q)| {
            target(
                format!("histogram_quantile({q}, sum by (le) (rate(riffle_http_request_duration_seconds_bucket{{{read}}}[5m])))"),
                &format!("p{}", q * 100.0),
                letter(i),
            )
        })
        .collect();
    let mut slos: Vec<f64> = registry
        .groups
        .iter()
        .map(|g| g.p99_slo.as_secs_f64())
        .collect();
    slos.sort_by(f64::total_cmp);
    slos.dedup();
    let slo_text: Vec<String> = registry
        .groups
        .iter()
        .map(|g| format!("{} {}", g.name, riffle_registry::format_duration(g.p99_slo)))
        .collect();
    panels.push(panel(
        1,
        "Read latency percentiles",
        "s",
        latency,
        &slos,
        &format!(
            "Read endpoints; red lines: p99 SLOs ({}).",
            slo_text.join(", ")
        ),
    ));
    panels.push(panel(
        2,
        "Responses by degradation level",
        "reqps",
        vec![target(
            "sum by (degradation) (rate(riffle_responses_total[5m]))".into(),
            "{{degradation}}",
            'A',
        )],
        &[],
        "healthy / stale / degraded / critical read responses per second.",
    ));
    panels.push(panel(
        3,
        "Values served by status, per group",
        "ops",
        vec![target(
            "sum by (group, status) (rate(riffle_values_served_total[5m]))".into(),
            "{{group}} {{status}}",
            'A',
        )],
        &[],
        "Everything but fresh/stale served the training default.",
    ));
    panels.push(panel(
        4,
        "Hot-cache hit rate",
        "percentunit",
        vec![target(
            "sum(rate(riffle_cache_hits_total[5m])) / (sum(rate(riffle_cache_hits_total[5m])) + sum(rate(riffle_cache_misses_total[5m])))".into(),
            "hit rate",
            'A',
        )],
        &[],
        &format!("Alert below {}.", alerts::CACHE_HIT_FLOOR),
    ));
    panels.push(panel(
        5,
        "Circuit breaker state",
        "none",
        vec![
            target(
                "max(riffle_breaker_state)".into(),
                "state (0 closed, 1 half-open, 2 open)",
                'A',
            ),
            target(
                "sum by (to) (increase(riffle_breaker_transitions_total[5m]))".into(),
                "to {{to}} (5m)",
                'B',
            ),
        ],
        &[2.0],
        "2 = open: the store is skipped and defaults are served.",
    ));
    panels.push(panel(
        6,
        "In flight against the bounds",
        "none",
        vec![
            target("max(riffle_store_in_flight)".into(), "store calls", 'A'),
            target(
                "max(riffle_store_in_flight_limit)".into(),
                "store bound",
                'B',
            ),
            target("max(riffle_http_in_flight)".into(), "HTTP requests", 'C'),
            target(
                "sum(rate(riffle_store_errors_total{kind=\"overloaded\"}[5m]))".into(),
                "refused at the store bound /s",
                'D',
            ),
        ],
        &[registry.store.max_in_flight as f64 * alerts::IN_FLIGHT_SHARE],
        &format!(
            "Red line: {}% of store.max_in_flight ({}).",
            (alerts::IN_FLIGHT_SHARE * 100.0) as u32,
            registry.store.max_in_flight
        ),
    ));
    let ages: Vec<Value> = registry
        .groups
        .iter()
        .enumerate()
        .map(|(i, g)| {
            target(
                format!(
                    "histogram_quantile(0.5, sum by (le) (rate(riffle_value_age_seconds_bucket{{group=\"{}\"}}[5m])))",
                    g.name
                ),
                &format!(
                    "{} (alert > {})",
                    g.name,
                    riffle_registry::format_duration(alerts::staleness_threshold(g))
                ),
                letter(i),
            )
        })
        .collect();
    panels.push(panel(
        7,
        "Median value age per group",
        "s",
        ages,
        &[],
        "Staleness alerts fire at 2x each group's refresh interval (freshness_slo).",
    ));
    panels.push(panel(
        8,
        "Ingest lag per source",
        "s",
        vec![
            target(
                "max by (source) (riffle_source_watermark_age_seconds)".into(),
                "{{source}} (serve's view)",
                'A',
            ),
            target(
                "max by (source) (riffle_ingest_lag_seconds)".into(),
                "{{source}} (ingest workers)",
                'B',
            ),
            target(
                "sum by (source) (rate(riffle_ingest_dead_letters_total[5m]))".into(),
                "{{source}} dead letters /s",
                'C',
            ),
        ],
        &[alerts::lag_threshold(registry).as_secs_f64()],
        "now - the source's event-time watermark, as serve and the ingest workers see it; dead letters per second. Red line: ingest.lag_threshold.",
    ));
    panels.push(panel(
        9,
        "Feature drift (PSI against the baseline)",
        "none",
        vec![
            target(
                "max by (group, feature) (riffle_feature_psi)".into(),
                "{{group}}:{{feature}}",
                'A',
            ),
            target(
                "max(riffle_feature_psi_threshold)".into(),
                "threshold",
                'B',
            ),
        ],
        &[],
        "Population stability index of sampled served values; absent until serve runs with a baseline.",
    ));
    panels.push(panel(
        10,
        "Kafka partitions: lag from the broker, and owners",
        "s",
        vec![
            target(
                "max by (source, partition) (riffle_ingest_group_lag_seconds)".into(),
                "{{source}} p{{partition}} oldest uncommitted",
                'A',
            ),
            target(
                "max by (source, partition) (riffle_partition_watermark_age_seconds)".into(),
                "{{source}} p{{partition}} watermark age (serve)",
                'B',
            ),
            target(
                "count by (source) (max by (source, partition) (riffle_ingest_group_partition_owned) == 0)".into(),
                "{{source}} partitions owned by nobody",
                'C',
            ),
        ],
        &[alerts::lag_threshold(registry).as_secs_f64()],
        "Every partition of each Kafka source, whoever holds it: the age of its oldest message the consumer group has not committed (from the broker), and its watermark as its owner last published it; and how many partitions no member holds. Red line: ingest.lag_threshold.",
    ));
    json!({
        "title": format!("Riffle — {}", registry.project),
        "uid": format!("riffle-{}", registry.project),
        "tags": ["riffle"],
        "schemaVersion": 39,
        "timezone": "utc",
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [{
            "name": "datasource",
            "type": "datasource",
            "query": "prometheus",
            "label": "Data source",
        }]},
        "panels": panels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_panel_per_view_with_every_group() {
        let reg = Registry::from_toml(
            r#"
[[entities]]
name = "user"
[[feature_groups]]
name = "g1"
entity = "user"
ttl = "1h"
freshness_slo = "1m"
features = [{ name = "f", type = "int64", default = 0 }]
"#,
        )
        .unwrap();
        let d = dashboard(&reg);
        let panels = d["panels"].as_array().unwrap();
        assert_eq!(panels.len(), 10);
        let text = d.to_string();
        assert!(text.contains("riffle_value_age_seconds_bucket{group=\\\"g1\\\"}"));
        assert!(text.contains("riffle_breaker_state"));
    }
}
