//! An invalid registry is bad usage: exit 2, and every problem is listed with its path.

mod common;

use common::TestCommand;

const BROKEN: &str = r#"
[project]
name = "fraud"

[[entities]]
name = "user"
join_key = "user_id"
key_type = "string"

[[feature_groups]]
name = "user_velocity"
entity = "customer"
version = 1
ttl = "2 fortnights"
freshness_slo = "30s"
staleness_limit = "10m"

[[feature_groups.features]]
name = "tx_count_1h"
type = "int64"
default = "zero"

[[feature_groups.features]]
name = "tx_sum_1h"
type = "decimal"
default = 0.0
"#;

const PROBLEMS: [&str; 4] = [
    "feature_groups[0].entity",
    "feature_groups[0].ttl",
    "feature_groups[0].features[0].default",
    "feature_groups[0].features[1].type",
];

#[test]
fn serve_with_an_invalid_registry_exits_2_listing_every_problem() {
    let mut cmd = TestCommand::new();
    let config = cmd.write("broken.toml", BROKEN);
    let (_, stderr) = cmd
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--listen", "127.0.0.1:0"])
        .expect_code(2);
    assert!(stderr.contains("4 problem(s)"), "{stderr}");
    for path in PROBLEMS {
        assert!(stderr.contains(path), "{path} missing from:\n{stderr}");
    }
}

#[test]
fn serve_with_a_bad_feature_log_exits_2_naming_each_field() {
    let mut cmd = TestCommand::new();
    let fraud = std::fs::read_to_string(common::fraud_config()).expect("the fraud registry");
    let bad = fraud.replacen(
        "[store]",
        "[serve.logging]\nsample_rate = 0.0\npath = \"\"\nqueue = 0\n\n[store]",
        1,
    );
    let config = cmd.write("riffle.toml", &bad);
    let (_, stderr) = cmd
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--listen", "127.0.0.1:0"])
        .expect_code(2);
    assert!(stderr.contains("3 problem(s)"), "{stderr}");
    for path in [
        "serve.logging.sample_rate: 0 is not a share of entities",
        "serve.logging.path: must name a folder",
        "serve.logging.queue: must be at least 1",
    ] {
        assert!(stderr.contains(path), "{path} missing from:\n{stderr}");
    }
}

#[test]
fn load_with_an_invalid_registry_exits_2_listing_every_problem() {
    let mut cmd = TestCommand::new();
    cmd.write("riffle.toml", BROKEN);
    let csv = common::fraud_profiles();
    // --config defaults to ./riffle.toml
    let (_, stderr) = cmd
        .args(["load", "--group", "user_profile"])
        .arg(&csv)
        .expect_code(2);
    for path in PROBLEMS {
        assert!(stderr.contains(path), "{path} missing from:\n{stderr}");
    }
}

#[test]
fn a_missing_registry_file_is_bad_usage() {
    let (_, stderr) = TestCommand::new()
        .args(["serve", "--config", "nowhere.toml"])
        .expect_code(2);
    assert!(stderr.contains("nowhere.toml"), "{stderr}");
}

#[test]
fn a_bad_store_url_is_bad_usage() {
    let config = common::fraud_config();
    let (_, stderr) = TestCommand::new()
        .arg("load")
        .arg("--config")
        .arg(&config)
        .args(["--store", "memcached://x", "--group", "user_profile"])
        .arg(common::fraud_profiles())
        .expect_code(2);
    assert!(stderr.contains("memcached://x"), "{stderr}");
}

#[test]
fn unknown_flags_are_bad_usage() {
    TestCommand::new()
        .args(["load", "--frobnicate"])
        .expect_code(2);
}
