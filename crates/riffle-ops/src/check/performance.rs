//! Checklist items of the lesson's "Performance" section: batch reads, the 10× load test,
//! p99 SLOs declared and met, the hot cache, TTLs on every key.

use std::time::Duration;

use super::input::CheckInput;
use super::item::{item, with_live, Item, Outcome, PERFORMANCE};
use super::live::Keys;
use super::record::{record_item, Record};
use super::thresholds::HOT_SHARE;
use super::wording::{cmd, coarse, d, ms};
use crate::alerts::READ_ENDPOINTS_REGEX;
use crate::probe::prom::Sample;

pub(super) fn batch_round_trip() -> Item {
    item(
        "batch_round_trip",
        PERFORMANCE,
        "Batch reads in one round trip",
        Outcome::Pass,
        "By design: a request for N entities costs at most one store round trip (cache misses read together in one pipeline of HMGETs, one hash per entity holds all its groups); see ARCHITECTURE.md.",
    )
}

pub(super) fn loadtest_10x(input: &CheckInput<'_>) -> Item {
    let peak = input
        .registry
        .peak_rps
        .map_or_else(|| "PEAK".to_owned(), |p| p.to_string());
    let run = format!(
        "{} --target URL --peak {peak} --factor 10",
        cmd(input, "loadtest")
    );
    let mut it = record_item(
        "loadtest_10x",
        PERFORMANCE,
        "Load test at 10x expected peak",
        &input.loadtest,
        input.now,
        Outcome::Warn,
        run.clone(),
    );
    // A passed run counts only at 10x the declared peak.
    if let (Record::Found { rate, .. }, Some(peak)) = (&input.loadtest, input.registry.peak_rps) {
        let want = peak as f64 * 10.0;
        match rate {
            Some(r) if *r >= want => {}
            Some(r) => {
                it.outcome = it.outcome.max(Outcome::Warn);
                it.reason = format!(
                    "{} It ran at {r} rps, below 10x the declared peak ({want}): run `{run}`.",
                    it.reason
                );
            }
            None => {
                it.outcome = it.outcome.max(Outcome::Warn);
                it.reason = format!("{} The record gives no open-loop rate to compare with 10x the declared peak ({want}).", it.reason);
            }
        }
    }
    it
}

pub(super) fn p99_slo(input: &CheckInput<'_>) -> Item {
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
    let live = input.live.map(|l| match l.http() {
        Err(e) => (Outcome::Fail, e),
        Ok((_, m)) => {
            let read = |s: &Sample| {
                s.label("endpoint").is_some_and(|e| e.starts_with("/v1/features") || e == "/get-online-features")
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

pub(super) fn hot_cache(input: &CheckInput<'_>) -> Item {
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

pub(super) fn key_ttl(input: &CheckInput<'_>) -> Item {
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
                s.min_ttl.map(coarse).unwrap_or_default(),
                s.max_ttl.map(coarse).unwrap_or_default()
            ),
        ),
    });
    with_live(base, live)
}
