//! Feature distributions and drift, end to end with the real binary over a real Redis:
//! `riffle serve` samples the values it serves, `riffle baseline save` stores them, and a
//! server started with `--baseline` exports a PSI per feature that stays low for the same
//! traffic and crosses the threshold when every value becomes a training default.

mod common;
mod ops_support;

use common::TestCommand;
use ops_support::{http_get, json, Served};

/// The value of the sample `name{labels}` in a `/metrics` text, if present.
fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
    let prefix = format!("{name}{{{labels}}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

fn traffic(config: &std::path::Path, base: &str, cold: &str) {
    let mut cmd = TestCommand::new();
    cmd.args(["loadtest", "--config"])
        .arg(config)
        .args([
            "--target",
            base,
            "--rate",
            "200",
            "--duration",
            "2s",
            "--quiet",
        ])
        .args([
            "--users",
            "50",
            "--cold-share",
            cold,
            "--groups",
            "velocity",
        ]);
    cmd.expect_code(0);
}

#[test]
fn baseline_save_and_psi_against_it() {
    let served = Served::start("1s", 50);
    let config = &served.config;

    // Nothing served yet: no baseline to take.
    let cmd = TestCommand::new();
    let file = cmd.dir().join("baseline.json");
    let mut save = TestCommand::new();
    save.args(["baseline", "save", "--target", &served.base, "--out"])
        .arg(&file);
    let (_, stderr) = save.expect_code(1);
    assert!(stderr.contains("has not served"), "{stderr}");

    // Sample every request while taking the baseline.
    let sampler = served.beside(&["--drift-sample-every", "1"]);
    traffic(config, &sampler.base, "0");
    let metrics = http_get(&sampler.base, "/metrics").unwrap();
    let labels = r#"group="velocity",feature="tx_count_1h""#;
    let samples = sample(&metrics, "riffle_feature_samples", labels).unwrap();
    assert!(samples >= 380.0, "{samples}");
    // u0..u49 hold tx_count_1h = i % 7 + 1: a mean within 1..7, no defaults.
    let mean = sample(&metrics, "riffle_feature_value_mean", labels).unwrap();
    assert!((1.0..=7.0).contains(&mean), "{mean}");
    assert!(sample(&metrics, "riffle_feature_value_p99", labels).unwrap() >= 7.0);
    assert_eq!(
        sample(&metrics, "riffle_feature_default_ratio", labels),
        Some(0.0)
    );
    assert!(sample(&metrics, "riffle_feature_psi", labels).is_none());

    let mut save = TestCommand::new();
    save.args(["baseline", "save", "--target", &sampler.base, "--out"])
        .arg(&file);
    let (stdout, _) = save.expect_code(0);
    assert!(stdout.contains("saved the distributions"), "{stdout}");
    let snap = json(&std::fs::read_to_string(&file).unwrap());
    assert_eq!(snap["version"], 1);
    assert!(snap["features"].as_array().unwrap().len() >= 3);

    // A server with the baseline: the same traffic is not drift, all-defaults traffic is.
    let file_arg = file.to_str().unwrap();
    let judged = served.beside(&["--baseline", file_arg, "--drift-sample-every", "1"]);
    traffic(config, &judged.base, "0");
    let metrics = http_get(&judged.base, "/metrics").unwrap();
    let psi = sample(&metrics, "riffle_feature_psi", labels).unwrap();
    assert!(psi < 0.2, "same traffic, PSI {psi}");
    assert_eq!(
        sample(&metrics, "riffle_feature_psi_threshold", labels),
        Some(0.2)
    );

    let drifted = served.beside(&["--baseline", file_arg, "--drift-sample-every", "1"]);
    traffic(config, &drifted.base, "1");
    let metrics = http_get(&drifted.base, "/metrics").unwrap();
    let psi = sample(&metrics, "riffle_feature_psi", labels).unwrap();
    assert!(psi > 0.2, "all defaults, PSI {psi}");
    assert_eq!(
        sample(&metrics, "riffle_feature_default_ratio", labels),
        Some(1.0)
    );

    // A baseline that is not one is refused at start.
    let mut bad = TestCommand::new();
    let junk = bad.write("junk.json", "{\"nope\": 1}");
    bad.args(["serve", "--config"])
        .arg(config)
        .args(["--store", &served.redis.url(), "--baseline"])
        .arg(junk);
    let (_, stderr) = bad.expect_code(2);
    assert!(stderr.contains("not a distribution snapshot"), "{stderr}");
    // An unreachable target.
    let mut save = TestCommand::new();
    let nobody = format!("http://127.0.0.1:{}", riffle_testkit::free_port());
    save.args(["baseline", "save", "--target", &nobody, "--out"])
        .arg(&file);
    let (_, stderr) = save.expect_code(1);
    assert!(stderr.contains("cannot reach"), "{stderr}");
}
