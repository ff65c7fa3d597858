//! `riffle alerts`: Prometheus alerting rules generated from the registry, over the metric
//! names `riffle serve` exports (`docs/metrics.md`, `riffle_serve::metrics`) and, for the
//! store's memory, redis_exporter's (`redis_memory_used_bytes`, `redis_memory_max_bytes`).
//!
//! Every threshold comes from the registry or from a named constant below; every rule
//! carries `severity`, `summary`, `description` and a `runbook_url` into the section of the
//! generated runbook ([`crate::runbook`]) for its [`Scenario`].
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

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use riffle_registry::{format_duration, FeatureGroup, Registry, UnsafePolicy};

use crate::scenario::Scenario;

mod ingest;

use ingest::{all_ingest_rules, lag_rule};
pub use ingest::{lag_threshold, stalled_after};

/// The staleness alert fires at this multiple of the refresh interval (the lesson's rule).
pub const STALENESS_FACTOR: u32 = 2;
/// The in-flight alerts fire above this share of their bound.
pub const IN_FLIGHT_SHARE: f64 = 0.8;
/// The cache alert fires below this hit rate.
pub const CACHE_HIT_FLOOR: f64 = 0.5;
/// The default-rate alert needs at least this share of a group's values served as defaults…
pub const DEFAULT_SHARE_FLOOR: f64 = 0.1;
/// …and at least this multiple of the share over the hour before (a spike, not cold start).
pub const DEFAULT_SPIKE_FACTOR: f64 = 2.0;
/// The store memory alert fires above this share of Redis `maxmemory`.
pub const REDIS_MEMORY_SHARE: f64 = 0.85;
/// The dead-letter alert fires above this share of a source's events read.
pub const DEAD_LETTER_SHARE: f64 = 0.01;
/// Ingest is stalled when no durable flush happened for this many flush intervals…
pub const STALLED_FLUSHES: u32 = 10;
/// …and at least this long.
pub const STALLED_FLOOR: Duration = Duration::from_secs(60);
/// Largest finite bucket of `riffle_value_age_seconds` (7 d; `docs/metrics.md`).
pub const AGE_HISTOGRAM_TOP_SECONDS: u64 = 604_800;

/// Route templates of the read endpoints (`riffle_http_request_duration_seconds{endpoint}`).
pub const READ_ENDPOINTS_REGEX: &str = "/v1/features.*|/get-online-features";
/// Per-value statuses that served the training default.
pub const DEFAULT_STATUSES_REGEX: &str = "expired|missing|null|unavailable";

/// How urgent an alert is (the `severity` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Wake someone: served values are wrong, slow or failing now.
    Critical,
    /// Look during working hours: a bound is near or a rate drifts.
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
        }
    }
}

/// One alerting rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub alert: &'static str,
    pub expr: String,
    /// How long the condition must hold (`for:`).
    pub hold: Duration,
    pub severity: Severity,
    /// Static labels besides `severity` (`group`, `source`, `p99_slo`).
    pub labels: Vec<(&'static str, String)>,
    pub summary: String,
    pub description: String,
    pub scenario: Scenario,
}

impl Rule {
    /// `runbook_url` annotation: `base#anchor`.
    pub fn runbook_url(&self, base: &str) -> String {
        format!("{base}#{}", self.scenario.anchor())
    }

    /// Every label of a firing alert that the rule itself sets (severity first).
    pub fn static_labels(&self) -> Vec<(&'static str, String)> {
        let mut all = vec![("severity", self.severity.as_str().to_owned())];
        all.extend(self.labels.iter().cloned());
        all
    }
}

/// A Prometheus rule group.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleGroup {
    pub name: String,
    pub rules: Vec<Rule>,
}

/// The interval a group's values are refreshed at: its `freshness_slo` (see module docs).
pub fn refresh_interval(group: &FeatureGroup) -> Duration {
    group.freshness_slo
}

/// Age at which the group's staleness alert fires: 2 × its refresh interval.
pub fn staleness_threshold(group: &FeatureGroup) -> Duration {
    refresh_interval(group) * STALENESS_FACTOR
}

