//! The generated alert rules under Prometheus's own tool: `promtool check rules` accepts the
//! rules of the fraud example (and of a registry with a Kafka-fed group), and `promtool test
//! rules` feeds synthetic series and checks which alerts fire — staleness, ingest lag, read
//! p99, breaker, in-flight, cache hit rate, default-rate spike, Redis memory, drift, dead letters, a
//! stalled ingest worker — and that none fires while every series is healthy.
//!
//! promtool comes from the Debian package `prometheus` (`scripts/test.sh` installs it). Without
//! it these tests fail under `CI=true` and are skipped, loudly, elsewhere.

use std::path::{Path, PathBuf};
use std::process::Command;

use riffle_ops::alerts::{rules, to_yaml, Rule};
use riffle_registry::Registry;
use serde_json::{json, Value};

const RUNBOOK: &str = "RUNBOOK.md";

fn fraud() -> Registry {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/fraud/riffle.toml");
    Registry::load(&path).expect("the fraud example is a valid registry")
}

/// The fraud example's serving groups plus one group fed by a Kafka source.
const STREAM: &str = r#"
[project]
name = "stream"
[[entities]]
name = "user"
join_key = "user_id"
[[sources]]
name = "transactions"
entity = "user"
kind = "kafka"
brokers = "127.0.0.1:9092"
topic = "tx"
group_id = "riffle"
fields = [{ name = "amount", type = "float64" }]
[[feature_groups]]
name = "velocity"
entity = "user"
source = "transactions"
ttl = "2h"
freshness_slo = "30s"
p99_slo = "10ms"
availability_slo = "99.9%"
features = [{ name = "n_1h", type = "int64", default = 0, aggregation = "count", window = "1h" }]
"#;

/// `promtool`, or `None` (skipping loudly) when it is absent outside CI.
fn promtool() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("promtool"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("promtool is required under CI (Debian package `prometheus`; scripts/test.sh installs it)");
        }
        eprintln!("\n!!! SKIPPED: promtool not found (apt-get install prometheus, or run scripts/test.sh)\n");
    }
    found
}

fn run(tool: &Path, args: &[&str], dir: &Path) -> String {
    let out = Command::new(tool)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

fn write_rules(reg: &Registry, dir: &Path) -> Vec<Rule> {
    let groups = rules(reg);
    std::fs::write(dir.join("rules.yml"), to_yaml(reg, &groups, RUNBOOK)).unwrap();
    groups.into_iter().flat_map(|g| g.rules).collect()
}

#[test]
fn promtool_accepts_the_fraud_rules() {
    let Some(tool) = promtool() else { return };
    for reg in [fraud(), Registry::from_toml(STREAM).unwrap()] {
        let dir = tempfile::tempdir().unwrap();
        let all = write_rules(&reg, dir.path());
        let text = run(&tool, &["check", "rules", "rules.yml"], dir.path());
        assert!(
            text.contains(&format!("SUCCESS: {} rules found", all.len())),
            "{text}"
        );
    }
}

/// The firing alert `rule` is expected to produce (no labels come from its expression).
fn fired(rule: &Rule) -> Value {
    let labels: serde_json::Map<String, Value> = rule
        .static_labels()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Value::String(v)))
        .collect();
    json!({
        "exp_labels": labels,
        "exp_annotations": {
            "summary": rule.summary,
            "description": rule.description,
            "runbook_url": rule.runbook_url(RUNBOOK),
        },
    })
}

fn find<'a>(all: &'a [Rule], alert: &str, label: Option<(&str, &str)>) -> &'a Rule {
    all.iter()
        .find(|r| {
            r.alert == alert
                && label.is_none_or(|(k, v)| r.labels.iter().any(|(lk, lv)| *lk == k && lv == v))
        })
        .unwrap_or_else(|| panic!("no rule {alert} {label:?}"))
}

/// Cumulative histogram buckets: `per_min` observations per minute at `value` seconds.
fn histogram(name: &str, labels: &str, bounds: &[f64], value: f64, per_min: u64) -> Vec<Value> {
    let mut out: Vec<Value> = bounds
        .iter()
        .map(|b| {
            let rate = if value <= *b { per_min } else { 0 };
            json!({"series": format!("{name}_bucket{{{labels}le=\"{b}\"}}"), "values": format!("0+{rate}x120")})
        })
        .collect();
    out.push(json!({"series": format!("{name}_bucket{{{labels}le=\"+Inf\"}}"), "values": format!("0+{per_min}x120")}));
    out.push(json!({"series": format!("{name}_count{{{labels}}}"), "values": format!("0+{per_min}x120")}));
    out
}

