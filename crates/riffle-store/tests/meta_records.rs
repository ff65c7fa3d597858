//! Pipeline metadata (`put_meta` / `get_meta`, reserved keys `<project>:~meta:<name>`) on the
//! embedded store and on a real `redis-server`: one record per publisher, read back together,
//! removed one by one; and meta changes made in the same call as rows (`write_with_meta`):
//! sets before and after the rows, removals last, every written meta key with its TTL.

use std::sync::Arc;
use std::time::Duration;

use riffle_core::{EntityId, FeatureValue, Timestamp};
use riffle_registry::Registry;
use riffle_store::meta::{watermark_name, META_TTL};
use riffle_store::{
    EntityRead, GroupRow, MetaChange, MetaChanges, OnlineStore, RowRead, RowWrite, StoreLimits,
    StoreUrl,
};
use riffle_testkit::fixtures::ONE_GROUP_TOML;
use riffle_testkit::RedisServer;

async fn open(url: &str) -> OnlineStore {
    let limits = StoreLimits {
        timeout: Duration::from_millis(200),
        write_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_millis(500),
        max_in_flight: 8,
        ttl_jitter: 0.0,
    };
    let registry = Arc::new(Registry::from_toml(ONE_GROUP_TOML).unwrap());
    OnlineStore::open(&StoreUrl::parse(url).unwrap(), registry, limits)
        .await
        .unwrap()
}

async fn round_trip(store: &OnlineStore) {
    let name = watermark_name("tx");
    assert!(store.get_meta(&name).await.unwrap().is_empty());
    store
        .put_meta(&name, "h:1", b"one".to_vec(), META_TTL)
        .await
        .unwrap();
    store
        .put_meta(&name, "h:2", b"two".to_vec(), META_TTL)
        .await
        .unwrap();
    store
        .put_meta(&name, "h:1", b"uno".to_vec(), META_TTL)
        .await
        .unwrap();
    let mut got = store.get_meta(&name).await.unwrap();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("h:1".into(), b"uno".to_vec()),
            ("h:2".into(), b"two".to_vec())
        ]
    );
    assert!(store.get_meta("watermark:other").await.unwrap().is_empty());
    store.delete_meta(&name, &["h:1".into()]).await.unwrap();
    assert_eq!(
        store.get_meta(&name).await.unwrap(),
        vec![("h:2".into(), b"two".to_vec())]
    );
    // An expired meta key reads as empty.
    store
        .put_meta("short", "h:1", b"x".to_vec(), Duration::from_millis(1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(store.get_meta("short").await.unwrap().is_empty());
}

fn change(name: &str, member: &str, bytes: Option<&[u8]>) -> MetaChange {
    MetaChange {
        name: name.into(),
        member: member.into(),
        bytes: bytes.map(<[u8]>::to_vec),
    }
}

async fn meta_rides_with_rows(store: &OnlineStore) {
    store
        .put_meta("idx:a", "old", b"1".to_vec(), META_TTL)
        .await
        .unwrap();
    let now = Timestamp::now();
    let rows = [RowWrite {
        id: EntityId::new("u1").unwrap(),
        group: 0,
        row: GroupRow {
            event_ts: now,
            computed_at: now,
            values: vec![FeatureValue::Int64(7)],
            partition: None,
        },
    }];
    let meta = MetaChanges {
        before: vec![
            change("idx:b", "u1", Some(b"42")),
            change("idx:a", "old", None),
        ],
        after: vec![
            change("streams", "s1", Some(b"9")),
            change("idx:a", "gone", None),
        ],
        ttl: Duration::from_millis(300),
    };
    store.write_with_meta(&rows, &[], &meta).await.unwrap();
    let groups = [0];
    let read = store
        .read(&[EntityRead {
            entity: 0,
            id: "u1",
            groups: &groups,
        }])
        .await
        .unwrap();
    assert!(matches!(&read[0][0], RowRead::Found(r) if r.values == [FeatureValue::Int64(7)]));
    assert_eq!(
        store.get_meta("idx:b").await.unwrap(),
        vec![("u1".into(), b"42".to_vec())]
    );
    assert!(store.get_meta("idx:a").await.unwrap().is_empty());
    assert_eq!(
        store.get_meta("streams").await.unwrap(),
        vec![("s1".into(), b"9".to_vec())]
    );
    // Written meta keys got the TTL.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(store.get_meta("idx:b").await.unwrap().is_empty());
    assert!(store.get_meta("streams").await.unwrap().is_empty());
}

#[tokio::test]
async fn meta_records_round_trip_on_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&format!("embedded:{}", dir.path().display())).await;
    round_trip(&store).await;
    meta_rides_with_rows(&store).await;
}

#[tokio::test]
async fn meta_records_round_trip_on_redis() {
    let redis = RedisServer::start().unwrap();
    let store = open(&redis.url()).await;
    round_trip(&store).await;
    meta_rides_with_rows(&store).await;
}
