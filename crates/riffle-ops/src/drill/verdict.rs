//! The drill's verdict ([`Check`]s), judged from what the server answered in each phase and
//! from its `/metrics` before, during and after the outage: no errors for groups allowed to
//! serve defaults, exactly the training defaults with status `unavailable` and degradation
//! `degraded`, 503 `critical` for fail-closed groups, the breaker opened, the fallback
//! counters moved, p99 during the outage within the store timeout plus the groups' largest
//! p99 SLO, and stored values served again after the restore. No I/O: the unit tests judge
//! fixed answer counts and a fixed scrape.

use std::time::Duration;

use riffle_registry::{Registry, UnsafePolicy};
use serde::Serialize;

use crate::loadtest::report::Percentiles;
use crate::loadtest::stats::{is_default_status, Stats};
use crate::loadtest::Selection;
use crate::probe::prom::Scrape;

/// One verdict line.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub expected: String,
    pub observed: String,
    pub passed: bool,
    /// `observed`, for readers that want one line (`riffle check`).
    pub detail: String,
}

pub(super) fn check(name: &str, expected: String, observed: String, passed: bool) -> Check {
    Check {
        name: name.to_owned(),
        expected,
        detail: observed.clone(),
        observed,
        passed,
    }
}

/// A scrape of serve's `/metrics`, or why it failed.
pub(super) type Scraped = Result<Scrape, String>;

