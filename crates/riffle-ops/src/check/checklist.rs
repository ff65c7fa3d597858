//! The 20 items of the seed lesson's readiness checklist in its order, then Riffle's own on
//! who can reach the listeners ([`all`]). Each item
//! is a function from [`CheckInput`] to an [`Item`], judged by the section module of the
//! lesson it belongs to; numbers in reasons come from the registry, the records and the
//! live facts; nothing is assumed to pass.

use super::input::CheckInput;
use super::item::{manual_item, Item};
use super::{observability, operations, performance, reliability, security};

/// Every item: the lesson's, in its order, then the security items.
pub(super) fn all(input: &CheckInput<'_>) -> Vec<Item> {
    vec![
        reliability::pool_sizing(input),
        reliability::circuit_breaker(input),
        reliability::defaults(input),
        reliability::fallback_tested(input),
        reliability::store_timeout(input),
        performance::batch_round_trip(),
        performance::loadtest_10x(input),
        performance::p99_slo(input),
        performance::hot_cache(input),
        performance::key_ttl(input),
        observability::staleness_metric(input),
        observability::staleness_alert(input),
        observability::cache_hit_rate(input),
        observability::value_distribution(input),
        observability::consumer_lag(input),
        operations::runbook_item(input),
        manual_item(
            "multi_region",
            "Multi-region readiness or single-region SLA",
            &format!(
                "Confirm the store ({}) is replicated to every serving region, or write down the single-region SLA the business accepts.",
                input.live.map_or(input.registry.store.url.as_str(), |l| l.store.as_str())
            ),
        ),
        manual_item(
            "canary",
            "Canary deployment for feature changes",
            "Confirm feature changes ship behind a new group version (rows of v1 and v2 coexist) to a canary share of traffic, with latency, defaults and drift watched at each step.",
        ),
        operations::incident_response(input),
        operations::cost_2x(input),
        security::listener_auth(input),
        security::listener_tls(input),
    ]
}
