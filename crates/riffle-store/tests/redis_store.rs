//! The Redis backend against a real `redis-server`: layout, TTLs, batching, and what happens
//! when Redis hangs, dies or is overloaded.

use std::sync::Arc;
use std::time::{Duration, Instant};

use riffle_core::{EntityId, FeatureValue, Timestamp};
use riffle_registry::Registry;
use riffle_store::{EntityRead, OnlineStore, RowRead, RowWrite, StoreError, StoreLimits, StoreUrl};
use riffle_testkit::RedisServer;

const REGISTRY: &str = r#"
[project]
name = "t"
[[entities]]
name = "user"
[[feature_groups]]
name = "fast"
entity = "user"
ttl = "1h"
freshness_slo = "30s"
features = [
  { name = "n", type = "int64", default = 0 },
  { name = "s", type = "string", default = "" },
]
[[feature_groups]]
name = "slow"
entity = "user"
ttl = "2h"
freshness_slo = "1h"
features = [{ name = "b", type = "bool", default = false }]
"#;

fn registry() -> Arc<Registry> {
    Arc::new(Registry::from_toml(REGISTRY).unwrap())
}

fn limits() -> StoreLimits {
    StoreLimits {
        timeout: Duration::from_millis(50),
        write_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_millis(200),
        max_in_flight: 64,
        ttl_jitter: 0.1,
    }
}

async fn open(url: &str, limits: StoreLimits) -> OnlineStore {
    OnlineStore::open(&StoreUrl::parse(url).unwrap(), registry(), limits)
        .await
        .unwrap()
}

fn row(n: i64) -> riffle_store::GroupRow {
    let now = Timestamp::now();
    riffle_store::GroupRow {
        event_ts: now,
        computed_at: now,
        values: vec![
            FeatureValue::Int64(n),
            FeatureValue::String(format!("v{n}")),
        ],
        partition: None,
    }
}

fn write(id: &str, n: i64) -> RowWrite {
    RowWrite {
        id: EntityId::new(id).unwrap(),
        group: 0,
        row: row(n),
    }
}

#[tokio::test]
async fn batches_round_trip_with_ttls_on_every_key() {
    let redis = RedisServer::start().unwrap();
    let store = open(&redis.url(), limits()).await;
    let writes: Vec<RowWrite> = (0..200).map(|i| write(&format!("u{i}"), i)).collect();
    store.write(&writes).await.unwrap();

    // Layout: one hash per entity, hash-tagged; one field per group@version.
    assert_eq!(redis.cli(&["HLEN", "t:{user:u7}"]).unwrap(), "1");
    assert_eq!(
        redis.cli(&["HEXISTS", "t:{user:u7}", "fast@1"]).unwrap(),
        "1"
    );
    // Key TTL: the entity's longest group TTL (2h) plus up to 10% jitter.
    let pttl: u64 = redis
        .cli(&["PTTL", "t:{user:u7}"])
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (7_000_000..=7_920_000).contains(&pttl),
        "PTTL {pttl} outside 2h..2h+10%"
    );
    let ttls: std::collections::HashSet<u64> = (0..20)
        .map(|i| {
            redis
                .cli(&["PTTL", &format!("t:{{user:u{i}}}")])
                .unwrap()
                .parse::<u64>()
                .unwrap()
                / 1000
        })
        .collect();
    assert!(ttls.len() > 1, "jitter should spread expiry: {ttls:?}");

    let groups = [0usize, 1];
    let ids: Vec<String> = ["u1", "u199", "nobody"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let reads: Vec<EntityRead> = ids
        .iter()
        .map(|id| EntityRead {
            entity: 0,
            id,
            groups: &groups,
        })
        .collect();
    let got = store.read(&reads).await.unwrap();
    match &got[1][0] {
        RowRead::Found(r) => assert_eq!(r.values[0], FeatureValue::Int64(199)),
        other => panic!("expected a row, got {other:?}"),
    }
    assert_eq!(got[1][1], RowRead::Missing, "group never written");
    assert_eq!(got[2], vec![RowRead::Missing, RowRead::Missing]);

    // A corrupt row is reported, not guessed at.
    redis
        .cli(&["HSET", "t:{user:bad}", "fast@1", "garbage"])
        .unwrap();
    let bad = store
        .read(&[EntityRead {
            entity: 0,
            id: "bad",
            groups: &[0],
        }])
        .await
        .unwrap();
    assert!(matches!(bad[0][0], RowRead::Corrupt(_)), "{bad:?}");
}

