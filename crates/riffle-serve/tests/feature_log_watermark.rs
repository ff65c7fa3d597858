//! A stream group's row is logged with the watermark it was served at (and the age measured
//! from it), so the validator can tell a mismatch explained by ingest lag from a real one; a
//! copy kept in the hot cache with the watermark it was read at, and a missing row with the
//! watermark its answer was read at.

mod common;
mod feature_log_support;

use feature_log_support::read_log;
use riffle_core::{EntityId, FeatureValue, Timestamp};
use riffle_store::meta::{watermark_name, META_TTL};
use riffle_store::watermark::WatermarkRecord;
use riffle_store::{GroupRow, OnlineStore, RowWrite, StoreLimits, StoreUrl};
use riffle_testkit::RedisServer;
use serde_json::json;

const STREAM_REGISTRY: &str = r#"
[serve.cache]
ttl = "1m"

[serve.logging]
sample_rate = 1.0
path = "PATH"

[[entities]]
name = "user"
join_key = "user_id"
[[sources]]
name = "transactions"
entity = "user"
kind = "file"
path = "events.ndjson"
time_field = "event_time"
fields = [{ name = "amount", type = "float64" }]
[[feature_groups]]
name = "tx"
entity = "user"
source = "transactions"
ttl = "48h"
freshness_slo = "1m"
staleness_limit = "30m"
features = [{ name = "n_1h", type = "int64", default = 0, aggregation = "count", window = "1h" }]
"#;

/// The one watermark record of the source, published just now by "test:1".
async fn publish(store: &OnlineStore, watermark: i64) {
    let record = WatermarkRecord {
        watermark_ms: watermark,
        published_at_ms: Timestamp::now().millis(),
        events_applied_total: 7,
        publisher: "test:1".into(),
    };
    store
        .put_meta(
            &watermark_name("transactions"),
            "test:1",
            record.encode(),
            META_TTL,
        )
        .await
        .expect("meta");
}

#[tokio::test]
async fn a_stream_group_is_logged_with_the_watermark_it_was_served_at() {
    let log = tempfile::tempdir().expect("tempdir");
    let registry =
        common::registry_from(&STREAM_REGISTRY.replace("PATH", &log.path().display().to_string()));
    let store_dir = tempfile::tempdir().expect("tempdir");
    let url = StoreUrl::Embedded(store_dir.path().to_owned());
    let limits = StoreLimits::from_settings(&registry.store);
    let store = OnlineStore::open(&url, registry.clone(), limits)
        .await
        .expect("store");
    // A row written just now, but the pipeline (live) has only processed up to 10 min ago.
    let now = Timestamp::now().millis();
    let watermark = now - 10 * 60_000;
    let row = GroupRow {
        event_ts: Timestamp::from_millis(now).expect("now"),
        computed_at: Timestamp::from_millis(now).expect("now"),
        values: vec![FeatureValue::Int64(3)],
        partition: None,
    };
    let id = EntityId::new("u1").expect("id");
    store
        .write(&[RowWrite { id, group: 0, row }])
        .await
        .expect("write");
    publish(&store, watermark).await;
    drop(store);

    let s = common::start(registry, &url, common::Options::default()).await;
    let (status, body) = s.get("/v1/features/user/u1").await;
    assert_eq!(status, 200, "{body}");
    let g = &body["results"][0]["groups"][0];
    assert_eq!(g["status"], "stale");
    s.stop().await;

    let (_, logged) = read_log(log.path());
    assert_eq!(logged.len(), 1);
    let r = &logged[0];
    assert_eq!(r.basis.as_deref(), Some("watermark"));
    assert_eq!(r.watermark, Some(watermark), "the watermark served at");
    assert_eq!(r.status, "stale");
    assert_eq!(r.value, json!(3));
    assert_eq!(r.age_ms.map(|a| a as u64), g["age_ms"].as_u64());
    // Age is measured from the watermark at the request's instant.
    assert_eq!(r.age_ms, Some(r.request_time - watermark));
    assert_eq!(r.event_ts, Some(now));
}

#[tokio::test]
async fn a_cached_row_is_as_old_as_the_watermark_it_was_read_at() {
    let redis = RedisServer::start().expect("redis-server starts");
    let log = tempfile::tempdir().expect("tempdir");
    let registry =
        common::registry_from(&STREAM_REGISTRY.replace("PATH", &log.path().display().to_string()));
    let url = StoreUrl::parse(&redis.url()).expect("redis url");
    let limits = StoreLimits::from_settings(&registry.store);
    let store = OnlineStore::open(&url, registry.clone(), limits)
        .await
        .expect("store");
    let now = Timestamp::now().millis();
    let first = now - 60_000;
    let row = GroupRow {
        event_ts: Timestamp::from_millis(first).expect("time"),
        computed_at: Timestamp::from_millis(first).expect("time"),
        values: vec![FeatureValue::Int64(3)],
        partition: None,
    };
    let id = EntityId::new("u1").expect("id");
    store
        .write(&[RowWrite { id, group: 0, row }])
        .await
        .expect("write");
    publish(&store, first).await;

    let s = common::start(registry, &url, common::Options::default()).await;
    let (status, _) = s.get("/v1/features/user/u1").await;
    assert_eq!(status, 200);
    // The pipeline moves on; the server reads the watermark again within a second.
    let second = now - 1_000;
    publish(&store, second).await;
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    let (_, cached) = s.get("/v1/features/user/u1").await;
    let (_, absent) = s.get("/v1/features/user/u2").await;
    s.stop().await;

    let (_, logged) = read_log(log.path());
    let at = |id: &str| -> Vec<_> { logged.iter().filter(|r| r.id == id).collect() };
    let u1 = at("u1");
    assert_eq!(u1.len(), 2);
    // The copy served from the cache is aged from the watermark it was read at, not from
    // the one the server has now: the pipeline had got no further when it was read.
    assert_eq!(u1[1].watermark, Some(first), "{u1:?}");
    assert_eq!(u1[1].age_ms, Some(u1[1].request_time - first));
    assert_eq!(
        cached["results"][0]["groups"][0]["age_ms"].as_i64(),
        u1[1].age_ms
    );
    // A missing row: no age, no basis, but the watermark its answer was read at.
    let u2 = at("u2");
    assert_eq!(u2.len(), 1);
    assert_eq!(u2[0].group_status, "missing");
    assert_eq!(u2[0].basis, None);
    assert_eq!(u2[0].age_ms, None);
    assert_eq!(u2[0].watermark, Some(second));
    assert_eq!(absent["results"][0]["groups"][0]["status"], "missing");
}
