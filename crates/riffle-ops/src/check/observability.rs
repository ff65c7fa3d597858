//! Checklist items of the lesson's "Observability" section: staleness metric and alert,
//! cache hit rate, value distribution, consumer lag.

use std::time::Duration;

use super::input::CheckInput;
use super::item::{item, with_live, Item, Outcome, OBSERVABILITY};
use super::thresholds::LESSON_LAG;
use super::wording::{cmd, d};
use crate::alerts::{self, AGE_HISTOGRAM_TOP_SECONDS};

/// Metric families `riffle serve` must export (`docs/metrics.md`).
pub const REQUIRED_METRICS: [&str; 9] = [
    "riffle_value_age_seconds",
    "riffle_values_served_total",
    "riffle_source_watermark_age_seconds",
    "riffle_http_request_duration_seconds",
    "riffle_cache_hits_total",
    "riffle_cache_misses_total",
    "riffle_breaker_state",
    "riffle_store_in_flight",
    "riffle_store_in_flight_limit",
];

pub(super) fn staleness_metric(input: &CheckInput<'_>) -> Item {
    let base = item(
        "staleness_metric",
        OBSERVABILITY,
        "Staleness metric per feature group",
        Outcome::Pass,
        "riffle_value_age_seconds{group} (age of values served) per group, riffle_source_watermark_age_seconds{source} for stream groups, and /health's per-group freshness.",
    );
    let live = input.live.map(|l| match l.http() {
        Err(e) => (Outcome::Fail, e),
        Ok((_, m)) => {
            let mut missing: Vec<String> = REQUIRED_METRICS
                .iter()
                .filter(|n| !m.has_family(n))
                .map(|n| n.to_string())
                .collect();
            for g in &input.registry.groups {
                if !m.has_series("riffle_value_age_seconds_count", "group", &g.name) {
                    missing.push(format!("riffle_value_age_seconds{{group=\"{}\"}}", g.name));
                }
            }
            if missing.is_empty() {
                (
                    Outcome::Pass,
                    format!(
                        "/metrics exports all {} families and every group's age.",
                        REQUIRED_METRICS.len()
                    ),
                )
            } else {
                (
                    Outcome::Fail,
                    format!("/metrics lacks {}.", missing.join(", ")),
                )
            }
        }
    });
    with_live(base, live)
}

pub(super) fn staleness_alert(input: &CheckInput<'_>) -> Item {
    let reg = input.registry;
    let rules: Vec<alerts::Rule> = alerts::rules(reg)
        .into_iter()
        .flat_map(|g| g.rules)
        .collect();
    let mut parts = Vec::new();
    let mut outcome = Outcome::Pass;
    for g in &reg.groups {
        let threshold = alerts::staleness_threshold(g);
        let has_rule = rules.iter().any(|r| {
            r.alert == "RiffleFeatureStale"
                && r.labels.iter().any(|(k, v)| *k == "group" && *v == g.name)
        });
        if !has_rule {
            outcome = Outcome::Fail;
            parts.push(format!("{}: no rule", g.name));
        } else if threshold.as_secs() > AGE_HISTOGRAM_TOP_SECONDS {
            outcome = outcome.max(Outcome::Warn);
            parts.push(format!(
                "{} {} (fires at {}: the age histogram tops out there)",
                g.name,
                d(threshold),
                d(alerts::staleness_alert_age(g))
            ));
        } else {
            parts.push(format!("{} {}", g.name, d(threshold)));
        }
    }
    item(
        "staleness_alert",
        OBSERVABILITY,
        "Staleness alert at 2x refresh interval",
        outcome,
        format!(
            "`{}` alerts at 2x each group's refresh interval (its freshness_slo): {}.",
            cmd(input, "alerts"),
            parts.join(", ")
        ),
    )
}

pub(super) fn cache_hit_rate(input: &CheckInput<'_>) -> Item {
    let enabled = input.registry.serve.cache.enabled;
    let base = item(
        "cache_hit_rate",
        OBSERVABILITY,
        "Cache hit rate tracked",
        if enabled {
            Outcome::Pass
        } else {
            Outcome::Warn
        },
        if enabled {
            format!("riffle_cache_hits_total / riffle_cache_misses_total exported; RiffleCacheHitRateLow fires below {}.", alerts::CACHE_HIT_FLOOR)
        } else {
            "the cache is off: no hit rate to track.".to_owned()
        },
    );
    let live = input.live.map(|l| match l.http() {
        Err(e) => (Outcome::Fail, e),
        Ok((h, m)) => {
            if !m.has_family("riffle_cache_hits_total")
                || !m.has_family("riffle_cache_misses_total")
            {
                return (Outcome::Fail, "/metrics lacks the cache counters.".into());
            }
            let hits = h["cache"]["hits"].as_u64().unwrap_or(0);
            let misses = h["cache"]["misses"].as_u64().unwrap_or(0);
            match h["cache"]["hit_rate"].as_f64() {
                Some(r) if hits + misses >= 100 && r < alerts::CACHE_HIT_FLOOR => (
                    Outcome::Warn,
                    format!(
                        "hit rate {r:.2} over {} lookups, below {}.",
                        hits + misses,
                        alerts::CACHE_HIT_FLOOR
                    ),
                ),
                Some(r) => (
                    Outcome::Pass,
                    format!("hit rate {r:.2} over {} lookups.", hits + misses),
                ),
                None => (Outcome::Pass, "no lookup yet.".into()),
            }
        }
    });
    with_live(base, live)
}