fn latency_bounds() -> Vec<f64> {
    (0..16).map(|i| 0.0001 * 2f64.powi(i)).collect()
}

const AGE_BOUNDS: [f64; 12] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 600.0, 1800.0, 3600.0, 21600.0, 86400.0, 604800.0,
];

/// Series for a deployment; `sick` breaks everything the alerts watch.
fn series(reg: &Registry, sick: bool) -> Vec<Value> {
    let mut s = Vec::new();
    let latency = if sick { 0.05 } else { 0.001 };
    s.extend(histogram(
        "riffle_http_request_duration_seconds",
        "endpoint=\"/get-online-features\",method=\"POST\",status_class=\"2xx\",",
        &latency_bounds(),
        latency,
        600,
    ));
    for g in &reg.groups {
        let age = if sick && g.freshness_slo.as_secs() <= 60 {
            200.0
        } else {
            0.5
        };
        s.extend(histogram(
            "riffle_value_age_seconds",
            &format!("group=\"{}\",", g.name),
            &AGE_BOUNDS,
            age,
            600,
        ));
        // Healthy: 5% defaults all along. Sick: 60% defaults in the last 20 minutes.
        let defaults = if sick {
            "0+30x100 3000+360x20"
        } else {
            "0+30x120"
        };
        s.push(json!({"series": format!("riffle_values_served_total{{group=\"{}\",status=\"missing\"}}", g.name), "values": defaults}));
        let fresh = if sick {
            "0+570x100 57000+240x20"
        } else {
            "0+570x120"
        };
        s.push(json!({"series": format!("riffle_values_served_total{{group=\"{}\",status=\"fresh\"}}", g.name), "values": fresh}));
    }
    for source in &reg.sources {
        let lag = if sick { "1+10x120" } else { "1+0x120" };
        s.push(json!({"series": format!("riffle_source_watermark_age_seconds{{source=\"{}\"}}", source.name), "values": lag}));
        s.push(json!({"series": format!("riffle_ingest_events_read_total{{source=\"{}\"}}", source.name), "values": "0+1000x120"}));
        let dead = if sick { "0+100x120" } else { "0+0x120" };
        s.push(json!({"series": format!("riffle_ingest_dead_letters_total{{source=\"{}\",reason=\"decode\"}}", source.name), "values": dead}));
        let healthy = if sick { "1x60 0x60" } else { "1x120" };
        s.push(json!({"series": format!("riffle_ingest_healthy{{source=\"{}\"}}", source.name), "values": healthy}));
        s.push(json!({"series": format!("riffle_ingest_seconds_since_flush{{source=\"{}\"}}", source.name), "values": "0.1+0x120"}));
        let gaps = if sick { "0x100 1x20" } else { "0x120" };
        s.push(json!({"series": format!("riffle_ingest_kafka_offset_gaps{{source=\"{}\"}}", source.name), "values": gaps}));
        // Partition 1 is taken by nobody half-way through when sick.
        let owned = if sick { "1x60 0x60" } else { "1x120" };
        for p in 0..2 {
            let values = if p == 1 { owned } else { "1x120" };
            s.push(json!({"series": format!("riffle_ingest_group_partition_owned{{source=\"{}\",partition=\"{p}\"}}", source.name), "values": values}));
            s.push(json!({"series": format!("riffle_ingest_group_lag_seconds{{source=\"{}\",partition=\"{p}\"}}", source.name), "values": "0+0x120"}));
        }
    }
    let breaker = if sick { "0x60 2x60" } else { "0x120" };
    s.push(json!({"series": "riffle_breaker_state", "values": breaker}));
    s.push(json!({"series": "riffle_breaker_transitions_total{from=\"closed\",to=\"open\"}", "values": if sick { "0x60 1x60" } else { "0x120" }}));
    let in_flight = if sick { reg.store.max_in_flight } else { 3 };
    s.push(json!({"series": "riffle_store_in_flight", "values": format!("{in_flight}+0x120")}));
    s.push(json!({"series": "riffle_store_in_flight_limit", "values": format!("{}+0x120", reg.store.max_in_flight)}));
    s.push(json!({"series": "riffle_http_in_flight", "values": "2+0x120"}));
    s.push(json!({"series": "riffle_http_shed_total", "values": "0+0x120"}));
    let hits = if sick { "0+100x120" } else { "0+900x120" };
    s.push(json!({"series": "riffle_cache_hits_total", "values": hits}));
    s.push(json!({"series": "riffle_cache_misses_total", "values": "0+400x120"}));
    s.push(json!({"series": "riffle_responses_total{endpoint=\"/get-online-features\",degradation=\"healthy\"}", "values": "0+600x120"}));
    s.push(json!({"series": "riffle_store_errors_total{op=\"read\",kind=\"overloaded\"}", "values": "0+0x120"}));
    s.push(json!({"series": "riffle_corrupt_rows_total{group=\"x\"}", "values": "0+0x120"}));
    let psi = if sick { "0.5+0x120" } else { "0.05+0x120" };
    s.push(json!({"series": "riffle_feature_psi{group=\"user_profile\",feature=\"account_age_days\"}", "values": psi}));
    s.push(json!({"series": "riffle_feature_psi_threshold{group=\"user_profile\",feature=\"account_age_days\"}", "values": "0.2+0x120"}));
    let used = if sick { "900+0x120" } else { "300+0x120" };
    s.push(json!({"series": "redis_memory_used_bytes{instance=\"redis:9121\"}", "values": used}));
    s.push(json!({"series": "redis_memory_max_bytes{instance=\"redis:9121\"}", "values": "1000+0x120"}));
    let replica_healthy = if sick { "1x60 0x60" } else { "1x120" };
    s.push(json!({"series": "riffle_store_replica_healthy{replica=\"127.0.0.1:6380\"}", "values": replica_healthy}));
    let replica_lag = if sick { "4+0x120" } else { "0.02+0x120" };
    s.push(json!({"series": "riffle_store_replica_lag_seconds{replica=\"127.0.0.1:6380\"}", "values": replica_lag}));
    s
}

