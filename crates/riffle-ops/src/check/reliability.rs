//! Checklist items of the lesson's "Reliability" section: pool (in-flight) sizing, circuit
//! breaker, a default for every feature, the fallback path tested, store timeouts.

use std::time::Duration;

use riffle_registry::UnsafePolicy;

use super::input::CheckInput;
use super::item::{item, with_live, Item, Outcome, RELIABILITY};
use super::record::record_item;
use super::thresholds::{MAX_STORE_TIMEOUT, POOL_SAFETY};
use super::wording::{cmd, d, ms};
use crate::probe::prom::Sample;

/// The store latency used in the pool formula: measured (live, store read p99) or the
/// slowest group p99 SLO.
pub(super) fn formula_latency(input: &CheckInput<'_>) -> Option<(Duration, String)> {
    if let Some(Ok(m)) = input.live.map(|l| &l.metrics) {
        let read = |s: &Sample| s.label("op") == Some("read");
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

pub(super) fn pool_sizing(input: &CheckInput<'_>) -> Item {
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

pub(super) fn circuit_breaker(input: &CheckInput<'_>) -> Item {
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

pub(super) fn defaults(input: &CheckInput<'_>) -> Item {
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
            "All {n} features of {} groups declare a training default (the registry requires it){}. Training sets from `riffle training-set` (and Feast's get_historical_features through `riffle serve-offline`) fill the same defaults where serve would, by the same code; {}",
            reg.groups.len(),
            if failing.is_empty() {
                String::new()
            } else {
                format!("; {} answer 503 instead of defaults (on_unsafe = \"fail\")", failing.join(", "))
            },
            if reg.serve.logging.is_some() {
                "served values are logged ([serve.logging]): `riffle validate` proves they equal what training sees."
            } else {
                "turn on [serve.logging] and run `riffle validate` to prove served values equal what training sees."
            }
        ),
    )
}

pub(super) fn fallback_tested(input: &CheckInput<'_>) -> Item {
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

pub(super) fn store_timeout(input: &CheckInput<'_>) -> Item {
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