/// The checks, from the three phases' counts and the three scrapes.
pub(super) fn verdict(
    registry: &Registry,
    recovery_timeout: Duration,
    policies: &[(Selection, UnsafePolicy)],
    phases: &[Vec<Stats>],
    (before, mid, after): (&Scraped, &Scraped, &Scraped),
    recovery_ms: Option<u64>,
) -> Vec<Check> {
    let mut checks = Vec::new();
    let [base, outage, recovery] = [&phases[0], &phases[1], &phases[2]].map(|p| Stats::merged(p));
    let all = {
        let mut a = base.clone();
        a.merge(&outage);
        a.merge(&recovery);
        a
    };

    let real = ["fresh", "stale"]
        .iter()
        .map(|s| base.values_total(s))
        .sum::<u64>();
    checks.push(check(
        "baseline",
        "stored values served before the outage, no errors".into(),
        format!(
            "{real} stored values, {} errors in {} requests",
            base.errors_total(),
            base.sent
        ),
        real > 0 && base.errors_total() == 0,
    ));

    let unavailable = outage.values_total("unavailable");
    let critical = outage.degradation.get("critical").copied().unwrap_or(0);
    checks.push(check(
        "outage_reached_server",
        "the server lost the store: values `unavailable` or 503 `critical`".into(),
        format!("{unavailable} unavailable values, {critical} critical answers"),
        unavailable + critical > 0,
    ));

    let safe: Vec<usize> = policies
        .iter()
        .enumerate()
        .filter(|(_, (_, p))| *p == UnsafePolicy::ServeDefaults)
        .map(|(i, _)| i)
        .collect();
    if let Some(&s) = safe.first() {
        let label = &policies[s].0.label;
        let (errs, sent) = [&phases[1][s], &phases[2][s]]
            .iter()
            .fold((0, 0), |(e, n), st| (e + st.errors_total(), n + st.sent));
        checks.push(check(
            "no_errors_serve_defaults",
            format!("0 HTTP errors for {label} during the outage and recovery"),
            format!("{errs} errors in {sent} requests"),
            errs == 0 && sent > 0,
        ));
        let o = &phases[1][s];
        let degraded = o.degradation.get("degraded").copied().unwrap_or(0);
        let crit = o.degradation.get("critical").copied().unwrap_or(0);
        checks.push(check(
            "degraded_level",
            "answers carrying defaults say `degraded`, never `critical`".into(),
            format!(
                "{degraded} degraded answers, {crit} critical, {} level mismatches",
                all.level_violations
            ),
            degraded > 0 && crit == 0 && all.level_violations == 0,
        ));
    }

    let defaults_served: u64 = all
        .values
        .values()
        .flat_map(|m| m.iter())
        .filter(|(status, _)| is_default_status(status))
        .map(|(_, n)| n)
        .sum();
    let mut observed = format!(
        "{defaults_served} default values checked ({} unavailable), {} differ",
        all.values_total("unavailable"),
        all.default_mismatches
    );
    if let Some(e) = all.mismatch_examples.first() {
        observed.push_str(&format!(" (e.g. {e})"));
    }
    checks.push(check(
        "exact_training_defaults",
        "every value served as `unavailable`/`missing`/… is the registry's training default".into(),
        observed,
        all.default_mismatches == 0 && all.values_total("unavailable") > 0,
    ));

    for (i, (sel, policy)) in policies.iter().enumerate() {
        if *policy != UnsafePolicy::Fail {
            continue;
        }
        let group = &sel.groups[0];
        let o = &phases[1][i];
        let crit = o.critical_by_group.get(group).copied().unwrap_or(0);
        let served = o.values_with(group, "unavailable");
        checks.push(check(
            &format!("fail_closed:{group}"),
            format!("503 `critical` for {group} (on_unsafe = \"fail\"), never its defaults"),
            format!("{crit} critical 503s, {served} unavailable values served"),
            crit > 0 && served == 0,
        ));
    }

    let breaker = match (before, mid, after) {
        (Ok(b), Ok(m), Ok(a)) => {
            let opened = a.sum("riffle_breaker_transitions_total", &[("to", "open")])
                - b.sum("riffle_breaker_transitions_total", &[("to", "open")]);
            let state = m.sum("riffle_breaker_state", &[]);
            check(
                "breaker_opened",
                "the circuit breaker opened".into(),
                format!("transitions to open +{opened}, state mid-outage {state} (2 = open)"),
                opened >= 1.0 || state >= 2.0,
            )
        }
        (b, m, a) => check(
            "breaker_opened",
            "the circuit breaker opened".into(),
            [b, m, a]
                .iter()
                .find_map(|s| s.as_ref().err().cloned())
                .unwrap_or_default(),
            false,
        ),
    };
    checks.push(breaker);
    let fallback = match (before, after) {
        (Ok(b), Ok(a)) => {
            let d = |name: &str, f: &[(&str, &str)]| a.sum(name, f) - b.sum(name, f);
            let served = d("riffle_values_served_total", &[("status", "unavailable")]);
            let failed =
                d("riffle_store_errors_total", &[]) + d("riffle_breaker_rejections_total", &[]);
            check(
                "fallback_metrics",
                "riffle_values_served_total{status=\"unavailable\"} and store errors / breaker rejections grew".into(),
                format!("unavailable values +{served}, store errors + breaker rejections +{failed}"),
                served > 0.0 && failed > 0.0,
            )
        }
        (b, a) => check(
            "fallback_metrics",
            "the fallback counters grew".into(),
            [b, a]
                .iter()
                .find_map(|s| s.as_ref().err().cloned())
                .unwrap_or_default(),
            false,
        ),
    };
    checks.push(fallback);

    let slo = policies
        .iter()
        .flat_map(|(s, _)| s.touched.iter())
        .filter_map(|g| registry.group(g))
        .map(|g| g.p99_slo)
        .max()
        .unwrap_or(Duration::ZERO);
    let budget = registry.store.timeout + slo;
    let p99 = Percentiles::of(&outage.latency).p99;
    checks.push(check(
        "outage_p99",
        format!(
            "p99 ≤ {:.1} ms (store timeout + largest p99 SLO)",
            budget.as_secs_f64() * 1000.0
        ),
        format!("p99 {p99:.2} ms over {} requests", outage.sent),
        outage.sent > 0 && p99 <= budget.as_secs_f64() * 1000.0,
    ));

    checks.push(check(
        "recovery",
        format!(
            "stored values served again within {}",
            humantime::format_duration(recovery_timeout)
        ),
        match recovery_ms {
            Some(ms) => format!("after {ms} ms"),
            None => "no stored value served after the restore".into(),
        },
        recovery_ms.is_some(),
    ));
    checks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::prom;

    /// One group that serves defaults when the store is gone, one that must answer 503.
    const REGISTRY: &str = r#"
[project]
name = "t"
[store]
timeout = "50ms"
[[entities]]
name = "user"
[[feature_groups]]
name = "safe"
entity = "user"
ttl = "1h"
freshness_slo = "1m"
p99_slo = "10ms"
features = [{ name = "a", type = "int64", default = 0 }]
[[feature_groups]]
name = "strict"
entity = "user"
ttl = "1h"
freshness_slo = "1m"
p99_slo = "10ms"
on_unsafe = "fail"
features = [{ name = "b", type = "int64", default = 0 }]
"#;

    /// `n` answers of `group` with every value in `status`, at `level`, each taking `ms`.
    fn answered(group: &str, status: &str, level: &str, n: u64, ms: u64) -> Stats {
        let mut s = Stats {
            sent: n,
            ok: n,
            values: [(group.to_owned(), [(status.to_owned(), n)].into())].into(),
            degradation: [(level.to_owned(), n)].into(),
            ..Stats::default()
        };
        for _ in 0..n {
            s.latency.record(ms * 1000).unwrap();
        }
        s
    }

    /// `n` 503 `critical` answers naming `group`, each taking `ms`.
    fn refused(group: &str, n: u64, ms: u64) -> Stats {
        let mut s = Stats {
            sent: n,
            errors: [("http_5xx", n)].into(),
            degradation: [("critical".to_owned(), n)].into(),
            critical_by_group: [(group.to_owned(), n)].into(),
            ..Stats::default()
        };
        for _ in 0..n {
            s.latency.record(ms * 1000).unwrap();
        }
        s
    }

    /// The counts of a drill that went as it should: stored values, then defaults for
    /// `safe` and 503s for `strict`, then stored values again. Phases × selections, in the
    /// order of `Selection::by_policy` (the defaults-serving groups first).
    fn good_phases() -> Vec<Vec<Stats>> {
        vec![
            vec![
                answered("safe", "fresh", "healthy", 10, 2),
                answered("strict", "fresh", "healthy", 10, 2),
            ],
            vec![
                answered("safe", "unavailable", "degraded", 20, 51),
                refused("strict", 20, 51),
            ],
            vec![
                answered("safe", "fresh", "healthy", 10, 2),
                answered("strict", "fresh", "healthy", 10, 2),
            ],
        ]
    }

    const BEFORE: &str = "# TYPE riffle_breaker_state gauge\nriffle_breaker_state 0\n\
riffle_breaker_transitions_total{from=\"closed\",to=\"open\"} 1\n\
riffle_values_served_total{group=\"safe\",status=\"fresh\"} 100\n\
riffle_store_errors_total{op=\"read\",kind=\"timeout\"} 2\n";
    const MID: &str = "riffle_breaker_state 2\n";
    const AFTER: &str = "# TYPE riffle_breaker_state gauge\nriffle_breaker_state 0\n\
riffle_breaker_transitions_total{from=\"closed\",to=\"open\"} 2\n\
riffle_breaker_transitions_total{from=\"open\",to=\"half_open\"} 1\n\
riffle_values_served_total{group=\"safe\",status=\"fresh\"} 120\n\
riffle_values_served_total{group=\"safe\",status=\"unavailable\"} 20\n\
riffle_store_errors_total{op=\"read\",kind=\"timeout\"} 7\n\
riffle_breaker_rejections_total 15\n";

    fn judge(
        phases: &[Vec<Stats>],
        scrapes: [&Scraped; 3],
        recovery_ms: Option<u64>,
    ) -> Vec<Check> {
        let registry = Registry::from_toml(REGISTRY).unwrap();
        let policies = Selection::by_policy(&registry, 0);
        verdict(
            &registry,
            Duration::from_secs(10),
            &policies,
            phases,
            (scrapes[0], scrapes[1], scrapes[2]),
            recovery_ms,
        )
    }

    fn failed(checks: &[Check]) -> Vec<&str> {
        checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.name.as_str())
            .collect()
    }

    #[test]
    fn a_drill_that_went_as_it_should_passes_every_check() {
        let [before, mid, after] = [BEFORE, MID, AFTER].map(|t| Ok(prom::parse(t)));
        let checks = judge(&good_phases(), [&before, &mid, &after], Some(350));
        let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "baseline",
                "outage_reached_server",
                "no_errors_serve_defaults",
                "degraded_level",
                "exact_training_defaults",
                "fail_closed:strict",
                "breaker_opened",
                "fallback_metrics",
                "outage_p99",
                "recovery",
            ]
        );
        assert_eq!(failed(&checks), Vec::<&str>::new());
    }

    #[test]
    fn a_breaker_that_never_opened_and_counters_that_never_moved_fail() {
        let still = "riffle_breaker_state 0\n\
riffle_breaker_transitions_total{from=\"closed\",to=\"open\"} 1\n\
riffle_values_served_total{group=\"safe\",status=\"unavailable\"} 0\n\
riffle_store_errors_total{op=\"read\",kind=\"timeout\"} 2\n";
        let [before, mid, after] = [still, still, still].map(|t| Ok(prom::parse(t)));
        let checks = judge(&good_phases(), [&before, &mid, &after], Some(350));
        assert_eq!(failed(&checks), ["breaker_opened", "fallback_metrics"]);
    }

    #[test]
    fn metrics_that_cannot_be_read_fail_the_checks_that_need_them() {
        let before = Ok(prom::parse(BEFORE));
        let gone: Scraped = Err("GET /metrics: connection failed".into());
        let after = Ok(prom::parse(AFTER));
        let checks = judge(&good_phases(), [&before, &gone, &after], Some(350));
        assert_eq!(failed(&checks), ["breaker_opened"]);
        let breaker = checks.iter().find(|c| c.name == "breaker_opened").unwrap();
        assert_eq!(breaker.observed, "GET /metrics: connection failed");
    }

    #[test]
    fn errors_wrong_defaults_leaks_slowness_and_no_recovery_fail() {
        let mut phases = good_phases();
        // A defaults-serving request failed, and a served default was not the default.
        phases[1][0].errors.insert("timeout", 1);
        phases[1][0].sent += 1;
        phases[1][0].default_mismatches = 1;
        // The fail-closed group was served its defaults instead of a 503.
        phases[1][1] = answered("strict", "unavailable", "degraded", 20, 51);
        // Slower than the store timeout (50 ms) plus the p99 SLO (10 ms).
        for _ in 0..6 {
            phases[1][0].latency.record(900_000).unwrap();
        }
        let [before, mid, after] = [BEFORE, MID, AFTER].map(|t| Ok(prom::parse(t)));
        let checks = judge(&phases, [&before, &mid, &after], None);
        assert_eq!(
            failed(&checks),
            [
                "no_errors_serve_defaults",
                "exact_training_defaults",
                "fail_closed:strict",
                "outage_p99",
                "recovery",
            ]
        );
    }

    #[test]
    fn an_outage_the_server_never_saw_fails() {
        let mut phases = good_phases();
        phases[1] = vec![
            answered("safe", "fresh", "healthy", 20, 2),
            answered("strict", "fresh", "healthy", 20, 2),
        ];
        let [before, mid, after] = [BEFORE, MID, AFTER].map(|t| Ok(prom::parse(t)));
        let checks = judge(&phases, [&before, &mid, &after], Some(10));
        assert_eq!(
            failed(&checks),
            [
                "outage_reached_server",
                "degraded_level",
                "exact_training_defaults",
                "fail_closed:strict",
            ]
        );
    }
}
