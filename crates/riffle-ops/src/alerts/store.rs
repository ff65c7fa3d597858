//! The rules of the store: the breaker opened, fail-closed groups answering 503, store
//! errors, read replicas unhealthy or lagging, Redis memory near `maxmemory`.

use std::time::Duration;

use riffle_registry::{format_duration, Registry, UnsafePolicy};

use super::rule::{Rule, Severity};
use super::thresholds::REDIS_MEMORY_SHARE;
use crate::scenario::Scenario;

/// Every store rule for the registry; the 503 rule only when a group is fail-closed.
pub(super) fn rules(registry: &Registry) -> Vec<Rule> {
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
