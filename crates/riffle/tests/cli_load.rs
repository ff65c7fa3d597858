//! `riffle load` end to end: the real binary into an embedded store (read back afterwards)
//! and into a real Redis (read back with redis-cli).

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{fraud_config, fraud_profiles, TestCommand};
use riffle_core::FeatureValue;
use riffle_registry::Registry;
use riffle_store::{EntityRead, OnlineStore, RowRead, StoreLimits, StoreUrl};
use riffle_testkit::RedisServer;
use serde_json::Value;

const WITH_BAD_ROWS: &str = "user_id,account_age_days,credit_score_bucket,is_premium
u1,730,4,true
u2,abc,7,false
u3,3650,1,true
,1,1,true
u5,10,1
u6,10,2,false
";

fn load<'a>(
    cmd: &'a mut TestCommand,
    store: &str,
    group: &str,
    file: &Path,
) -> &'a mut TestCommand {
    cmd.arg("load")
        .arg("--config")
        .arg(fraud_config())
        .args(["--store", store, "--group", group])
        .arg(file)
}

fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"))
}

/// Reads user_profile rows back from an embedded store the binary wrote.
fn read_profiles(dir: &Path, ids: &[&str]) -> Vec<Option<Vec<FeatureValue>>> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let registry = Arc::new(Registry::load(&fraud_config()).unwrap());
        let limits = StoreLimits::from_settings(&registry.store);
        let gid = registry.group("user_profile").unwrap().id;
        let store = OnlineStore::open(&StoreUrl::Embedded(dir.into()), registry, limits)
            .await
            .unwrap();
        let groups = [gid];
        let reads: Vec<EntityRead> = ids
            .iter()
            .map(|id| EntityRead {
                entity: 0,
                id,
                groups: &groups,
            })
            .collect();
        store
            .read(&reads)
            .await
            .unwrap()
            .into_iter()
            .map(|mut rows| match rows.remove(0) {
                RowRead::Found(row) => Some(row.values),
                _ => None,
            })
            .collect()
    })
}

#[test]
fn loads_the_fraud_profiles_into_the_embedded_store() {
    let mut cmd = TestCommand::new();
    let data = cmd.dir().join("data");
    let store = format!("embedded:{}", data.display());
    let (stdout, _) = load(&mut cmd, &store, "user_profile", &fraud_profiles())
        .arg("--json")
        .expect_code(0);
    let summary = json(&stdout);
    assert_eq!(summary["rows_read"], 3);
    assert_eq!(summary["rows_written"], 3);
    assert_eq!(summary["rows_skipped"], 0);
    assert_eq!(summary["rows_not_written"], 0);
    assert_eq!(summary["format"], "csv");
    let rows = read_profiles(&data, &["u1", "u2", "u3", "u4"]);
    assert_eq!(
        rows[0],
        Some(vec![
            FeatureValue::Int64(730),
            FeatureValue::Int64(4),
            FeatureValue::Bool(true)
        ])
    );
    assert!(rows[1].is_some() && rows[2].is_some());
    assert_eq!(rows[3], None);
}

#[test]
fn the_table_summary_shows_the_counts() {
    let mut cmd = TestCommand::new();
    let (stdout, _) = load(
        &mut cmd,
        "embedded:./data",
        "user_profile",
        &fraud_profiles(),
    )
    .expect_code(0);
    let line = |name: &str| {
        stdout
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("no {name:?} line in:\n{stdout}"))
            .split_whitespace()
            .last()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(line("rows read"), "3");
    assert_eq!(line("rows written"), "3");
    assert_eq!(line("rows skipped"), "0");
}

#[test]
fn bad_rows_are_reported_by_line_and_skipped() {
    let mut cmd = TestCommand::new();
    let file = cmd.write("profiles.csv", WITH_BAD_ROWS);
    let (stdout, _) = load(&mut cmd, "embedded:./data", "user_profile", &file).expect_code(0);
    assert!(
        stdout.contains("line 3: account_age_days: expected int64"),
        "{stdout}"
    );
    assert!(
        stdout.contains("line 5: user_id: entity id is empty"),
        "{stdout}"
    );
    assert!(
        stdout.contains("line 6: 3 field(s) where the header has 4"),
        "{stdout}"
    );
    let data = cmd.dir().join("data");
    let rows = read_profiles(&data, &["u1", "u2", "u3", "u6"]);
    assert!(rows[0].is_some() && rows[2].is_some() && rows[3].is_some());
    assert_eq!(rows[1], None);
}