/// An expected alert of the synthetic replica series.
fn with_replica(mut alert: Value) -> Value {
    alert["exp_labels"]["replica"] = json!("127.0.0.1:6380");
    alert
}

/// Per alert name, the alerts expected to fire.
type Expected = Vec<(String, Vec<Value>)>;

/// Runs `promtool test rules` on `reg`'s rules with one sick and one healthy test case;
/// `expect(sick, all rules)` lists (alert name, the alerts expected to fire).
fn promtool_test(reg: &Registry, alerts: &[&str], expect_sick: &dyn Fn(&[Rule]) -> Expected) {
    let Some(tool) = promtool() else { return };
    let dir = tempfile::tempdir().unwrap();
    let all = write_rules(reg, dir.path());
    let eval = "115m";
    let healthy: Vec<Value> = alerts
        .iter()
        .map(|a| json!({"eval_time": eval, "alertname": a, "exp_alerts": []}))
        .collect();
    let sick: Vec<Value> = expect_sick(&all)
        .into_iter()
        .map(|(a, exp)| json!({"eval_time": eval, "alertname": a, "exp_alerts": exp}))
        .collect();
    let tests = json!({
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {"name": "healthy", "interval": "1m", "input_series": series(reg, false), "alert_rule_test": healthy},
            {"name": "sick", "interval": "1m", "input_series": series(reg, true), "alert_rule_test": sick},
        ],
    });
    std::fs::write(dir.path().join("tests.yml"), tests.to_string()).unwrap();
    let text = run(&tool, &["test", "rules", "tests.yml"], dir.path());
    assert!(text.contains("SUCCESS"), "{text}");
}

#[test]
fn promtool_fires_the_fraud_alerts_only_when_sick() {
    let reg = fraud();
    let alerts = [
        "RiffleFeatureStale",
        "RiffleReadP99AboveSlo",
        "RiffleBreakerOpen",
        "RiffleStoreInFlightHigh",
        "RiffleCacheHitRateLow",
        "RiffleDefaultRateSpike",
        "RiffleRedisMemoryHigh",
        "RiffleRequestsShed",
        "RiffleStoreErrors",
        "RiffleCorruptRows",
        "RiffleCriticalResponses",
        "RiffleFeatureDrift",
        "RiffleReadReplicaUnhealthy",
        "RiffleReadReplicaLagging",
    ];
    promtool_test(&reg, &alerts, &|all| {
        let stale: Vec<Value> = reg
            .groups
            .iter()
            .filter(|g| g.freshness_slo.as_secs() <= 60)
            .map(|g| fired(find(all, "RiffleFeatureStale", Some(("group", &g.name)))))
            .collect();
        assert!(
            stale.len() >= 2,
            "velocity (30s) and session (60s) go stale"
        );
        let p99: Vec<Value> = all
            .iter()
            .filter(|r| r.alert == "RiffleReadP99AboveSlo")
            .map(fired)
            .collect();
        let defaults: Vec<Value> = reg
            .groups
            .iter()
            .map(|g| {
                fired(find(
                    all,
                    "RiffleDefaultRateSpike",
                    Some(("group", &g.name)),
                ))
            })
            .collect();
        let mut drift = fired(find(all, "RiffleFeatureDrift", None));
        drift["exp_labels"]["group"] = json!("user_profile");
        drift["exp_labels"]["feature"] = json!("account_age_days");
        let mut redis = fired(find(all, "RiffleRedisMemoryHigh", None));
        redis["exp_labels"]["instance"] = json!("redis:9121");
        vec![
            ("RiffleFeatureStale".into(), stale),
            ("RiffleReadP99AboveSlo".into(), p99),
            (
                "RiffleBreakerOpen".into(),
                vec![fired(find(all, "RiffleBreakerOpen", None))],
            ),
            (
                "RiffleStoreInFlightHigh".into(),
                vec![fired(find(all, "RiffleStoreInFlightHigh", None))],
            ),
            (
                "RiffleCacheHitRateLow".into(),
                vec![fired(find(all, "RiffleCacheHitRateLow", None))],
            ),
            ("RiffleDefaultRateSpike".into(), defaults),
            ("RiffleRedisMemoryHigh".into(), vec![redis]),
            (
                "RiffleReadReplicaUnhealthy".into(),
                vec![with_replica(fired(find(
                    all,
                    "RiffleReadReplicaUnhealthy",
                    None,
                )))],
            ),
            (
                "RiffleReadReplicaLagging".into(),
                vec![with_replica(fired(find(
                    all,
                    "RiffleReadReplicaLagging",
                    None,
                )))],
            ),
            ("RiffleFeatureDrift".into(), vec![drift]),
            ("RiffleRequestsShed".into(), vec![]),
            ("RiffleCorruptRows".into(), vec![]),
        ]
    });
}

