//! Stream groups' freshness comes from the source's published watermark, not the row's own
//! event time: an idle entity's 2-hour-old row is fresh while the pipeline is current, and
//! a just-written row is stale when the pipeline's watermark is 10 minutes old; a row from
//! Kafka is aged by its own partition's watermark. A real server over the embedded store.

mod common;

use std::sync::Arc;

use riffle_core::{FeatureValue, Timestamp};
use riffle_registry::Registry;
use riffle_store::meta::{watermark_name, META_TTL};
use riffle_store::watermark::WatermarkRecord;
use riffle_store::{GroupRow, OnlineStore, RowWrite, StoreLimits, StoreUrl};

const REGISTRY: &str = r#"
[project]
name = "wm"
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
[[feature_groups]]
name = "profile"
entity = "user"
ttl = "48h"
freshness_slo = "1m"
staleness_limit = "30m"
features = [{ name = "age", type = "int64", default = 0 }]
"#;

const MINUTE: i64 = 60_000;

fn ago(ms: i64) -> Timestamp {
    Timestamp::from_millis(Timestamp::now().millis() - ms).unwrap()
}

/// Writes one `tx` and one `profile` row of user `u1` with event time `row_age` ago, and
/// (if given) a watermark record `(watermark age, published age)`; returns the store's
/// directory (removed when the returned guard drops).
async fn prepare(
    registry: &Arc<Registry>,
    row_age: i64,
    wm: Option<(i64, i64)>,
) -> (tempfile::TempDir, StoreUrl) {
    let dir = tempfile::tempdir().unwrap();
    let url = StoreUrl::Embedded(dir.path().to_owned());
    let store = OnlineStore::open(
        &url,
        registry.clone(),
        StoreLimits::from_settings(&registry.store),
    )
    .await
    .unwrap();
    let row = |v| GroupRow {
        event_ts: ago(row_age),
        computed_at: Timestamp::now(),
        values: vec![FeatureValue::Int64(v)],
        partition: None,
    };
    let id = riffle_core::EntityId::new("u1").unwrap();
    store
        .write(&[
            RowWrite {
                id: id.clone(),
                group: 0,
                row: row(3),
            },
            RowWrite {
                id,
                group: 1,
                row: row(40),
            },
        ])
        .await
        .unwrap();
    if let Some((wm_age, published_age)) = wm {
        let record = WatermarkRecord {
            watermark_ms: ago(wm_age).millis(),
            published_at_ms: ago(published_age).millis(),
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
            .unwrap();
    }
    (dir, url)
}

/// Status of `tx` and `profile` for `u1`, and the `/health` group entries.
async fn statuses(registry: Arc<Registry>, url: &StoreUrl) -> (String, String, serde_json::Value) {
    let server = common::start(registry, url, common::Options::default()).await;
    let (code, body) = server.get("/v1/features/user/u1").await;
    assert_eq!(code, 200, "{body}");
    let status = |group: &str| {
        let groups = &body["results"][0]["groups"];
        let found = groups
            .as_array()
            .and_then(|gs| gs.iter().find(|g| g["group"] == group))
            .unwrap_or_else(|| panic!("no {group} in {body}"));
        found["status"].as_str().unwrap().to_owned()
    };
    let (tx, profile) = (status("tx"), status("profile"));
    let (_, health) = server.get("/health").await;
    (tx, profile, health["groups"].clone())
}

fn group<'a>(health: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    health
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == name)
        .unwrap()
}

#[tokio::test]
async fn an_idle_entity_is_fresh_while_the_pipeline_is_current() {
    let registry = Arc::new(Registry::from_toml(REGISTRY).unwrap());
    // The entity's last event was 2 h ago; the pipeline has processed up to 5 s ago.
    let (_dir, url) = prepare(&registry, 120 * MINUTE, Some((5_000, 1_000))).await;
    let (tx, profile, health) = statuses(registry, &url).await;
    assert_eq!(tx, "fresh");
    // A group without a source still ages from its row: 2 h is past its 30 min limit.
    assert_eq!(profile, "expired");
    let tx = group(&health, "tx");
    assert_eq!(tx["freshness_basis"], "watermark");
    assert_eq!(tx["source"], "transactions");
    assert!(tx["watermark_age_ms"].as_u64().unwrap() < MINUTE as u64);
    assert_eq!(group(&health, "profile")["freshness_basis"], "event_ts");
}

#[tokio::test]
async fn a_fresh_row_is_stale_when_the_pipeline_is_behind() {
    let registry = Arc::new(Registry::from_toml(REGISTRY).unwrap());
    let (_dir, url) = prepare(&registry, 0, Some((10 * MINUTE, 1_000))).await;
    let (tx, profile, health) = statuses(registry.clone(), &url).await;
    assert_eq!(tx, "stale");
    assert_eq!(profile, "fresh");
    assert_eq!(group(&health, "tx")["freshness_basis"], "watermark");

    // 40 min behind: past the staleness limit, the default is served.
    let (_dir, url) = prepare(&registry, 0, Some((40 * MINUTE, 1_000))).await;
    assert_eq!(statuses(registry, &url).await.0, "expired");
}

