//! The Redis Cluster backend against a real cluster: keys land on the master owning their
//! slot, a batch costs one pipeline per node, `MOVED`/`ASK` during a slot migration are
//! followed, and one hung master only makes its own entities unavailable.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use riffle_core::{EntityId, FeatureValue, Timestamp};
use riffle_registry::Registry;
use riffle_store::layout::entity_key;
use riffle_store::redis_cluster::slot_of;
use riffle_store::{
    EntityRead, GroupRow, MetaChange, MetaChanges, OnlineStore, RowRead, RowWrite, StoreLimits,
    StoreUrl,
};
use riffle_testkit::fixtures::ONE_GROUP_TOML;
use riffle_testkit::RedisCluster;

fn limits(timeout_ms: u64) -> StoreLimits {
    StoreLimits {
        timeout: Duration::from_millis(timeout_ms),
        write_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_millis(300),
        max_in_flight: 64,
        ttl_jitter: 0.1,
    }
}

async fn open(url: &str, limits: StoreLimits) -> OnlineStore {
    let registry = Arc::new(Registry::from_toml(ONE_GROUP_TOML).unwrap());
    let store = OnlineStore::open(&StoreUrl::parse(url).unwrap(), registry, limits)
        .await
        .unwrap();
    assert_eq!(store.info().kind, "redis-cluster");
    store
}

fn write(id: &str, n: i64) -> RowWrite {
    let now = Timestamp::now();
    RowWrite {
        id: EntityId::new(id).unwrap(),
        group: 0,
        row: GroupRow {
            event_ts: now,
            computed_at: now,
            values: vec![FeatureValue::Int64(n)],
            partition: None,
        },
    }
}

fn ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("u{i}")).collect()
}

async fn read(store: &OnlineStore, ids: &[String]) -> Vec<RowRead> {
    let groups = [0];
    let reads: Vec<EntityRead<'_>> = ids
        .iter()
        .map(|id| EntityRead {
            entity: 0,
            id,
            groups: &groups,
        })
        .collect();
    let rows = store.read(&reads).await.unwrap();
    rows.into_iter().map(|mut r| r.remove(0)).collect()
}

fn value(read: &RowRead) -> Option<i64> {
    match read {
        RowRead::Found(row) => match row.values[0] {
            FeatureValue::Int64(n) => Some(n),
            _ => None,
        },
        _ => None,
    }
}

/// One `INFO` field of node `i` as a number.
fn info_number(cluster: &RedisCluster, i: usize, section: &str, field: &str) -> u64 {
    let info = cluster.cli(i, &["INFO", section]).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map_or(0, |v| v.trim().parse().unwrap())
}

/// `calls=` of one command in node `i`'s `INFO commandstats` (0 before its first call).
fn command_calls(cluster: &RedisCluster, i: usize, cmd: &str) -> u64 {
    let info = cluster.cli(i, &["INFO", "commandstats"]).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{cmd}:calls=")))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |v| v.parse().unwrap())
}