/// Per-feature distribution metrics `riffle serve` exports while it samples served values.
pub const DISTRIBUTION_METRICS: [&str; 3] = [
    "riffle_feature_value_mean",
    "riffle_feature_value_p99",
    "riffle_feature_default_ratio",
];

pub(super) fn value_distribution(input: &CheckInput<'_>) -> Item {
    let base = item(
        "value_distribution",
        OBSERVABILITY,
        "Feature value distribution logged",
        Outcome::Warn,
        "Null/default rate per group is exported (riffle_values_served_total by status) and alerted (RiffleDefaultRateSpike); per-feature mean, p99 and default ratio (riffle_feature_*) and drift (riffle_feature_psi, RiffleFeatureDrift) depend on how serve runs: confirm with --connect.",
    );
    let live = input.live.map(|l| match l.http() {
        Err(e) => (Outcome::Fail, e),
        Ok((_, m)) if !m.has_family("riffle_values_served_total") => (
            Outcome::Fail,
            "/metrics lacks riffle_values_served_total.".into(),
        ),
        Ok((_, m)) => {
            let missing: Vec<&str> = DISTRIBUTION_METRICS
                .iter()
                .copied()
                .filter(|n| !m.has_family(n))
                .collect();
            let psi = m.has_family("riffle_feature_psi")
                && m.named("riffle_feature_psi").next().is_some();
            if missing.is_empty() {
                (
                    Outcome::Pass,
                    format!(
                        "per-feature distribution exported ({}); drift against a baseline {}.",
                        DISTRIBUTION_METRICS.join(", "),
                        if psi {
                            "measured (riffle_feature_psi)"
                        } else {
                            "not measured yet (no baseline loaded, or too few samples)"
                        }
                    ),
                )
            } else {
                (
                    Outcome::Warn,
                    format!("this server does not export {}.", missing.join(", ")),
                )
            }
        }
    });
    // The files-only warning only asks for the live answer: when there is one, it decides.
    match live {
        Some((outcome, reason)) => Item {
            outcome,
            reason: format!("{} Live: {reason}", base.reason),
            ..base
        },
        None => base,
    }
}

pub(super) fn consumer_lag(input: &CheckInput<'_>) -> Item {
    const TITLE: &str = "Consumer lag tracked, alert at 5 min";
    let reg = input.registry;
    let threshold = alerts::lag_threshold(reg);
    let fed: Vec<&str> = reg
        .sources
        .iter()
        .enumerate()
        .filter(|(i, _)| reg.groups_of_source(*i).next().is_some())
        .map(|(_, s)| s.name.as_str())
        .collect();
    let ok = threshold <= LESSON_LAG;
    let base = if fed.is_empty() {
        item("consumer_lag", OBSERVABILITY, TITLE, Outcome::Pass, format!("No group is fed by a stream source: no consumer lag to track (ingest.lag_threshold {}).", d(threshold)))
    } else {
        item(
            "consumer_lag",
            OBSERVABILITY,
            TITLE,
            if ok { Outcome::Pass } else { Outcome::Fail },
            format!("RiffleIngestLag per source ({}) at ingest.lag_threshold = {}{}; `{}` reads the watermarks and, for Kafka, the consumer group's lag per partition from the broker.", fed.join(", "), d(threshold), if ok { "" } else { ", above the lesson's 5 min" }, cmd(input, "lag")),
        )
    };
    let live = input
        .live
        .filter(|_| !fed.is_empty())
        .map(|l| match &l.sources {
            Err(e) => (Outcome::Fail, e.clone()),
            Ok(sources) => {
                let mut worst = Outcome::Pass;
                let parts: Vec<String> = sources
                    .iter()
                    .map(|s| match s.lag {
                        None => {
                            worst = Outcome::Fail;
                            format!("{}: no ingest worker publishing ({})", s.source, s.via)
                        }
                        Some(lag) if lag > threshold => {
                            worst = Outcome::Fail;
                            format!(
                                "{}: {} behind, above {} ({})",
                                s.source,
                                d(Duration::from_secs(lag.as_secs())),
                                d(threshold),
                                s.via
                            )
                        }
                        Some(lag) if !s.problems.is_empty() => {
                            worst = Outcome::Fail;
                            format!(
                                "{}: {} behind, but {} ({})",
                                s.source,
                                d(Duration::from_secs(lag.as_secs())),
                                s.problems.join("; "),
                                s.via
                            )
                        }
                        Some(lag) => match &s.unverified {
                            Some(e) => {
                                worst = worst.max(Outcome::Warn);
                                format!(
                                    "{}: {} behind ({}), but its consumer group could not be read: {e}",
                                    s.source,
                                    d(Duration::from_secs(lag.as_secs())),
                                    s.via
                                )
                            }
                            None => format!(
                                "{}: {} behind ({})",
                                s.source,
                                d(Duration::from_secs(lag.as_secs())),
                                s.via
                            ),
                        },
                    })
                    .collect();
                (worst, format!("{}.", parts.join("; ")))
            }
        });
    with_live(base, live)
}
