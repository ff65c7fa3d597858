//! The 20 items of the seed lesson's readiness checklist in its order ([`all`]), the
//! thresholds they judge by, and the helpers the section modules share. Each item is a
//! function from [`CheckInput`] to an [`Item`]; numbers in reasons come from the registry,
//! the records and the live facts; nothing is assumed to pass.

use std::time::Duration;

use riffle_registry::format_duration;
use serde_json::Value;

use super::live::LiveFacts;
use super::{observability, operations, performance, reliability};
use super::{CheckInput, Item, Outcome, Record};
use crate::probe::prom::Scrape;

/// The lesson's ceiling for a store call's timeout.
pub const MAX_STORE_TIMEOUT: Duration = Duration::from_millis(50);
/// The lesson's safety factor over the minimum pool (`max = min × 1.5`).
pub const POOL_SAFETY: f64 = 1.5;
/// Records older than this are a warning.
pub const RECORD_MAX_AGE: chrono::TimeDelta = chrono::TimeDelta::days(30);
/// The lesson's consumer-lag alert.
pub const LESSON_LAG: Duration = Duration::from_secs(300);
/// Share of entities the lesson calls hot (top 1 %).
pub const HOT_SHARE: f64 = 0.01;

pub(super) const RELIABILITY: &str = "reliability";
pub(super) const PERFORMANCE: &str = "performance";
pub(super) const OBSERVABILITY: &str = "observability";
pub(super) const OPERATIONS: &str = "operations";

pub(super) fn item(
    id: &'static str,
    section: &'static str,
    title: &'static str,
    outcome: Outcome,
    reason: impl Into<String>,
) -> Item {
    Item {
        id,
        section,
        title,
        outcome,
        reason: reason.into(),
    }
}

pub(super) fn d(x: Duration) -> String {
    format_duration(x)
}

/// A measured duration in days and hours from a day up (`31d 12h`), else to the second.
pub(super) fn coarse(x: Duration) -> String {
    let s = x.as_secs();
    if s >= 86_400 {
        format!("{}d {}h", s / 86_400, s % 86_400 / 3600)
    } else {
        d(Duration::from_secs(s))
    }
}

pub(super) fn ms(x: Duration) -> String {
    let v = x.as_secs_f64() * 1000.0;
    if v >= 10.0 {
        format!("{v:.0}ms")
    } else {
        format!("{v:.2}ms")
    }
}

pub(super) fn cmd(input: &CheckInput<'_>, rest: &str) -> String {
    format!("riffle {rest} --config {}", input.config_path.display())
}

/// The live facts' `/health` and `/metrics`, or why they are missing.
pub(super) fn live_http(live: &LiveFacts) -> Result<(&Value, &Scrape), String> {
    let health = live.health.as_ref().map_err(Clone::clone)?;
    let metrics = live.metrics.as_ref().map_err(Clone::clone)?;
    Ok((health, metrics))
}

/// Applies a live judgment on top of a files judgment: the worse outcome wins.
pub(super) fn with_live(mut base: Item, live: Option<(Outcome, String)>) -> Item {
    if let Some((outcome, reason)) = live {
        base.outcome = base.outcome.max(outcome);
        base.reason = format!("{} Live: {reason}", base.reason);
    }
    base
}

/// Every item, in the lesson's order.
pub fn all(input: &CheckInput<'_>) -> Vec<Item> {
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
    ]
}

pub(super) fn manual_item(id: &'static str, title: &'static str, what: &str) -> Item {
    item(id, OPERATIONS, title, Outcome::Manual, what)
}

pub(super) fn record_item(
    id: &'static str,
    section: &'static str,
    title: &'static str,
    record: &Record,
    now: chrono::DateTime<chrono::Utc>,
    missing: Outcome,
    run: String,
) -> Item {
    let (outcome, reason) = match record {
        Record::Missing(path) => (
            missing,
            format!("No record at {}: run `{run}`.", path.display()),
        ),
        Record::Unreadable(path, why) => (
            Outcome::Fail,
            format!(
                "Record {} unreadable ({why}): run `{run}` again.",
                path.display()
            ),
        ),
        Record::Found {
            path,
            finished_at,
            passed,
            ..
        } => {
            let age = now.signed_duration_since(*finished_at);
            let days = age.num_days();
            let when = format!(
                "{} ({} day(s) ago, {})",
                finished_at.to_rfc3339(),
                days,
                path.display()
            );
            match passed {
                Some(false) => (
                    Outcome::Fail,
                    format!("Last run failed at {when}: fix and run `{run}`."),
                ),
                _ if age > RECORD_MAX_AGE => (
                    Outcome::Warn,
                    format!("Last run passed at {when}, more than 30 days ago: run `{run}`."),
                ),
                _ => (
                    Outcome::Pass,
                    format!(
                        "Last run {} at {when}.",
                        if passed.is_some() {
                            "passed"
                        } else {
                            "finished"
                        }
                    ),
                ),
            }
        }
    };
    item(id, section, title, outcome, reason)
}
