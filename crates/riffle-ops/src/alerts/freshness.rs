//! The rules of freshness: each group's staleness (its values served older than twice its
//! refresh interval, or its source's watermark that old) and each stream source's lag.

use std::fmt::Write as _;
use std::time::Duration;

use riffle_registry::{format_duration, FeatureGroup, Registry};

use super::ingest::lag_rule;
use super::promql::{q, secs};
use super::rule::{Rule, Severity};
use super::thresholds::{
    refresh_interval, staleness_alert_age, staleness_threshold, STALENESS_FACTOR,
};
use crate::scenario::Scenario;

fn staleness_rule(registry: &Registry, g: &FeatureGroup) -> Rule {
    let threshold = staleness_threshold(g);
    let seen = staleness_alert_age(g);
    let median = format!(
        "histogram_quantile(0.5, sum by (le) (rate(riffle_value_age_seconds_bucket{{group={}}}[5m])))",
        q(&g.name)
    );
    let mut expr = if seen < threshold {
        format!("{median} >= {}", secs(seen))
    } else {
        format!("{median} > {}", secs(threshold))
    };
    let mut measured =
        "the median age of its values served over 5m (riffle_value_age_seconds)".to_owned();
    if let Some(source) = g.source.map(|s| &registry.sources[s].name) {
        let _ = write!(
            expr,
            "\nor\nmax(riffle_source_watermark_age_seconds{{source={}}}) > {}",
            q(source),
            secs(threshold)
        );
        let _ = write!(
            measured,
            ", or its source {source}'s watermark age (riffle_source_watermark_age_seconds)"
        );
    }
    let mut description = format!(
        "Group {} is refreshed every {} (its freshness_slo); {} is above {} = {}x that. Values older than {} are served with status stale, older than {} are replaced by training defaults (expired).",
        g.name,
        format_duration(refresh_interval(g)),
        measured,
        format_duration(threshold),
        STALENESS_FACTOR,
        format_duration(g.freshness_slo),
        format_duration(g.staleness_limit),
    );
    if seen < threshold {
        let _ = write!(
            description,
            " The age histogram's top bucket is {}, so this rule fires when the median passes {} (before {}).",
            format_duration(seen),
            format_duration(seen),
            format_duration(threshold)
        );
    }
    Rule {
        alert: "RiffleFeatureStale",
        expr,
        hold: Duration::from_secs(120),
        severity: Severity::Critical,
        labels: vec![("group", g.name.clone())],
        summary: format!(
            "Features of {} are older than {} (2x refresh)",
            g.name,
            format_duration(threshold)
        ),
        description,
        scenario: Scenario::Staleness,
    }
}

/// Every group's staleness rule, then the lag rule of every source that feeds a group.
pub(super) fn rules(registry: &Registry) -> Vec<Rule> {
    let mut rules: Vec<Rule> = registry
        .groups
        .iter()
        .map(|g| staleness_rule(registry, g))
        .collect();
    for (i, source) in registry.sources.iter().enumerate() {
        let groups: Vec<&str> = registry
            .groups_of_source(i)
            .map(|g| g.name.as_str())
            .collect();
        if !groups.is_empty() {
            rules.push(lag_rule(registry, &source.name, &groups));
        }
    }
    rules
}