/// Every key held by each master, checked against the master owning its slot.
fn assert_keys_on_their_slot_owner(cluster: &RedisCluster, masters: &[usize]) -> usize {
    let owners = cluster.masters_seen_by(masters[0]).unwrap();
    let owner_of = |slot: u16| {
        owners
            .iter()
            .find(|m| m.slots.iter().any(|&(a, b)| (a..=b).contains(&slot)))
            .map(|m| m.node)
    };
    let mut total = 0;
    for &m in masters {
        let keys = cluster.cli(m, &["KEYS", "*"]).unwrap();
        for key in keys.lines().filter(|k| !k.is_empty()) {
            assert_eq!(
                owner_of(slot_of(key.as_bytes())),
                Some(m),
                "{key} sits on node {m}, which does not own its slot"
            );
            total += 1;
        }
        let dbsize: usize = cluster.cli(m, &["DBSIZE"]).unwrap().parse().unwrap();
        assert_eq!(dbsize, keys.lines().filter(|k| !k.is_empty()).count());
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_go_to_slot_owners_in_one_pipeline_per_node() {
    let cluster = RedisCluster::start(3, 0).unwrap();
    // One seed only: the store learns the other masters from the slot map.
    let store = open(&cluster.url_of_one(1), limits(500)).await;
    let ids = ids(500);
    let writes: Vec<RowWrite> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| write(id, i as i64))
        .collect();
    let meta = MetaChanges {
        before: vec![MetaChange {
            name: "index".into(),
            member: "batch-1".into(),
            bytes: Some(b"pending".to_vec()),
        }],
        after: vec![MetaChange {
            name: "watermark".into(),
            member: "w0".into(),
            bytes: Some(b"42".to_vec()),
        }],
        ttl: Duration::from_secs(60),
    };
    store.write_with_meta(&writes, &[], &meta).await.unwrap();

    // Our slot function agrees with the server's.
    for id in ids.iter().take(40) {
        let key = entity_key("t", "user", id);
        assert_eq!(
            slot_of(key.as_bytes()),
            cluster.keyslot(&key).unwrap(),
            "{key}"
        );
    }
    let total = assert_keys_on_their_slot_owner(&cluster, &[0, 1, 2]);
    assert_eq!(total, 500 + 2, "500 entities and 2 meta keys");
    let mut per_node = HashMap::new();
    for id in &ids {
        let node = cluster
            .node_for_key(&entity_key("t", "user", id))
            .unwrap()
            .unwrap();
        *per_node.entry(node).or_insert(0u64) += 1;
    }
    assert_eq!(per_node.len(), 3, "500 entities spread over every master");
    assert_eq!(
        store.get_meta("watermark").await.unwrap(),
        vec![("w0".to_owned(), b"42".to_vec())]
    );

    // One batch read: one pipeline per node, answered in full.
    let trips = |store: &OnlineStore| -> HashMap<u16, u64> {
        store
            .cluster_nodes()
            .into_iter()
            .filter(|n| n.master)
            .map(|n| {
                (
                    n.addr.rsplit_once(':').unwrap().1.parse().unwrap(),
                    n.round_trips,
                )
            })
            .collect()
    };
    let trips_before = trips(&store);
    let reads_before: Vec<u64> = (0..3)
        .map(|i| info_number(&cluster, i, "stats", "total_reads_processed"))
        .collect();
    let hmget_before: Vec<u64> = (0..3)
        .map(|i| command_calls(&cluster, i, "hmget"))
        .collect();
    let got = read(&store, &ids).await;
    for (i, r) in got.iter().enumerate() {
        assert_eq!(value(r), Some(i as i64), "entity u{i}: {r:?}");
    }
    let trips_after = trips(&store);
    assert_eq!(trips_after.len(), 3);
    for (port, after) in &trips_after {
        assert_eq!(
            after - trips_before[port],
            1,
            "node {port}: one pipeline per batch"
        );
    }
    for i in 0..3 {
        let hmgets = command_calls(&cluster, i, "hmget") - hmget_before[i];
        assert_eq!(
            hmgets, per_node[&i],
            "node {i}: one HMGET per entity it owns"
        );
        // The server's own count of socket reads: a pipeline of ~170 HMGETs arrives in a
        // few reads (plus this INFO's own); one round trip per entity would be ~170.
        let reads = info_number(&cluster, i, "stats", "total_reads_processed") - reads_before[i];
        assert!(
            reads < 20,
            "node {i}: {reads} socket reads for {} HMGETs",
            per_node[&i]
        );
    }
}

/// An id of user whose key hashes to `slot`.
fn id_in_slot(slot: u16, skip: &str) -> String {
    (0..1_000_000)
        .map(|i| format!("m{i}"))
        .find(|id| id != skip && slot_of(entity_key("t", "user", id).as_bytes()) == slot)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moved_and_ask_during_a_slot_migration_are_followed() {
    let cluster = RedisCluster::start(3, 0).unwrap();
    let store = open(&cluster.url(), limits(500)).await;
    let id = "mover".to_owned();
    let key = entity_key("t", "user", &id);
    store.write(&[write(&id, 1)]).await.unwrap();
    let ids = [id.clone()];
    assert_eq!(value(&read(&store, &ids).await[0]), Some(1));

    let slot = slot_of(key.as_bytes());
    let from = cluster.node_for_slot(slot).unwrap().unwrap();
    let to = (from + 1) % 3;
    let node_id = |i: usize| cluster.cli(i, &["CLUSTER", "MYID"]).unwrap();
    let (from_id, to_id) = (node_id(from), node_id(to));
    let slot_text = slot.to_string();
    let to_port = cluster.node(to).port().to_string();
    assert_eq!(
        cluster
            .cli(
                to,
                &["CLUSTER", "SETSLOT", &slot_text, "IMPORTING", &from_id]
            )
            .unwrap(),
        "OK"
    );
    assert_eq!(
        cluster
            .cli(
                from,
                &["CLUSTER", "SETSLOT", &slot_text, "MIGRATING", &to_id]
            )
            .unwrap(),
        "OK"
    );

    // Mid-migration, a key of the slot not on the old owner is answered with ASK: written
    // and read on the importing node.
    let newcomer = id_in_slot(slot, &id);
    store.write(&[write(&newcomer, 7)]).await.unwrap();
    let count = |i: usize| {
        cluster
            .cli(i, &["CLUSTER", "COUNTKEYSINSLOT", &slot_text])
            .unwrap()
    };
    assert_eq!(count(from), "1", "only the mover on the old owner");
    assert_eq!(
        count(to),
        "1",
        "the newcomer was written to the importing node"
    );
    assert_eq!(
        value(&read(&store, std::slice::from_ref(&newcomer)).await[0]),
        Some(7)
    );

    // Finish the migration; the store's map still names the old owner.
    let moved = cluster
        .cli(
            from,
            &[
                "MIGRATE",
                "127.0.0.1",
                &to_port,
                "",
                "0",
                "5000",
                "KEYS",
                &key,
            ],
        )
        .unwrap();
    assert_eq!(moved, "OK");
    for i in 0..3 {
        assert_eq!(
            cluster
                .cli(i, &["CLUSTER", "SETSLOT", &slot_text, "NODE", &to_id])
                .unwrap(),
            "OK"
        );
    }
    let from_trips = |store: &OnlineStore| {
        let port = cluster.node(from).port();
        store
            .cluster_nodes()
            .into_iter()
            .find(|n| n.addr.ends_with(&format!(":{port}")))
            .unwrap()
            .round_trips
    };
    let before = from_trips(&store);
    assert_eq!(
        value(&read(&store, &ids).await[0]),
        Some(1),
        "read after MOVED"
    );
    assert_eq!(from_trips(&store), before + 1, "asked the old owner once");
    store.write(&[write(&id, 2)]).await.unwrap();
    assert_eq!(value(&read(&store, &ids).await[0]), Some(2));
    assert_eq!(
        from_trips(&store),
        before + 1,
        "the map learnt the new owner"
    );
    assert_eq!(cluster.node_for_key(&key).unwrap(), Some(to));
    assert_eq!((count(from).as_str(), count(to).as_str()), ("0", "2"));
    assert_keys_on_their_slot_owner(&cluster, &[0, 1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_master_makes_only_its_own_entities_unavailable() {
    // Without full coverage required, the other masters keep serving their slots after the
    // hung one is marked failing (as a production cluster without replicas should).
    let mut cluster =
        RedisCluster::start_with(3, 0, &["--cluster-require-full-coverage", "no"]).unwrap();
    // Generous for a healthy node on a busy machine; a hung one costs it at most.
    let timeout = Duration::from_millis(400);
    let store = open(&cluster.url(), limits(timeout.as_millis() as u64)).await;
    let ids = ids(300);
    let writes: Vec<RowWrite> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| write(id, i as i64))
        .collect();
    store.write(&writes).await.unwrap();
    let owner: Vec<usize> = ids
        .iter()
        .map(|id| {
            cluster
                .node_for_key(&entity_key("t", "user", id))
                .unwrap()
                .unwrap()
        })
        .collect();
    assert!(read(&store, &ids).await.iter().all(|r| value(r).is_some()));

    let sick = 2;
    cluster.pause(sick);
    for attempt in 0..6 {
        let started = Instant::now();
        let got = read(&store, &ids).await;
        let took = started.elapsed();
        eprintln!("hung node: batch {attempt} of 300 answered in {took:?}");
        if attempt >= 3 {
            // Three timeouts opened the hung node's breaker: it is skipped, not waited for.
            assert!(
                took < timeout / 2,
                "attempt {attempt}: {took:?} with the breaker open"
            );
        }
        assert!(
            took < timeout * 3,
            "attempt {attempt}: the batch took {took:?}, timeout {timeout:?}"
        );
        for (i, r) in got.iter().enumerate() {
            if owner[i] == sick {
                assert_eq!(r, &RowRead::Unavailable, "u{i} on the hung node");
            } else {
                assert_eq!(value(r), Some(i as i64), "u{i} on a healthy node: {r:?}");
            }
        }
    }
    // A batch of entities of the hung node only is still an answer, not a store failure
    // (which would open serve's breaker for every entity).
    let on_sick: Vec<String> = (0..ids.len())
        .filter(|&i| owner[i] == sick)
        .map(|i| ids[i].clone())
        .take(3)
        .collect();
    assert_eq!(read(&store, &on_sick).await, vec![RowRead::Unavailable; 3]);
    let port = cluster.node(sick).port();
    let sick_node = store
        .cluster_nodes()
        .into_iter()
        .find(|n| n.addr.ends_with(&format!(":{port}")))
        .unwrap();
    assert_eq!(sick_node.breaker, "open", "{sick_node:?}");

    cluster.resume(sick);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = read(&store, &ids).await;
        if got
            .iter()
            .enumerate()
            .all(|(i, r)| value(r) == Some(i as i64))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the resumed node never answered again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(store.cluster_nodes().iter().all(|n| n.breaker == "closed"));
}