#[test]
fn strict_writes_nothing_when_any_row_is_bad() {
    let mut cmd = TestCommand::new();
    let file = cmd.write("profiles.csv", WITH_BAD_ROWS);
    let (stdout, stderr) = load(&mut cmd, "embedded:./data", "user_profile", &file)
        .args(["--strict", "--json"])
        .expect_code(1);
    let summary = json(&stdout);
    assert_eq!(summary["rows_written"], 0);
    assert_eq!(summary["errors"][0]["line"], 3);
    assert!(
        stderr.contains("first at line 3; nothing was written"),
        "{stderr}"
    );
    let rows = read_profiles(&cmd.dir().join("data"), &["u1", "u3", "u6"]);
    assert_eq!(rows, vec![None, None, None]);
}

#[test]
fn a_header_that_does_not_fit_the_group_loads_nothing() {
    let mut cmd = TestCommand::new();
    let (_, stderr) = load(
        &mut cmd,
        "embedded:./data",
        "user_historical",
        &fraud_profiles(),
    )
    .expect_code(2);
    assert!(stderr.contains("nothing was loaded"), "{stderr}");
    assert!(
        stderr.contains("\"account_age_days\" is not a feature of group user_historical"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "missing feature column(s) avg_tx_90d, distinct_merchants_7d, tx_count_24h, tx_sum_24h"
        ),
        "{stderr}"
    );
}

#[test]
fn ndjson_is_loaded_with_a_format_override() {
    let mut cmd = TestCommand::new();
    let file = cmd.write(
        "historical.txt",
        "{\"user_id\": \"u1\", \"tx_count_24h\": 3, \"tx_sum_24h\": 42.5, \"avg_tx_90d\": 14.0, \"distinct_merchants_7d\": 2, \"event_timestamp\": \"2026-11-26T12:00:00Z\"}\n\
         {\"user_id\": \"u2\", \"tx_count_24h\": 1.5, \"tx_sum_24h\": 1, \"avg_tx_90d\": 1.0, \"distinct_merchants_7d\": 1}\n",
    );
    let (stdout, _) = load(&mut cmd, "embedded:./data", "user_historical", &file)
        .args(["--format", "ndjson", "--json"])
        .expect_code(0);
    let summary = json(&stdout);
    assert_eq!(summary["format"], "ndjson");
    assert_eq!(summary["rows_written"], 1);
    assert_eq!(summary["errors"][0]["line"], 2);
    // Without the override the extension says nothing: bad usage.
    let mut again = TestCommand::new();
    let file = again.write("historical.txt", "{}\n");
    load(&mut again, "embedded:./data", "user_historical", &file).expect_code(2);
}

#[test]
fn loads_into_redis_with_the_documented_key_layout() {
    let redis = RedisServer::start().expect("redis-server starts");
    let mut cmd = TestCommand::new();
    let (stdout, _) = load(&mut cmd, &redis.url(), "user_profile", &fraud_profiles())
        .arg("--json")
        .expect_code(0);
    assert_eq!(json(&stdout)["rows_written"], 3);
    assert_eq!(redis.cli(&["HLEN", "fraud:{user:u1}"]).unwrap(), "1");
    assert_eq!(
        redis
            .cli(&["HEXISTS", "fraud:{user:u1}", "user_profile@1"])
            .unwrap(),
        "1"
    );
    let ttl: i64 = redis
        .cli(&["PTTL", "fraud:{user:u3}"])
        .unwrap()
        .parse()
        .unwrap();
    assert!(ttl > 0, "keys expire: {ttl}");

    let mut cmd = TestCommand::new();
    let file = cmd.write(
        "historical.ndjson",
        "{\"user_id\": \"u1\", \"tx_count_24h\": 3, \"tx_sum_24h\": 42.5, \"avg_tx_90d\": 14.0, \"distinct_merchants_7d\": 2}\n",
    );
    load(&mut cmd, &redis.url(), "user_historical", &file).expect_code(0);
    assert_eq!(redis.cli(&["HLEN", "fraud:{user:u1}"]).unwrap(), "2");
    assert_eq!(redis.cli(&["HLEN", "fraud:{user:u2}"]).unwrap(), "1");
}

#[test]
fn a_store_that_is_down_fails_the_load_and_names_the_lines() {
    let port = riffle_testkit::free_port();
    let mut cmd = TestCommand::new();
    let (stdout, stderr) = load(
        &mut cmd,
        &format!("redis://127.0.0.1:{port}"),
        "user_profile",
        &fraud_profiles(),
    )
    .expect_code(1);
    assert!(
        stdout.contains("batch 0 (lines 2-4, 3 rows) not written"),
        "{stdout}"
    );
    assert!(stderr.contains("not written"), "{stderr}");
}
