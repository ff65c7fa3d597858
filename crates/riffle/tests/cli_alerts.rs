//! `riffle alerts` and `riffle runbook` with the real binary on the fraud example: the rules
//! pass `promtool check rules` (skipped loudly without promtool outside CI), every rule's
//! `runbook_url` anchor is a section of the generated runbook, the runbook names every group
//! with its SLOs and the deployment's addresses, `--dashboard` is a Grafana dashboard, and
//! an invalid registry exits 2. (`promtool test rules` is in `riffle-ops/tests`.)

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::{fraud_config, TestCommand};
use riffle_registry::{format_duration, Registry};
use serde_json::Value;

fn run(args: &[&str]) -> String {
    let mut cmd = TestCommand::new();
    cmd.args(args).arg("--config").arg(fraud_config());
    cmd.expect_code(0).0
}

/// The anchors the rules link to (`runbook_url: "RUNBOOK.md#anchor"`).
fn linked_anchors(rules: &str) -> BTreeSet<String> {
    rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("runbook_url: \"RUNBOOK.md#"))
        .map(|a| a.trim_end_matches('"').to_owned())
        .collect()
}

#[test]
fn every_alert_links_to_a_runbook_section_that_names_every_group() {
    let rules = run(&["alerts"]);
    let runbook = run(&["runbook"]);
    let anchors = linked_anchors(&rules);
    assert!(anchors.len() >= 5, "{rules}");
    for anchor in &anchors {
        assert!(
            runbook.contains(&format!("<a id=\"{anchor}\"></a>")),
            "no section {anchor} in the runbook"
        );
    }
    assert_eq!(
        rules.matches("- alert: ").count(),
        rules.matches("runbook_url: ").count()
    );
    for key in ["severity: ", "summary: ", "description: "] {
        assert_eq!(
            rules.matches("- alert: ").count(),
            rules.matches(key).count()
        );
    }
    // Ten scenarios, this deployment's groups, SLOs and addresses.
    assert_eq!(runbook.matches("<a id=\"scenario-").count(), 10);
    let reg = Registry::load(&fraud_config()).unwrap();
    for g in &reg.groups {
        assert!(runbook.contains(&format!("`{}`", g.name)), "{}", g.name);
        let row = format!("| `{}` |", g.name);
        let line = runbook.lines().find(|l| l.starts_with(&row)).unwrap();
        assert!(line.contains(&format_duration(g.freshness_slo)), "{line}");
        assert!(
            line.contains(&format_duration(g.freshness_slo * 2)),
            "{line}"
        );
        // The alert's threshold for the group is 2x its freshness SLO, in seconds.
        let secs = (g.freshness_slo * 2).as_secs();
        if secs <= 604_800 {
            assert!(rules.contains(&format!(
                "riffle_value_age_seconds_bucket{{group=\"{}\"}}[5m]))) > {secs}",
                g.name
            )));
        }
    }
    assert!(runbook.contains(&format!("http://{}", reg.serve.listen)));
    assert!(runbook.contains(&reg.store.url));
    assert!(runbook.contains("riffle lag --config"));
    assert!(runbook.contains("riffle check --config"));
}

#[test]
fn out_writes_rules_that_promtool_accepts() {
    let mut cmd = TestCommand::new();
    let out = cmd.dir().join("rules.yml");
    cmd.args(["alerts", "--runbook-url", "https://wiki.example/riffle"])
        .arg("--config")
        .arg(fraud_config())
        .arg("--out")
        .arg(&out);
    let (stdout, _) = cmd.expect_code(0);
    assert!(stdout.is_empty());
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("runbook_url: \"https://wiki.example/riffle#scenario-"));
    let Ok(check) = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&out)
        .output()
    else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "promtool is required under CI (Debian package prometheus)"
        );
        eprintln!(
            "\n!!! SKIPPED promtool check: promtool not found (apt-get install prometheus)\n"
        );
        return;
    };
    let said = String::from_utf8_lossy(&check.stdout).into_owned()
        + &String::from_utf8_lossy(&check.stderr);
    assert!(check.status.success(), "{said}");
    assert!(said.contains("SUCCESS"), "{said}");
}

#[test]
fn dashboard_is_grafana_json_over_riffles_metrics() {
    let text = run(&["alerts", "--dashboard"]);
    let d: Value = serde_json::from_str(&text).unwrap();
    let panels = d["panels"].as_array().unwrap();
    let titles: Vec<&str> = panels.iter().filter_map(|p| p["title"].as_str()).collect();
    for t in [
        "Read latency percentiles",
        "Hot-cache hit rate",
        "Circuit breaker state",
        "Ingest lag per source",
    ] {
        assert!(titles.contains(&t), "{titles:?}");
    }
    for metric in [
        "riffle_http_request_duration_seconds_bucket",
        "riffle_responses_total",
        "riffle_cache_hits_total",
        "riffle_breaker_state",
        "riffle_store_in_flight",
        "riffle_source_watermark_age_seconds",
    ] {
        assert!(text.contains(metric), "{metric}");
    }
}

#[test]
fn an_invalid_registry_exits_2() {
    for sub in ["alerts", "runbook"] {
        let mut cmd = TestCommand::new();
        let config = cmd.write(
            "riffle.toml",
            "[[feature_groups]]\nname = \"g\"\nentity = \"nobody\"\n",
        );
        cmd.arg(sub).arg("--config").arg(config);
        let (_, stderr) = cmd.expect_code(2);
        assert!(stderr.contains("feature_groups[0]"), "{stderr}");
    }
}