#[tokio::test]
async fn a_hung_redis_times_out_and_a_dead_one_is_unavailable() {
    let mut redis = RedisServer::start().unwrap();
    let store = open(&redis.url(), limits()).await;
    store.write(&[write("u1", 1)]).await.unwrap();
    let read = || async {
        store
            .read(&[EntityRead {
                entity: 0,
                id: "u1",
                groups: &[0],
            }])
            .await
    };
    assert!(read().await.is_ok());

    redis.pause();
    let start = Instant::now();
    let err = read().await.unwrap_err();
    assert!(matches!(err, StoreError::Timeout(50)), "{err:?}");
    assert!(err.counts_against_store());
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    redis.resume();
    assert!(read().await.is_ok(), "recovers once Redis resumes");

    redis.kill();
    let err = read().await.unwrap_err();
    assert!(
        matches!(err, StoreError::Unavailable(_) | StoreError::Timeout(_)),
        "{err:?}"
    );
    redis.restart().unwrap();
    let mut recovered = false;
    for _ in 0..50 {
        if read().await.is_ok() {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(recovered, "reconnects after a restart");
}

#[tokio::test]
async fn the_in_flight_bound_fails_fast_instead_of_queueing() {
    let mut redis = RedisServer::start().unwrap();
    let mut l = limits();
    l.max_in_flight = 2;
    l.timeout = Duration::from_millis(500);
    let store = Arc::new(open(&redis.url(), l).await);
    store.write(&[write("u1", 1)]).await.unwrap();
    redis.pause();
    let hung: Vec<_> = (0..2)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .read(&[EntityRead {
                        entity: 0,
                        id: "u1",
                        groups: &[0],
                    }])
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(store.in_flight(), 2);
    let start = Instant::now();
    let err = store
        .read(&[EntityRead {
            entity: 0,
            id: "u1",
            groups: &[0],
        }])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Overloaded(2)), "{err:?}");
    assert!(!err.counts_against_store());
    assert!(start.elapsed() < Duration::from_millis(100));
    redis.resume();
    for h in hung {
        let _ = h.await.unwrap();
    }
    assert_eq!(store.in_flight(), 0);
}

#[tokio::test]
async fn acl_users_authenticate_from_the_url() {
    let redis = RedisServer::start_with(&["--requirepass", "adminpw"]).unwrap();
    redis
        .cli(&[
            "-a",
            "adminpw",
            "--no-auth-warning",
            "ACL",
            "SETUSER",
            "riffle",
            "on",
            ">s3cret",
            "~t:*",
            "+@all",
        ])
        .unwrap();
    let url = format!("redis://riffle:s3cret@127.0.0.1:{}", redis.port());
    let store = open(&url, limits()).await;
    store.write(&[write("u1", 1)]).await.unwrap();
    assert!(store.ping().await.is_ok());

    let wrong = format!("redis://riffle:nope@127.0.0.1:{}", redis.port());
    let store = open(&wrong, limits()).await;
    assert!(store.write(&[write("u1", 1)]).await.is_err());
}

#[tokio::test]
async fn tls_connections_work() {
    let redis = RedisServer::start_tls().unwrap();
    let store = open(&redis.tls_url(), limits()).await;
    store.write(&[write("u1", 5)]).await.unwrap();
    let got = store
        .read(&[EntityRead {
            entity: 0,
            id: "u1",
            groups: &[0],
        }])
        .await
        .unwrap();
    assert!(matches!(&got[0][0], RowRead::Found(r) if r.values[0] == FeatureValue::Int64(5)));
    assert_eq!(redis.cli(&["HLEN", "t:{user:u1}"]).unwrap(), "1");
}