#[test]
fn promtool_fires_lag_and_dead_letter_alerts_of_a_stream_source() {
    let reg = Registry::from_toml(STREAM).unwrap();
    let alerts = [
        "RiffleFeatureStale",
        "RiffleIngestLag",
        "RiffleIngestDeadLetters",
        "RiffleIngestStalled",
        "RiffleIngestPartitionsUnowned",
        "RiffleIngestEventsNeverDelivered",
    ];
    promtool_test(&reg, &alerts, &|all| {
        vec![
            (
                "RiffleFeatureStale".into(),
                vec![fired(find(
                    all,
                    "RiffleFeatureStale",
                    Some(("group", "velocity")),
                ))],
            ),
            (
                "RiffleIngestLag".into(),
                vec![fired(find(
                    all,
                    "RiffleIngestLag",
                    Some(("source", "transactions")),
                ))],
            ),
            (
                "RiffleIngestDeadLetters".into(),
                vec![fired(find(
                    all,
                    "RiffleIngestDeadLetters",
                    Some(("source", "transactions")),
                ))],
            ),
            (
                "RiffleIngestStalled".into(),
                vec![fired(find(
                    all,
                    "RiffleIngestStalled",
                    Some(("source", "transactions")),
                ))],
            ),
            (
                "RiffleIngestPartitionsUnowned".into(),
                vec![fired(find(
                    all,
                    "RiffleIngestPartitionsUnowned",
                    Some(("source", "transactions")),
                ))],
            ),
            (
                "RiffleIngestEventsNeverDelivered".into(),
                vec![fired(find(
                    all,
                    "RiffleIngestEventsNeverDelivered",
                    Some(("source", "transactions")),
                ))],
            ),
        ]
    });
}

/// The lag alert fires on the broker's view alone: a partition whose oldest uncommitted
/// message ages (a member holds it without committing) while every watermark looks fine.
#[test]
fn promtool_fires_the_lag_alert_on_the_consumer_groups_lag_alone() {
    let Some(tool) = promtool() else { return };
    let reg = Registry::from_toml(STREAM).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let all = write_rules(&reg, dir.path());
    let lag = find(&all, "RiffleIngestLag", Some(("source", "transactions")));
    let quiet = |name: &str| json!({"series": format!("{name}{{source=\"transactions\"}}"), "values": "1+0x30"});
    let tests = json!({
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [
                quiet("riffle_source_watermark_age_seconds"),
                quiet("riffle_ingest_lag_seconds"),
                {"series": "riffle_ingest_group_lag_seconds{source=\"transactions\",partition=\"2\"}", "values": "0+60x30"},
            ],
            "alert_rule_test": [
                {"eval_time": "3m", "alertname": "RiffleIngestLag", "exp_alerts": []},
                {"eval_time": "25m", "alertname": "RiffleIngestLag", "exp_alerts": [fired(lag)]},
            ],
        }],
    });
    std::fs::write(
        dir.path().join("tests.yml"),
        serde_json::to_string(&tests).unwrap(),
    )
    .unwrap();
    run(&tool, &["test", "rules", "tests.yml"], dir.path());
}
