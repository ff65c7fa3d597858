//! `riffle lag` with the real binary over the embedded store: right after `riffle ingest
//! --from FILE` of recent events the source's watermark is fresh (exit 0); above a tiny
//! `--threshold` it fails (exit 3), and so it does when no ingest worker is publishing
//! (nothing ever published, or only records older than 30 s from a stopped worker).

mod common;
mod ingest_support;

use std::path::Path;
use std::sync::Arc;

use common::TestCommand;
use ingest_support::REGISTRY;
use riffle_core::Timestamp;
use riffle_registry::Registry;
use riffle_store::meta::{watermark_name, META_TTL};
use riffle_store::watermark::WatermarkRecord;
use riffle_store::{OnlineStore, StoreLimits, StoreUrl};
use serde_json::Value;

/// `riffle lag --json` (plus `extra`) over `store`, expecting `code`; the parsed report.
fn lag(store: &str, extra: &[&str], code: i32) -> Value {
    let mut cmd = TestCommand::new();
    let config = cmd.write("riffle.toml", REGISTRY);
    cmd.arg("lag")
        .arg("--config")
        .arg(config)
        .args(["--store", store, "--json"])
        .args(extra);
    let (stdout, _) = cmd.expect_code(code);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"))
}

/// Stores a watermark record of `publisher` in the embedded store at `path`.
fn put_record(path: &Path, publisher: &str, watermark_ms: i64, published_at_ms: i64) {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let registry = Arc::new(Registry::from_toml(REGISTRY).unwrap());
        let limits = StoreLimits::from_settings(&registry.store);
        let store = OnlineStore::open(&StoreUrl::Embedded(path.to_owned()), registry, limits)
            .await
            .unwrap();
        let record = WatermarkRecord {
            watermark_ms,
            published_at_ms,
            events_applied_total: 5,
            publisher: publisher.into(),
        };
        store
            .put_meta(
                &watermark_name("transactions"),
                publisher,
                record.encode(),
                META_TTL,
            )
            .await
            .unwrap();
    });
}

/// Ingests a few events from the last minutes into `store`.
fn ingest_recent(store: &str, dir: &Path) {
    let now = Timestamp::now().millis();
    let mut events = String::new();
    for i in 0..20i64 {
        events.push_str(&format!(
            "{{\"user_id\": \"u{}\", \"amount\": {i}.5, \"merchant_id\": \"m{}\", \"event_time\": {}}}\n",
            i % 4,
            i % 3,
            now - 120_000 + i * 1000
        ));
    }
    let file = dir.join("events.ndjson");
    std::fs::write(&file, events).unwrap();
    let mut cmd = TestCommand::new();
    let config = cmd.write("riffle.toml", REGISTRY);
    cmd.arg("ingest")
        .arg("--config")
        .arg(config)
        .args(["--store", store, "--from"])
        .arg(&file);
    cmd.expect_code(0);
}

#[test]
fn lag_is_ok_right_after_an_ingest_of_recent_events_and_fails_above_the_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let store = format!("embedded:{}", path.display());
    // A record of a run that finished two days ago: removed by the next worker's first publish.
    let now = Timestamp::now().millis();
    put_record(&path, "old:1", now - 50 * 3_600_000, now - 48 * 3_600_000);
    ingest_recent(&store, dir.path());

    let report = lag(&store, &[], 0);
    assert_eq!(report["ok"], true);
    assert_eq!(report["threshold_ms"], 300_000);
    let source = &report["sources"][0];
    assert_eq!(source["source"], "transactions");
    assert_eq!(source["status"], "ok");
    assert_eq!(source["publishers_alive"], 1);
    assert_eq!(
        source["publishers"].as_array().unwrap().len(),
        1,
        "{source}"
    );
    assert_eq!(source["publishers"][0]["events_applied_total"], 20);
    // The newest event was ~101 s old when ingested.
    let lag_ms = source["lag_ms"].as_u64().unwrap();
    assert!((100_000..300_000).contains(&lag_ms), "{source}");
    let group = &source["groups"][0];
    assert_eq!(group["group"], "tx");
    assert_eq!(group["implied_staleness_ms"], lag_ms);
    // The group's freshness SLO is 1 minute: values are stale, though ingest is within 5 min.
    assert_eq!(group["freshness"], "stale");

    let report = lag(&store, &["--threshold", "1ms"], 3);
    assert_eq!(report["ok"], false);
    assert_eq!(report["sources"][0]["status"], "behind");

    // The human table names the source and the group.
    let mut cmd = TestCommand::new();
    let config = cmd.write("riffle.toml", REGISTRY);
    cmd.arg("lag")
        .arg("--config")
        .arg(config)
        .args(["--store", &store]);
    let (stdout, _) = cmd.expect_code(0);
    assert!(
        stdout.contains("transactions") && stdout.contains("group tx"),
        "{stdout}"
    );
}

#[test]
fn lag_fails_when_no_ingest_is_publishing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let store = format!("embedded:{}", path.display());

    let report = lag(&store, &[], 3);
    let source = &report["sources"][0];
    assert_eq!(source["status"], "not_publishing");
    assert!(source["lag_ms"].is_null());
    assert_eq!(source["groups"][0]["freshness"], "unknown");

    // A worker that stopped a minute ago, with a fresh-looking watermark: not alive.
    let now = Timestamp::now().millis();
    put_record(&path, "gone:1", now - 61_000, now - 60_000);
    let report = lag(&store, &[], 3);
    let source = &report["sources"][0];
    assert_eq!(source["status"], "not_publishing");
    assert_eq!(source["last_watermark_ms"], now - 61_000);
    assert_eq!(source["publishers"][0]["alive"], false);
    assert_eq!(source["groups"][0]["freshness"], "stale");

    // Bad usage is exit 2.
    let mut cmd = TestCommand::new();
    let config = cmd.write("riffle.toml", REGISTRY);
    cmd.arg("lag")
        .arg("--config")
        .arg(config)
        .args(["--store", &store, "--threshold", "soon"]);
    cmd.expect_code(2);
}
