//! The 20 items of the seed lesson's readiness checklist, in its order and sections, each a
//! function from [`CheckInput`] to an [`Item`]. Numbers in reasons come from the registry,
//! the records and the live facts; nothing is assumed to pass.

use std::time::Duration;

use riffle_registry::{format_duration, Registry, UnsafePolicy};
use serde_json::Value;

use super::live::{label, Keys, LiveFacts, MetricsText};
use super::{CheckInput, Item, Outcome, Record};
use crate::alerts::{self, AGE_HISTOGRAM_TOP_SECONDS, READ_ENDPOINTS_REGEX};
use crate::runbook::{runbook, RunbookInput};
use crate::scenario::Scenario;

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

const RELIABILITY: &str = "reliability";
const PERFORMANCE: &str = "performance";
const OBSERVABILITY: &str = "observability";
const OPERATIONS: &str = "operations";

fn item(
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

fn d(x: Duration) -> String {
    format_duration(x)
}

fn ms(x: Duration) -> String {
    let v = x.as_secs_f64() * 1000.0;
    if v >= 10.0 {
        format!("{v:.0}ms")
    } else {
        format!("{v:.2}ms")
    }
}

fn cmd(input: &CheckInput<'_>, rest: &str) -> String {
    format!("riffle {rest} --config {}", input.config_path.display())
}

/// The live facts' `/health` and `/metrics`, or why they are missing.
fn live_http(live: &LiveFacts) -> Result<(&Value, &MetricsText), String> {
    let health = live.health.as_ref().map_err(Clone::clone)?;
    let metrics = live.metrics.as_ref().map_err(Clone::clone)?;
    Ok((health, metrics))
}

/// Applies a live judgment on top of a files judgment: the worse outcome wins.
fn with_live(mut base: Item, live: Option<(Outcome, String)>) -> Item {
    if let Some((outcome, reason)) = live {
        base.outcome = base.outcome.max(outcome);
        base.reason = format!("{} Live: {reason}", base.reason);
    }
    base
}

/// Every item, in the lesson's order.
pub fn all(input: &CheckInput<'_>) -> Vec<Item> {
    vec![
        pool_sizing(input),
        circuit_breaker(input),
        defaults(input),
        fallback_tested(input),
        store_timeout(input),
        batch_round_trip(),
        loadtest_10x(input),
        p99_slo(input),
        hot_cache(input),
        key_ttl(input),
        staleness_metric(input),
        staleness_alert(input),
        cache_hit_rate(input),
        value_distribution(input),
        consumer_lag(input),
        runbook_item(input),
        manual_item(
            "multi_region",
            "Multi-region readiness or single-region SLA",
            &format!(
                "Confirm the store ({}) is replicated to every serving region, or write down the single-region SLA the business accepts.",
                input.registry.store.url
            ),
        ),
        manual_item(
            "canary",
            "Canary deployment for feature changes",
            "Confirm feature changes ship behind a new group version (rows of v1 and v2 coexist) to a canary share of traffic, with latency, defaults and drift watched at each step.",
        ),
        incident_response(input),
        cost_2x(input),
    ]
}

fn manual_item(id: &'static str, title: &'static str, what: &str) -> Item {
    item(id, OPERATIONS, title, Outcome::Manual, what)
}

/// The store latency used in the pool formula: measured (live, store read p99) or the
/// slowest group p99 SLO.
fn formula_latency(input: &CheckInput<'_>) -> Option<(Duration, String)> {
    if let Some(Ok(m)) = input.live.map(|l| &l.metrics) {
        let read = |l: &str| label(l, "op") == Some("read");
        if let Some((p99, n)) = m.quantile("riffle_store_call_duration_seconds", &read, 0.99) {
            if n >= 100 {
                return Some((
                    Duration::from_secs_f64(p99),
                    format!("the measured store read p99 over {n} calls"),
                ));
            }
        }
    }
    input
        .registry
        .groups
        .iter()
        .map(|g| g.p99_slo)
        .max()
        .map(|slo| (slo, "the slowest group p99 SLO".to_owned()))
}

fn pool_sizing(input: &CheckInput<'_>) -> Item {
    const TITLE: &str = "Pool/in-flight sized for peak load";
    let reg = input.registry;
    let bound = reg.store.max_in_flight;
    let Some(peak) = reg.peak_rps else {
        return item(
            "pool_sizing",
            RELIABILITY,
            TITLE,
            Outcome::Warn,
            format!("project.peak_rps is not declared: the lesson's formula cannot be applied to store.max_in_flight = {bound}. Declare the expected peak."),
        );
    };
    let Some((latency, basis)) = formula_latency(input) else {
        return item(
            "pool_sizing",
            RELIABILITY,
            TITLE,
            Outcome::Warn,
            "no group declares a p99 SLO to size with",
        );
    };
    let min = (peak as f64 * latency.as_secs_f64()).ceil() as u64;
    let max = (min as f64 * POOL_SAFETY).ceil() as u64;
    let at_timeout = (peak as f64 * reg.store.timeout.as_secs_f64()).ceil() as u64;
    let outcome = if (bound as u64) >= max {
        Outcome::Pass
    } else if (bound as u64) >= min {
        Outcome::Warn
    } else {
        Outcome::Fail
    };
    item(
        "pool_sizing",
        RELIABILITY,
        TITLE,
        outcome,
        format!(
            "Lesson's formula at peak {peak} rps x {} ({basis}) = {min} connections, x{POOL_SAFETY} = {max}. Riffle bounds store calls in flight instead (multiplexed connection, past the bound a call fails fast to the default): store.max_in_flight = {bound}{}. If every call ran to the {} timeout, {at_timeout} would be in flight.",
            ms(latency),
            if outcome == Outcome::Pass { ", enough" } else { ", too small: raise it" },
            ms(reg.store.timeout)
        ),
    )
}

fn circuit_breaker(input: &CheckInput<'_>) -> Item {
    const TITLE: &str = "Circuit breaker on store calls";
    let b = &input.registry.serve.breaker;
    let sane = b.failure_threshold >= 1 && !b.window.is_zero() && !b.reset_timeout.is_zero();
    let base = item(
        "circuit_breaker",
        RELIABILITY,
        TITLE,
        if sane { Outcome::Pass } else { Outcome::Fail },
        format!(
            "Every serve read goes through the breaker (by design): opens after {} failures in {}, half-opens after {}, closes after {} good trials; an open breaker serves defaults without touching the store.",
            b.failure_threshold,
            d(b.window),
            d(b.reset_timeout),
            b.success_threshold
        ),
    );
    let live = input.live.map(|l| match &l.health {
        Err(e) => (Outcome::Fail, e.clone()),
        Ok(h) => match h["breaker"]["state"].as_str() {
            Some("closed") => (Outcome::Pass, "breaker closed.".into()),
            Some("half_open") => (Outcome::Warn, "breaker half-open (recovering).".into()),
            Some(other) => (
                Outcome::Fail,
                format!("breaker {other}: the store is failing now."),
            ),
            None => (Outcome::Fail, "/health has no breaker state.".into()),
        },
    });
    with_live(base, live)
}

fn defaults(input: &CheckInput<'_>) -> Item {
    let reg = input.registry;
    let n: usize = reg.groups.iter().map(|g| g.features.len()).sum();
    let failing: Vec<&str> = reg
        .groups
        .iter()
        .filter(|g| g.on_unsafe == UnsafePolicy::Fail)
        .map(|g| g.name.as_str())
        .collect();
    item(
        "defaults",
        RELIABILITY,
        "Fallback value for every feature",
        Outcome::Pass,
        format!(
            "All {n} features of {} groups declare a training default (the registry requires it){}. Confirm with the model owners that they equal the training defaults exactly.",
            reg.groups.len(),
            if failing.is_empty() {
                String::new()
            } else {
                format!("; {} answer 503 instead of defaults (on_unsafe = \"fail\")", failing.join(", "))
            }
        ),
    )
}

fn record_item(
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

fn fallback_tested(input: &CheckInput<'_>) -> Item {
    record_item(
        "fallback_tested",
        RELIABILITY,
        "Fallback path tested (store broken on purpose)",
        &input.drill,
        input.now,
        Outcome::Fail,
        format!("{} --target URL --store URL", cmd(input, "drill")),
    )
}

fn store_timeout(input: &CheckInput<'_>) -> Item {
    let t = input.registry.store.timeout;
    let ok = t <= MAX_STORE_TIMEOUT;
    let base = item(
        "store_timeout",
        RELIABILITY,
        "Timeout on every store call <= 50ms",
        if ok { Outcome::Pass } else { Outcome::Fail },
        format!(
            "store.timeout = {} {} the lesson's 50ms; it bounds every read, write and ping (never retried on the read path).",
            ms(t),
            if ok { "is within" } else { "exceeds" }
        ),
    );
    let live = input.live.map(|l| match &l.health {
        Err(e) => (Outcome::Fail, e.clone()),
        Ok(h) => match h["store"]["timeout_ms"].as_u64() {
            Some(v) if v <= MAX_STORE_TIMEOUT.as_millis() as u64 => {
                (Outcome::Pass, format!("serve runs with {v}ms."))
            }
            Some(v) => (Outcome::Fail, format!("serve runs with {v}ms.")),
            None => (Outcome::Fail, "/health has no store timeout.".into()),
        },
    });
    with_live(base, live)
}

fn batch_round_trip() -> Item {
    item(
        "batch_round_trip",
        PERFORMANCE,
        "Batch reads in one round trip",
        Outcome::Pass,
        "By design: a request for N entities costs at most one store round trip (cache misses read together in one pipeline of HMGETs, one hash per entity holds all its groups); see ARCHITECTURE.md.",
    )
}

fn loadtest_10x(input: &CheckInput<'_>) -> Item {
    let peak = input
        .registry
        .peak_rps
        .map_or_else(|| "PEAK".to_owned(), |p| p.to_string());
    record_item(
        "loadtest_10x",
        PERFORMANCE,
        "Load test at 10x expected peak",
        &input.loadtest,
        input.now,
        Outcome::Warn,
        format!(
            "{} --target URL --peak {peak} --factor 10",
            cmd(input, "loadtest")
        ),
    )
}

fn p99_slo(input: &CheckInput<'_>) -> Item {
    const TITLE: &str = "p99 SLO declared per group, met under load";
    let mut missing = Vec::new();
    for (i, g) in input.raw.feature_groups.iter().enumerate() {
        for (field, declared) in [
            ("p99_slo", g.p99_slo.is_some()),
            ("availability_slo", g.availability_slo.is_some()),
        ] {
            if !declared {
                missing.push(format!("feature_groups[{i}] ({}).{field}", g.name));
            }
        }
    }
    let slos: Vec<String> = input
        .registry
        .groups
        .iter()
        .map(|g| format!("{} {}", g.name, ms(g.p99_slo)))
        .collect();
    let base = if missing.is_empty() {
        item(
            "p99_slo",
            PERFORMANCE,
            TITLE,
            Outcome::Pass,
            format!(
                "Freshness, p99 and availability SLOs declared for every group (p99: {}).",
                slos.join(", ")
            ),
        )
    } else {
        item(
            "p99_slo",
            PERFORMANCE,
            TITLE,
            Outcome::Fail,
            format!(
                "SLOs not declared (a default would be assumed): {}.",
                missing.join(", ")
            ),
        )
    };
    let live = input.live.map(|l| match live_http(l) {
        Err(e) => (Outcome::Fail, e),
        Ok((_, m)) => {
            let read = |labels: &str| {
                label(labels, "endpoint").is_some_and(|e| e.starts_with("/v1/features") || e == "/get-online-features")
            };
            let tightest = input.registry.groups.iter().map(|g| g.p99_slo).min().unwrap_or(Duration::MAX);
            match m.quantile("riffle_http_request_duration_seconds", &read, 0.99) {
                None => (Outcome::Warn, format!("no read request served yet (endpoints {READ_ENDPOINTS_REGEX}): measure under load with `riffle loadtest`.")),
                Some((p99, n)) => {
                    let p = Duration::from_secs_f64(p99);
                    let ok = p <= tightest;
                    (if ok { Outcome::Pass } else { Outcome::Fail }, format!("read p99 {} over {n} requests since start {} the tightest SLO {}.", ms(p), if ok { "within" } else { "above" }, ms(tightest)))
                }
            }
        }
    });
    with_live(base, live)
}

fn hot_cache(input: &CheckInput<'_>) -> Item {
    const TITLE: &str = "Hot in-process cache, bounded";
    let reg = input.registry;
    let c = &reg.serve.cache;
    if !c.enabled || c.max_entries == 0 || c.ttl.is_zero() {
        return item(
            "hot_cache",
            PERFORMANCE,
            TITLE,
            Outcome::Fail,
            format!(
                "serve.cache is off or unbounded (enabled = {}, max_entries = {}, ttl = {}).",
                c.enabled,
                c.max_entries,
                d(c.ttl)
            ),
        );
    }
    let mut notes = Vec::new();
    let mut outcome = Outcome::Pass;
    for (i, e) in reg.entities.iter().enumerate() {
        let groups = reg.groups_of(i).count() as u64;
        match e.expected_count {
            Some(n) if groups > 0 => {
                let want = (n as f64 * HOT_SHARE).ceil() as u64 * groups;
                if c.max_entries < want {
                    outcome = Outcome::Warn;
                    notes.push(format!(
                        "the top 1% of {n} {}s x {groups} groups = {want} rows does not fit",
                        e.name
                    ));
                } else {
                    notes.push(format!(
                        "holds the top 1% of {n} {}s x {groups} groups ({want} rows)",
                        e.name
                    ));
                }
            }
            None if groups > 0 => {
                notes.push(format!("entity {} declares no expected_count", e.name))
            }
            _ => {}
        }
    }
    for g in &reg.groups {
        let ttl = g.cache_ttl.unwrap_or(c.ttl);
        if ttl > g.freshness_slo {
            outcome = outcome.max(Outcome::Warn);
            notes.push(format!(
                "{} caches for {} > its freshness SLO {}",
                g.name,
                d(ttl),
                d(g.freshness_slo)
            ));
        }
    }
    let base = item(
        "hot_cache",
        PERFORMANCE,
        TITLE,
        outcome,
        format!(
            "On, bounded at {} rows, {} TTL ({} for misses): {}.",
            c.max_entries,
            d(c.ttl),
            d(c.negative_ttl),
            notes.join("; ")
        ),
    );
    let live = input.live.map(|l| match &l.health {
        Err(e) => (Outcome::Fail, e.clone()),
        Ok(h) => match h["cache"]["enabled"].as_bool() {
            Some(true) => (
                Outcome::Pass,
                format!("cache on, {} entries.", h["cache"]["entries"]),
            ),
            _ => (
                Outcome::Fail,
                "serve runs with the cache off (--no-cache?).".into(),
            ),
        },
    });
    with_live(base, live)
}

fn key_ttl(input: &CheckInput<'_>) -> Item {
    const TITLE: &str = "TTL on every key";
    let reg = input.registry;
    let ttls: Vec<String> = reg
        .groups
        .iter()
        .map(|g| format!("{} {}", g.name, d(g.ttl)))
        .collect();
    let base = item("key_ttl", PERFORMANCE, TITLE, Outcome::Pass, format!("Every group declares a TTL ({}); keys live for their entity's longest plus {}% jitter, and no key is written without one.", ttls.join(", "), (reg.store.ttl_jitter * 100.0).round()));
    let live = input.live.map(|l| match &l.keys {
        Keys::Failed(e) => (Outcome::Fail, format!("store {}: {e}", l.store)),
        Keys::NotSampled(why) => (Outcome::Pass, format!("keys not sampled ({why}).")),
        Keys::Sampled(s) if s.sampled == 0 => (
            Outcome::Warn,
            format!("no entity key found in {} to sample.", l.store),
        ),
        Keys::Sampled(s) if !s.without_ttl.is_empty() => (
            Outcome::Fail,
            format!(
                "{} of {} sampled keys have no TTL (e.g. {}).",
                s.without_ttl.len(),
                s.sampled,
                s.without_ttl[0]
            ),
        ),
        Keys::Sampled(s) => (
            Outcome::Pass,
            format!(
                "all {} sampled keys expire (TTL {} to {}).",
                s.sampled,
                s.min_ttl.map(d).unwrap_or_default(),
                s.max_ttl.map(d).unwrap_or_default()
            ),
        ),
    });
    with_live(base, live)
}

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

fn staleness_metric(input: &CheckInput<'_>) -> Item {
    let base = item(
        "staleness_metric",
        OBSERVABILITY,
        "Staleness metric per feature group",
        Outcome::Pass,
        "riffle_value_age_seconds{group} (age of values served) per group, riffle_source_watermark_age_seconds{source} for stream groups, and /health's per-group freshness.",
    );
    let live = input.live.map(|l| match live_http(l) {
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

fn staleness_alert(input: &CheckInput<'_>) -> Item {
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

fn cache_hit_rate(input: &CheckInput<'_>) -> Item {
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
    let live = input.live.map(|l| match live_http(l) {
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

fn value_distribution(input: &CheckInput<'_>) -> Item {
    let base = item(
        "value_distribution",
        OBSERVABILITY,
        "Feature value distribution logged",
        Outcome::Warn,
        "Null/default rate per group is exported (riffle_values_served_total by status) and alerted (RiffleDefaultRateSpike); per-feature mean and p99 are not exported by this build.",
    );
    let live = input.live.map(|l| match live_http(l) {
        Err(e) => (Outcome::Fail, e),
        Ok((_, m)) if m.has_family("riffle_values_served_total") => {
            (Outcome::Pass, "riffle_values_served_total present.".into())
        }
        Ok(_) => (
            Outcome::Fail,
            "/metrics lacks riffle_values_served_total.".into(),
        ),
    });
    with_live(base, live)
}

fn consumer_lag(input: &CheckInput<'_>) -> Item {
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
            format!("RiffleIngestLag per source ({}) at ingest.lag_threshold = {}{}; `{}` reads the watermarks.", fed.join(", "), d(threshold), if ok { "" } else { ", above the lesson's 5 min" }, cmd(input, "lag")),
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
                        Some(lag) => format!(
                            "{}: {} behind ({})",
                            s.source,
                            d(Duration::from_secs(lag.as_secs())),
                            s.via
                        ),
                    })
                    .collect();
                (worst, format!("{}.", parts.join("; ")))
            }
        });
    with_live(base, live)
}

fn runbook_item(input: &CheckInput<'_>) -> Item {
    let text = runbook(&RunbookInput {
        registry: input.registry,
        config_path: &input.config_path.display().to_string(),
    });
    let missing_sections: Vec<usize> = Scenario::ALL
        .iter()
        .filter(|s| !text.contains(&format!("<a id=\"{}\"></a>", s.anchor())))
        .map(|s| s.number())
        .collect();
    let unlinked: Vec<&'static str> = alerts::rules(input.registry)
        .into_iter()
        .flat_map(|g| g.rules)
        .filter(|r| !text.contains(&format!("<a id=\"{}\"></a>", r.scenario.anchor())))
        .map(|r| r.alert)
        .collect();
    let ok = missing_sections.is_empty() && unlinked.is_empty();
    item(
        "runbook",
        OPERATIONS,
        "Runbook for each failure mode",
        if ok { Outcome::Pass } else { Outcome::Fail },
        if ok {
            format!("`{} --out RUNBOOK.md` writes the ten scenarios for this deployment; every alert links to its section. Confirm it is published where runbook_url points and on-call has read it.", cmd(input, "runbook"))
        } else {
            format!("runbook lacks scenarios {missing_sections:?}; alerts without a section: {unlinked:?}")
        },
    )
}

fn incident_response(input: &CheckInput<'_>) -> Item {
    let slos: Vec<String> = input
        .registry
        .groups
        .iter()
        .map(|g| format!("{} {:.3}%", g.name, g.availability_slo * 100.0))
        .collect();
    manual_item(
        "incident_response",
        "Pager rotation, escalation, recovery SLA",
        &format!("Confirm a pager rotation receives the severity=critical alerts, an escalation path, and a recovery SLA consistent with the availability SLOs ({}).", slos.join(", ")),
    )
}

fn cost_2x(input: &CheckInput<'_>) -> Item {
    let reg: &Registry = input.registry;
    let undeclared: Vec<&str> = reg
        .entities
        .iter()
        .filter(|e| e.expected_count.is_none())
        .map(|e| e.name.as_str())
        .collect();
    let mut it = record_item(
        "cost_2x",
        OPERATIONS,
        "Cost model at 2x entity count",
        &input.cost,
        input.now,
        Outcome::Warn,
        format!("{} --store URL", cmd(input, "cost")),
    );
    if !undeclared.is_empty() {
        it.outcome = it.outcome.max(Outcome::Warn);
        it.reason = format!(
            "{} Entities without expected_count: {}.",
            it.reason,
            undeclared.join(", ")
        );
    }
    it
}