/// The age the staleness rule can actually see: the threshold, or the age histogram's top
/// bucket when the threshold lies beyond it.
pub fn staleness_alert_age(group: &FeatureGroup) -> Duration {
    staleness_threshold(group).min(Duration::from_secs(AGE_HISTOGRAM_TOP_SECONDS))
}

/// Seconds as PromQL wants a number.
fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{}", s as u64)
    } else {
        format!("{s}")
    }
}

/// A duration as Prometheus writes it (`90s`, `5m`).
fn prom_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s % 3600 == 0 && s > 0 {
        format!("{}h", s / 3600)
    } else if s % 60 == 0 && s > 0 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// A label value inside a PromQL selector.
fn q(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}

/// Share of a group's values served as training defaults over `range`, `offset` ago.
fn served_default_share(group: &str, range: &str, offset: Option<&str>) -> String {
    let at = offset.map(|o| format!(" offset {o}")).unwrap_or_default();
    format!(
        "sum(rate(riffle_values_served_total{{group={g},status=~\"{DEFAULT_STATUSES_REGEX}\"}}[{range}]{at})) / sum(rate(riffle_values_served_total{{group={g}}}[{range}]{at}))",
        g = q(group)
    )
}

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

fn serving_rules(registry: &Registry) -> Vec<Rule> {
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

fn store_rules(registry: &Registry) -> Vec<Rule> {
    let mut rules = vec![Rule {
        alert: "RiffleBreakerOpen",
        expr: "max(riffle_breaker_state) >= 2\nor\nsum(increase(riffle_breaker_transitions_total{to=\"open\"}[5m])) > 0".to_owned(),
        hold: Duration::from_secs(60),
        severity: Severity::Critical,
        labels: vec![],
        summary: "The circuit breaker in front of the store opened".to_owned(),
        description: format!(
            "riffle_breaker_state is 2 (open) or the breaker opened in the last 5m: {} store failures within {} opened it; it retries after {}. Values are served as training defaults (status unavailable).",
            registry.serve.breaker.failure_threshold,
            format_duration(registry.serve.breaker.window),
            format_duration(registry.serve.breaker.reset_timeout)
        ),
        scenario: Scenario::BreakerOpen,
    }];
    let unsafe_groups: Vec<&str> = registry
        .groups
        .iter()
        .filter(|g| g.on_unsafe == UnsafePolicy::Fail)
        .map(|g| g.name.as_str())
        .collect();
    if !unsafe_groups.is_empty() {
        rules.push(Rule {
            alert: "RiffleCriticalResponses",
            expr: "sum(rate(riffle_responses_total{degradation=\"critical\"}[5m])) > 0".to_owned(),
            hold: Duration::from_secs(60),
            severity: Severity::Critical,
            labels: vec![],
            summary: "Requests fail because a group must not be served on defaults".to_owned(),
            description: format!(
                "riffle_responses_total{{degradation=\"critical\"}} grows: requests for {} (on_unsafe = \"fail\") are answered 503 because the store could not answer or the values expired.",
                unsafe_groups.join(", ")
            ),
            scenario: Scenario::BreakerOpen,
        });
    }
    rules.push(Rule {
        alert: "RiffleStoreErrors",
        expr: "sum by (op, kind) (rate(riffle_store_errors_total{kind=~\"timeout|unavailable\"}[5m])) > 0".to_owned(),
        hold: Duration::from_secs(300),
        severity: Severity::Warning,
        labels: vec![],
        summary: "Store calls time out or fail".to_owned(),
        description: format!(
            "riffle_store_errors_total{{kind=~\"timeout|unavailable\"}} has grown for 5m (per-call timeout {}): a node, a failover or the network between serve and the store.",
            format_duration(registry.store.timeout)
        ),
        scenario: Scenario::StorePartition,
    });
    let max_lag = registry.store.replica_max_lag;
    rules.push(Rule {
        alert: "RiffleReadReplicaUnhealthy",
        expr: "min by (replica) (riffle_store_replica_healthy) == 0".to_owned(),
        hold: Duration::from_secs(120),
        severity: Severity::Warning,
        labels: vec![],
        summary: "A read replica is not read from".to_owned(),
        description: format!(
            "riffle_store_replica_healthy is 0: the replica is down, its replication link is down, or it lags more than store.replica_max_lag ({}). Reads went to another replica or to the primary, which now carries the read load (and, in a multi-region layout, the cross-region round trip).",
            format_duration(max_lag)
        ),
        scenario: Scenario::StorePartition,
    });
    rules.push(Rule {
        alert: "RiffleReadReplicaLagging",
        expr: format!(
            "max by (replica) (riffle_store_replica_lag_seconds) > {}",
            max_lag.as_secs_f64() / 2.0
        ),
        hold: Duration::from_secs(300),
        severity: Severity::Warning,
        labels: vec![],
        summary: "A read replica lags its primary".to_owned(),
        description: format!(
            "riffle_store_replica_lag_seconds is above half of store.replica_max_lag ({}) for 5m: values read from it are that much older (the lag is added to their age, so they turn stale sooner); past the bound reads leave it.",
            format_duration(max_lag)
        ),
        scenario: Scenario::StorePartition,
    });
    rules.push(Rule {
        alert: "RiffleRedisMemoryHigh",
        expr: format!(
            "(redis_memory_used_bytes / redis_memory_max_bytes > {REDIS_MEMORY_SHARE}) and redis_memory_max_bytes > 0"
        ),
        hold: Duration::from_secs(300),
        severity: Severity::Warning,
        labels: vec![],
        summary: format!(
            "Redis memory above {}% of maxmemory",
            (REDIS_MEMORY_SHARE * 100.0) as u32
        ),
        description: format!(
            "redis_memory_used_bytes / redis_memory_max_bytes (redis_exporter's metrics; a Redis without maxmemory cannot be judged) is above {REDIS_MEMORY_SHARE}: eviction removes feature rows, served as training defaults (missing). Applies when the store is Redis (registry store.url {}, or serve's --store).",
            registry.store.url
        ),
        scenario: Scenario::DefaultRate,
    });
    rules
}

fn freshness_rules(registry: &Registry) -> Vec<Rule> {
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

/// Every rule for the registry, in rule groups `riffle.<project>.<area>`.
pub fn rules(registry: &Registry) -> Vec<RuleGroup> {
    let name = |area: &str| format!("riffle.{}.{area}", registry.project);
    vec![
        RuleGroup {
            name: name("freshness"),
            rules: freshness_rules(registry),
        },
        RuleGroup {
            name: name("serving"),
            rules: serving_rules(registry),
        },
        RuleGroup {
            name: name("store"),
            rules: store_rules(registry),
        },
        RuleGroup {
            name: name("ingest"),
            rules: all_ingest_rules(registry),
        },
    ]
    .into_iter()
    .filter(|g| !g.rules.is_empty())
    .collect()
}

/// A YAML double-quoted scalar (JSON strings are valid YAML).
fn y(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}

/// The rules as a Prometheus rule file; `runbook_base` prefixes every `runbook_url`.
pub fn to_yaml(registry: &Registry, groups: &[RuleGroup], runbook_base: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Prometheus alerting rules for Riffle project {:?}, generated by `riffle alerts` from\n# its registry. Regenerate after changing the registry; do not edit by hand.",
        registry.project
    );
    out.push_str("groups:\n");
    for group in groups {
        let _ = writeln!(out, "  - name: {}", y(&group.name));
        out.push_str("    rules:\n");
        for rule in &group.rules {
            let _ = writeln!(out, "      - alert: {}", rule.alert);
            out.push_str("        expr: |-\n");
            for line in rule.expr.lines() {
                let _ = writeln!(out, "          {line}");
            }
            let _ = writeln!(out, "        for: {}", prom_duration(rule.hold));
            out.push_str("        labels:\n");
            for (k, v) in rule.static_labels() {
                let _ = writeln!(out, "          {k}: {}", y(&v));
            }
            out.push_str("        annotations:\n");
            let _ = writeln!(out, "          summary: {}", y(&rule.summary));
            let _ = writeln!(out, "          description: {}", y(&rule.description));
            let _ = writeln!(
                out,
                "          runbook_url: {}",
                y(&rule.runbook_url(runbook_base))
            );
        }
    }
    out
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