#[tokio::test]
async fn with_ingest_stopped_values_age_from_the_last_watermark_or_their_event_time() {
    let registry = Arc::new(Registry::from_toml(REGISTRY).unwrap());
    // The only publisher stopped 5 minutes ago with a watermark 5 minutes old.
    let (_dir, url) = prepare(&registry, 0, Some((5 * MINUTE, 5 * MINUTE))).await;
    let (tx, _, health) = statuses(registry.clone(), &url).await;
    assert_eq!(tx, "stale");
    assert_eq!(group(&health, "tx")["freshness_basis"], "last_watermark");

    // Nothing ever published: the row's own event time.
    let (_dir, url) = prepare(&registry, 0, None).await;
    let (tx, _, health) = statuses(registry, &url).await;
    assert_eq!(tx, "fresh");
    assert_eq!(group(&health, "tx")["freshness_basis"], "event_ts");
    assert!(group(&health, "tx")["watermark_age_ms"].is_null());
}

#[tokio::test]
async fn the_watermark_age_is_a_metric() {
    let registry = Arc::new(Registry::from_toml(REGISTRY).unwrap());
    let (_dir, url) = prepare(&registry, 0, Some((10 * MINUTE, 1_000))).await;
    let server = common::start(registry, &url, common::Options::default()).await;
    let text = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("riffle_source_watermark_age_seconds{source=\"transactions\"}"))
        .unwrap_or_else(|| panic!("no watermark age in\n{text}"));
    let secs: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(secs >= 600.0, "{line}");
}

/// A Kafka source is aged per partition: a user whose events arrive on a stalled partition
/// is stale while a user on a current one is fresh, though a live worker keeps publishing
/// a fresh record of its own; `/health` says `stale` and shows each partition's mark, and
/// each partition's age is a metric.
#[tokio::test]
async fn a_row_is_aged_by_the_watermark_of_its_own_partition() {
    use riffle_store::meta::{partition_member, partitions_name};
    use riffle_store::watermark::PartitionMark;

    let registry = Arc::new(Registry::from_toml(REGISTRY).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let url = StoreUrl::Embedded(dir.path().to_owned());
    {
        let store = OnlineStore::open(
            &url,
            registry.clone(),
            StoreLimits::from_settings(&registry.store),
        )
        .await
        .unwrap();
        let row = |partition| GroupRow {
            event_ts: ago(0),
            computed_at: Timestamp::now(),
            values: vec![FeatureValue::Int64(1)],
            partition: Some(partition),
        };
        let write = |user: &str, partition| RowWrite {
            id: riffle_core::EntityId::new(user).unwrap(),
            group: 0,
            row: row(partition),
        };
        store
            .write(&[write("stuck", 0), write("moving", 1)])
            .await
            .unwrap();
        let live = WatermarkRecord {
            watermark_ms: ago(1_000).millis(),
            published_at_ms: ago(100).millis(),
            events_applied_total: 7,
            publisher: "test:1".into(),
        };
        let name = watermark_name("transactions");
        store
            .put_meta(&name, "test:1", live.encode(), META_TTL)
            .await
            .unwrap();
        for (partition, behind) in [(0, 10 * MINUTE), (1, 1_000)] {
            let mark = PartitionMark {
                topic: "tx".into(),
                partition,
                partition_count: 2,
                watermark_ms: ago(behind).millis(),
                published_at_ms: ago(behind).millis(),
                publisher: "test:1".into(),
                next_offset: Some(10),
            };
            store
                .put_meta(
                    &partitions_name("transactions"),
                    &partition_member("tx", partition),
                    mark.encode(),
                    META_TTL,
                )
                .await
                .unwrap();
        }
    }
    let server = common::start(registry, &url, common::Options::default()).await;
    let status = |body: &serde_json::Value| body["results"][0]["groups"][0]["status"].clone();
    let (_, stuck) = server.get("/v1/features/user/stuck?groups=tx").await;
    assert_eq!(status(&stuck), "stale", "{stuck}");
    let (_, moving) = server.get("/v1/features/user/moving?groups=tx").await;
    assert_eq!(status(&moving), "fresh", "{moving}");

    let (_, health) = server.get("/health").await;
    assert_eq!(health["status"], "stale", "{health}");
    let source = &health["sources"][0];
    assert_eq!(source["topic"], "tx", "{health}");
    let ages: Vec<u64> = source["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["watermark_age_ms"].as_u64().unwrap())
        .collect();
    assert!(ages[0] >= 600_000 && ages[1] < 60_000, "{ages:?}");
    // The group as a whole is as old as its slowest partition.
    assert!(
        group(&health["groups"], "tx")["watermark_age_ms"]
            .as_u64()
            .unwrap()
            >= 600_000
    );

    let text = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = text
        .lines()
        .find(|l| {
            l.starts_with(
                "riffle_partition_watermark_age_seconds{source=\"transactions\",partition=\"0\"}",
            )
        })
        .unwrap_or_else(|| panic!("no partition watermark age in\n{text}"));
    let secs: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(secs >= 600.0, "{line}");
}
