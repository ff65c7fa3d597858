//! Pipeline state beside rows (`write_with_state`, `read_raw_fields`) on both backends: one
//! key per entity, state and rows together, TTL on every key, reserved `~` prefix enforced.

use std::sync::Arc;
use std::time::Duration;

use riffle_core::{EntityId, FeatureValue, Timestamp};
use riffle_registry::Registry;
use riffle_store::layout::state_field;
use riffle_store::{
    EntityRead, GroupRow, OnlineStore, RowRead, RowWrite, StateWrite, StoreError, StoreLimits,
    StoreUrl,
};
use riffle_testkit::fixtures::ONE_GROUP_TOML;
use riffle_testkit::RedisServer;

fn limits() -> StoreLimits {
    StoreLimits {
        timeout: Duration::from_millis(500),
        write_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_millis(500),
        max_in_flight: 8,
        ttl_jitter: 0.1,
    }
}

async fn open(url: &StoreUrl) -> OnlineStore {
    let registry = Arc::new(Registry::from_toml(ONE_GROUP_TOML).unwrap());
    OnlineStore::open(url, registry, limits()).await.unwrap()
}

fn id(s: &str) -> EntityId {
    EntityId::new(s).unwrap()
}

fn row(id_: &str, n: i64) -> RowWrite {
    let now = Timestamp::now();
    RowWrite {
        id: id(id_),
        group: 0,
        row: GroupRow {
            event_ts: now,
            computed_at: now,
            values: vec![FeatureValue::Int64(n)],
            partition: None,
        },
    }
}

fn state(id_: &str, bytes: &[u8]) -> StateWrite {
    StateWrite {
        id: id(id_),
        entity: 0,
        field: state_field("events"),
        bytes: bytes.to_vec(),
    }
}

async fn exercise(store: &OnlineStore) {
    let field = state_field("events");
    assert_eq!(field, "~events");
    // Rows with state, state alone, a row alone.
    store
        .write_with_state(
            &[row("u1", 1), row("u3", 3)],
            &[state("u1", b"s1"), state("u2", &[0, 255, 7])],
        )
        .await
        .unwrap();
    let got = store
        .read_raw_fields(0, &["u1", "u2", "u3", "nobody"], &field)
        .await
        .unwrap();
    assert_eq!(
        got,
        vec![Some(b"s1".to_vec()), Some(vec![0, 255, 7]), None, None]
    );
    // Rows still read as rows; the state is not a row.
    let groups = [0];
    let read = store
        .read(&[EntityRead {
            entity: 0,
            id: "u1",
            groups: &groups,
        }])
        .await
        .unwrap();
    match &read[0][0] {
        RowRead::Found(r) => assert_eq!(r.values, vec![FeatureValue::Int64(1)]),
        other => panic!("expected a row, got {other:?}"),
    }
    // Overwrite.
    store
        .write_with_state(&[row("u1", 10)], &[state("u1", b"s2")])
        .await
        .unwrap();
    let got = store.read_raw_fields(0, &["u1"], &field).await.unwrap();
    assert_eq!(got, vec![Some(b"s2".to_vec())]);
    // A state field must be reserved-prefixed.
    let mut bad = state("u1", b"x");
    bad.field = "fast@1".into();
    assert!(matches!(
        store.write_with_state(&[], &[bad]).await,
        Err(StoreError::Config(_))
    ));
    assert!(matches!(
        store.read_raw_fields(7, &["u1"], &field).await,
        Err(StoreError::Config(_))
    ));
}

#[tokio::test]
async fn embedded_keeps_state_beside_rows_and_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let url = StoreUrl::Embedded(dir.path().into());
    {
        let store = open(&url).await;
        exercise(&store).await;
    }
    let store = open(&url).await;
    let got = store
        .read_raw_fields(0, &["u2"], &state_field("events"))
        .await
        .unwrap();
    assert_eq!(got, vec![Some(vec![0, 255, 7])]);
}

#[tokio::test]
async fn redis_writes_rows_and_state_in_one_hash_with_a_ttl() {
    let redis = RedisServer::start().unwrap();
    let store = open(&StoreUrl::parse(&redis.url()).unwrap()).await;
    exercise(&store).await;
    // One hash per entity, rows and state side by side; every key has a TTL.
    let fields = redis.cli(&["HKEYS", "t:{user:u1}"]).unwrap();
    let mut fields: Vec<&str> = fields.split_whitespace().collect();
    fields.sort_unstable();
    assert_eq!(fields, vec!["fast@1", "~events"]);
    for key in ["t:{user:u1}", "t:{user:u2}", "t:{user:u3}"] {
        let ttl: i64 = redis.cli(&["PTTL", key]).unwrap().trim().parse().unwrap();
        assert!(ttl > 3_000_000 && ttl <= 3_960_000, "{key}: ttl {ttl}");
    }
}
