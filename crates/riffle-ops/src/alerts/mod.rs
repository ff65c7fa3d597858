//! `riffle alerts`: Prometheus alerting rules generated from the registry, over the metric
//! names `riffle serve` exports (`docs/metrics.md`, `riffle_serve::metrics`) and, for the
//! store's memory, redis_exporter's (`redis_memory_used_bytes`, `redis_memory_max_bytes`).
//!
//! Every threshold comes from the registry or from a named constant (`thresholds.rs`); every
//! rule carries `severity`, `summary`, `description` and a `runbook_url` into the section of
//! the generated runbook ([`crate::runbook`]) for its [`Scenario`](crate::scenario::Scenario).
//!
//! Decisions written down here because the rules depend on them:
//! - **Refresh interval = the group's `freshness_slo`.** The registry declares no separate
//!   refresh interval; the freshness SLO is the age a value may reach before it is `stale`,
//!   which is the interval the group's writer promises. The staleness alert fires at
//!   [`STALENESS_FACTOR`] × that ([`staleness_threshold`]), the lesson's rule.
//! - **Staleness is measured on what is served**: the median of `riffle_value_age_seconds`
//!   of the group over 5 minutes, and for a stream group also its source's watermark age
//!   (`riffle_source_watermark_age_seconds`, exact). The age histogram's largest finite
//!   bucket is 7 days ([`AGE_HISTOGRAM_TOP_SECONDS`]); a group whose threshold lies beyond
//!   it is alerted when the median passes 7 days (earlier than 2×, never later), and
//!   `riffle check` says so.
//! - **p99 is per request, not per group**: `riffle_http_request_duration_seconds` has no
//!   group label (one request reads several groups). One rule per distinct `p99_slo`
//!   compares the read endpoints' p99 with it and names the groups that declared it.
//!
//! - `rule.rs`: the rule model ([`Rule`], [`RuleGroup`], [`Severity`]); `thresholds.rs`:
//!   every number the rules alert at; `promql.rs`: how PromQL text is written.
//! - The rule groups, one file each: `freshness.rs`, `serving.rs`, `store.rs`, `ingest.rs`.
//! - `yaml.rs`: the Prometheus rule file ([`to_yaml`]).
//! - This module assembles the groups ([`rules`]).

mod freshness;
mod ingest;
mod promql;
mod rule;
mod serving;
mod store;
mod thresholds;
mod yaml;

use riffle_registry::Registry;

pub use rule::{Rule, RuleGroup, Severity};
pub use thresholds::{
    lag_threshold, refresh_interval, staleness_alert_age, staleness_threshold, stalled_after,
    AGE_HISTOGRAM_TOP_SECONDS, CACHE_HIT_FLOOR, DEAD_LETTER_SHARE, DEFAULT_SHARE_FLOOR,
    DEFAULT_SPIKE_FACTOR, DEFAULT_STATUSES_REGEX, IN_FLIGHT_SHARE, READ_ENDPOINTS_REGEX,
    REDIS_MEMORY_SHARE, STALENESS_FACTOR, STALLED_FLOOR, STALLED_FLUSHES,
};
pub use yaml::to_yaml;

/// Every rule for the registry, in rule groups `riffle.<project>.<area>`.
pub fn rules(registry: &Registry) -> Vec<RuleGroup> {
    let name = |area: &str| format!("riffle.{}.{area}", registry.project);
    vec![
        RuleGroup {
            name: name("freshness"),
            rules: freshness::rules(registry),
        },
        RuleGroup {
            name: name("serving"),
            rules: serving::rules(registry),
        },
        RuleGroup {
            name: name("store"),
            rules: store::rules(registry),
        },
        RuleGroup {
            name: name("ingest"),
            rules: ingest::rules(registry),
        },
    ]
    .into_iter()
    .filter(|g| !g.rules.is_empty())
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const REG: &str = r#"
[project]
name = "t"
[[entities]]
name = "user"
[[sources]]
name = "tx"
entity = "user"
kind = "file"
path = "x.ndjson"
fields = [{ name = "amount", type = "float64" }]
[[feature_groups]]
name = "fast"
entity = "user"
source = "tx"
ttl = "1h"
freshness_slo = "30s"
features = [{ name = "n", type = "int64", default = 0, aggregation = "count", window = "1h" }]
[[feature_groups]]
name = "slow"
entity = "user"
ttl = "30d"
freshness_slo = "7d"
staleness_limit = "14d"
p99_slo = "5ms"
features = [{ name = "a", type = "int64", default = 0 }]
"#;

    fn all(reg: &Registry) -> Vec<Rule> {
        rules(reg).into_iter().flat_map(|g| g.rules).collect()
    }

    #[test]
    fn staleness_is_twice_the_refresh_interval_per_group() {
        let reg = Registry::from_toml(REG).unwrap();
        let rules = all(&reg);
        let fast = rules
            .iter()
            .find(|r| r.alert == "RiffleFeatureStale" && r.labels[0].1 == "fast")
            .unwrap();
        assert!(fast.expr.contains("> 60"), "{}", fast.expr);
        assert!(fast
            .expr
            .contains("riffle_source_watermark_age_seconds{source=\"tx\"}) > 60"));
        let slow = rules
            .iter()
            .find(|r| r.alert == "RiffleFeatureStale" && r.labels[0].1 == "slow")
            .unwrap();
        // 14 d is beyond the histogram: the rule fires at its 7 d top bucket.
        assert!(slow.expr.contains(">= 604800"), "{}", slow.expr);
    }

    #[test]
    fn lag_per_source_and_p99_per_slo() {
        let reg = Registry::from_toml(REG).unwrap();
        let rules = all(&reg);
        let lag: Vec<&Rule> = rules
            .iter()
            .filter(|r| r.alert == "RiffleIngestLag")
            .collect();
        assert_eq!(lag.len(), 1);
        assert!(lag[0]
            .expr
            .contains("riffle_source_watermark_age_seconds{source=\"tx\"}) > 300"));
        let p99: Vec<&Rule> = rules
            .iter()
            .filter(|r| r.alert == "RiffleReadP99AboveSlo")
            .collect();
        assert_eq!(p99.len(), 2);
        assert!(p99.iter().any(|r| r.expr.ends_with("> 0.005")));
        assert!(p99.iter().any(|r| r.expr.ends_with("> 0.01")));
    }

    #[test]
    fn yaml_names_every_rule_with_a_runbook_link() {
        let reg = Registry::from_toml(REG).unwrap();
        let groups = rules(&reg);
        let text = to_yaml(&reg, &groups, "RUNBOOK.md");
        let n = groups.iter().map(|g| g.rules.len()).sum::<usize>();
        assert_eq!(text.matches("- alert: ").count(), n);
        assert_eq!(
            text.matches("runbook_url: \"RUNBOOK.md#scenario-").count(),
            n
        );
        assert!(text.contains("[1h] offset 5m)"));
    }
}
