//! Read replicas against real `redis-server` processes: a primary and a replica started with
//! `--replicaof`. Serving reads go to the replica (counted by the servers' own
//! `INFO commandstats`), writes and pipeline reads to the primary; a replica that is
//! SIGKILLed or SIGSTOPped is failed over to the primary and read from again once back; a
//! replica whose replication stream is held (a proxy on the link) reports a growing lag and
//! is left for the primary once the lag passes `store.replica_max_lag`.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use riffle_core::{EntityId, FeatureValue, Timestamp};
use riffle_registry::Registry;
use riffle_store::{
    EntityRead, GroupRow, OnlineStore, ReadAnswer, ReadNode, RowRead, RowWrite, StoreLimits,
    StoreUrl,
};
use riffle_testkit::RedisServer;

fn registry(primary: &str, replicas: &[String], max_lag: &str) -> Arc<Registry> {
    let list: Vec<String> = replicas.iter().map(|r| format!("{r:?}")).collect();
    Arc::new(
        Registry::from_toml(&format!(
            r#"
[project]
name = "rp"
[store]
url = "{primary}"
timeout = "200ms"
connect_timeout = "300ms"
replicas = [{}]
read_from = "replica"
replica_max_lag = "{max_lag}"
[[entities]]
name = "user"
[[feature_groups]]
name = "g"
entity = "user"
ttl = "1h"
freshness_slo = "1m"
staleness_limit = "10m"
features = [{{ name = "n", type = "int64", default = 0 }}]
"#,
            list.join(", ")
        ))
        .unwrap(),
    )
}

async fn open(primary: &RedisServer, replicas: &[String], max_lag: &str) -> OnlineStore {
    let registry = registry(&primary.url(), replicas, max_lag);
    let limits = StoreLimits::from_settings(&registry.store);
    OnlineStore::open(&StoreUrl::parse(&primary.url()).unwrap(), registry, limits)
        .await
        .unwrap()
}

/// Waits until the store's read target is `want`.
async fn wait_target(store: &OnlineStore, want: ReadNode, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let (target, status) = store.replicas();
        if target == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "read target is {target:?}, not {want:?}: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `calls=` of `cmdstat_<cmd>` in `INFO commandstats` (0 when never called).
fn calls(redis: &RedisServer, cmd: &str) -> u64 {
    let info = redis.cli(&["INFO", "commandstats"]).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{cmd}:calls=")))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

async fn write_users(store: &OnlineStore, n: i64) {
    let now = Timestamp::now();
    let writes: Vec<RowWrite> = (0..n)
        .map(|i| RowWrite {
            id: EntityId::new(format!("u{i}")).unwrap(),
            group: 0,
            row: GroupRow {
                event_ts: now,
                computed_at: now,
                values: vec![FeatureValue::Int64(i)],
                partition: None,
            },
        })
        .collect();
    store.write(&writes).await.unwrap();
}

/// Reads user `u{i}` and checks its value is the written one.
async fn read_user(store: &OnlineStore, i: i64) -> ReadAnswer {
    let id = format!("u{i}");
    let answer = store
        .read_routed(&[EntityRead {
            entity: 0,
            id: &id,
            groups: &[0],
        }])
        .await
        .unwrap_or_else(|e| panic!("read of {id} failed: {e}"));
    match &answer.rows[0][0] {
        RowRead::Found(row) => assert_eq!(row.values, [FeatureValue::Int64(i)], "{id}"),
        other => panic!(
            "{id}: expected its row, got {other:?} from {:?}",
            answer.node
        ),
    }
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serving_reads_go_to_the_replica_and_everything_else_to_the_primary() {
    let primary = RedisServer::start().unwrap();
    let replica = RedisServer::start_replica_of(primary.port()).unwrap();
    replica.wait_linked(Duration::from_secs(20)).unwrap();
    let store = open(&primary, &[replica.url()], "5s").await;
    write_users(&store, 10).await;
    wait_target(&store, ReadNode::Replica(0), Duration::from_secs(10)).await;

    let (p_before, r_before) = (calls(&primary, "hmget"), calls(&replica, "hmget"));
    for i in 0..20 {
        let answer = read_user(&store, i % 10).await;
        assert_eq!(answer.node, ReadNode::Replica(0));
        assert!(answer.failed_over_from.is_none());
        let lag = answer
            .replica_lag_ms
            .expect("a replica's answer carries its lag");
        assert!(lag < 1000, "a replica that keeps up lags {lag} ms");
    }
    assert_eq!(
        calls(&replica, "hmget") - r_before,
        20,
        "reads on the replica"
    );
    assert_eq!(
        calls(&primary, "hmget"),
        p_before,
        "no serving read on the primary"
    );

    // Pipeline reads and metadata go to the primary only.
    let hgetall = calls(&replica, "hgetall");
    store.read_raw_fields(0, &["u1"], "~s").await.unwrap();
    store.get_meta("heartbeat").await.unwrap();
    assert_eq!(calls(&primary, "hmget") - p_before, 1);
    assert_eq!(calls(&replica, "hmget") - r_before, 20);
    assert_eq!(calls(&replica, "hgetall"), hgetall);

    // The heartbeat: one field per process on the primary, replicated, with a TTL.
    let beats = primary.cli(&["HGETALL", "rp:~meta:heartbeat"]).unwrap();
    let beat: i64 = beats.lines().nth(1).unwrap().parse().unwrap();
    assert!((Timestamp::now().millis() - beat).abs() < 5_000, "{beats}");
    let ttl: i64 = primary
        .cli(&["PTTL", "rp:~meta:heartbeat"])
        .unwrap()
        .parse()
        .unwrap();
    assert!(ttl > 0, "heartbeat key without a TTL");

    let (_, status) = store.replicas();
    assert!(status[0].healthy && status[0].reachable && status[0].link_up);
    assert_eq!(status[0].url, replica.url());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_only_reads_watch_the_replicas_but_never_read_them() {
    let primary = RedisServer::start().unwrap();
    let replica = RedisServer::start_replica_of(primary.port()).unwrap();
    replica.wait_linked(Duration::from_secs(20)).unwrap();
    let mut registry = (*registry(&primary.url(), &[replica.url()], "5s")).clone();
    registry.store.read_from = riffle_registry::ReadFrom::Primary;
    let limits = StoreLimits::from_settings(&registry.store);
    let store = OnlineStore::open(
        &StoreUrl::parse(&primary.url()).unwrap(),
        Arc::new(registry),
        limits,
    )
    .await
    .unwrap();
    write_users(&store, 3).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !store.replicas().1[0].healthy {
        assert!(Instant::now() < deadline, "{:?}", store.replicas());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = calls(&replica, "hmget");
    for i in 0..5 {
        assert_eq!(read_user(&store, i % 3).await.node, ReadNode::Primary);
    }
    assert_eq!(calls(&replica, "hmget"), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replica_fails_over_to_the_primary_and_is_read_again_once_back() {
    let primary = RedisServer::start().unwrap();
    let mut replica = RedisServer::start_replica_of(primary.port()).unwrap();
    replica.wait_linked(Duration::from_secs(20)).unwrap();
    let store = open(&primary, &[replica.url()], "5s").await;
    write_users(&store, 10).await;
    wait_target(&store, ReadNode::Replica(0), Duration::from_secs(10)).await;

    replica.kill();
    // Every read is answered with the real row; the first goes through a failover unless
    // the monitor saw the death first.
    let mut failovers = 0;
    for i in 0..50 {
        let answer = read_user(&store, i % 10).await;
        assert_eq!(answer.node, ReadNode::Primary, "read {i} after the kill");
        failovers += usize::from(answer.failed_over_from == Some(0));
    }
    assert!(
        failovers <= 1,
        "{failovers} failovers: the replica was not marked"
    );
    assert_eq!(store.replicas().0, ReadNode::Primary);
    // The monitor's next probe finds it gone.
    let deadline = Instant::now() + Duration::from_secs(5);
    while store.replicas().1[0].reachable {
        assert!(Instant::now() < deadline, "{:?}", store.replicas());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!store.replicas().1[0].healthy);

    replica.restart().unwrap();
    replica.wait_linked(Duration::from_secs(20)).unwrap();
    wait_target(&store, ReadNode::Replica(0), Duration::from_secs(10)).await;
    assert_eq!(read_user(&store, 3).await.node, ReadNode::Replica(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_replica_fails_over_within_the_call_budget() {
    let primary = RedisServer::start().unwrap();
    let mut replica = RedisServer::start_replica_of(primary.port()).unwrap();
    replica.wait_linked(Duration::from_secs(20)).unwrap();
    let store = open(&primary, &[replica.url()], "5s").await;
    write_users(&store, 10).await;
    wait_target(&store, ReadNode::Replica(0), Duration::from_secs(10)).await;

    replica.pause();
    let started = Instant::now();
    let first = read_user(&store, 1).await;
    // Half the 200 ms budget on the hung replica, the rest for the primary.
    assert!(started.elapsed() < Duration::from_millis(200));
    eprintln!(
        "first read after SIGSTOP answered by the primary in {:?}",
        started.elapsed()
    );
    assert_eq!(first.node, ReadNode::Primary);
    assert!(
        first.failed_over_from == Some(0) || !store.replicas().1[0].healthy,
        "{first:?}"
    );
    for i in 0..30 {
        assert_eq!(read_user(&store, i % 10).await.node, ReadNode::Primary);
    }
    assert_eq!(store.replicas().0, ReadNode::Primary);

    replica.resume();
    wait_target(&store, ReadNode::Replica(0), Duration::from_secs(10)).await;
    assert_eq!(read_user(&store, 4).await.node, ReadNode::Replica(0));
}

/// A TCP proxy on the replication link that can hold what the primary sends (the link
/// stays up, the replica answers, its data stops advancing): a slow link, for real.
struct LinkProxy {
    port: u16,
    hold: Arc<AtomicBool>,
}

impl LinkProxy {
    fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hold = Arc::new(AtomicBool::new(false));
        let held = hold.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let Ok(up) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let (down_r, up_w) = (conn.try_clone().unwrap(), up.try_clone().unwrap());
                std::thread::spawn(move || pump(down_r, up_w, None));
                let held = held.clone();
                std::thread::spawn(move || pump(up, conn, Some(held)));
            }
        });
        Self { port, hold }
    }
}

/// Copies `from` to `to`; while `hold` is set, what is read is kept back.
fn pump(mut from: TcpStream, mut to: TcpStream, hold: Option<Arc<AtomicBool>>) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(10)));
    let mut pending = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
        let holding = hold.as_ref().is_some_and(|h| h.load(Ordering::Relaxed));
        if !holding && !pending.is_empty() {
            if to.write_all(&pending).is_err() {
                return;
            }
            pending.clear();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_replica_says_so_and_is_left_beyond_the_lag_bound() {
    let primary = RedisServer::start().unwrap();
    let proxy = LinkProxy::start(primary.port());
    let replica = RedisServer::start_replica_of(proxy.port).unwrap();
    replica.wait_linked(Duration::from_secs(20)).unwrap();
    let store = open(&primary, &[replica.url()], "1500ms").await;
    write_users(&store, 10).await;
    wait_target(&store, ReadNode::Replica(0), Duration::from_secs(10)).await;
    assert!(read_user(&store, 2).await.replica_lag_ms.unwrap() < 500);

    // Hold the replication stream: the replica answers, its link is up, its data is old.
    proxy.hold.store(true, Ordering::Relaxed);
    let held_at = Instant::now();
    let mut seen_lag = 0;
    loop {
        let answer = read_user(&store, 2).await;
        match answer.node {
            ReadNode::Replica(0) => {
                let lag = answer.replica_lag_ms.unwrap();
                assert!(lag <= 1500, "served from a replica {lag} ms behind");
                seen_lag = seen_lag.max(lag);
            }
            _ => break,
        }
        assert!(
            held_at.elapsed() < Duration::from_secs(10),
            "never left the replica"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        seen_lag >= 700,
        "lag while held reached only {seen_lag} ms before the replica was left"
    );
    eprintln!(
        "held {:?}: largest lag served {seen_lag} ms, then left for the primary",
        held_at.elapsed()
    );
    let (target, status) = store.replicas();
    assert_eq!(target, ReadNode::Primary);
    assert!(status[0].reachable && status[0].link_up, "{status:?}");
    assert!(status[0].lag_ms.unwrap() > 1500, "{status:?}");
    assert!(
        replica
            .cli(&["INFO", "replication"])
            .unwrap()
            .contains("master_link_status:up"),
        "the link must stay up while held"
    );

    // Released: it catches up and is read from again, lag back near 0.
    proxy.hold.store(false, Ordering::Relaxed);
    wait_target(&store, ReadNode::Replica(0), Duration::from_secs(10)).await;
    assert!(read_user(&store, 5).await.replica_lag_ms.unwrap() < 500);
}

/// A TCP proxy that delays every chunk by `delay` each way: a farther replica.
fn far_proxy(upstream: u16, delay: Duration) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let Ok(up) = TcpStream::connect(("127.0.0.1", upstream)) else {
                continue;
            };
            let (down_r, up_w) = (conn.try_clone().unwrap(), up.try_clone().unwrap());
            std::thread::spawn(move || slow_pump(down_r, up_w, delay));
            std::thread::spawn(move || slow_pump(up, conn, delay));
        }
    });
    port
}

fn slow_pump(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                std::thread::sleep(delay);
                if to.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_go_to_the_nearest_healthy_replica_then_the_next() {
    let primary = RedisServer::start().unwrap();
    let far = RedisServer::start_replica_of(primary.port()).unwrap();
    let mut near = RedisServer::start_replica_of(primary.port()).unwrap();
    far.wait_linked(Duration::from_secs(20)).unwrap();
    near.wait_linked(Duration::from_secs(20)).unwrap();
    // Listed far first: the choice is by measured round trip, not by order.
    let far_url = format!(
        "redis://127.0.0.1:{}",
        far_proxy(far.port(), Duration::from_millis(5))
    );
    let store = open(&primary, &[far_url, near.url()], "5s").await;
    write_users(&store, 10).await;
    wait_target(&store, ReadNode::Replica(1), Duration::from_secs(10)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !store.replicas().1[0].healthy {
        assert!(
            Instant::now() < deadline,
            "the far replica never healthy: {:?}",
            store.replicas()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (target, status) = store.replicas();
    assert_eq!(target, ReadNode::Replica(1), "{status:?}");
    assert!(
        status[0].healthy,
        "the far replica is healthy too: {status:?}"
    );
    assert!(
        status[0].rtt_ms.unwrap() > status[1].rtt_ms.unwrap(),
        "{status:?}"
    );
    let far_before = calls(&far, "hmget");
    for i in 0..10 {
        assert_eq!(read_user(&store, i).await.node, ReadNode::Replica(1));
    }
    assert_eq!(calls(&far, "hmget"), far_before);

    // The nearest dies: reads go to the next nearest healthy replica, not the primary.
    near.kill();
    read_user(&store, 1).await;
    wait_target(&store, ReadNode::Replica(0), Duration::from_secs(10)).await;
    for i in 0..10 {
        assert_eq!(read_user(&store, i).await.node, ReadNode::Replica(0));
    }
    assert!(calls(&far, "hmget") >= far_before + 10);
}

#[test]
fn the_registry_checks_replicas_and_read_from() {
    let problems = |store: &str| {
        let toml = format!(
            "[store]\n{store}\n[[entities]]\nname = \"user\"\n[[feature_groups]]\nname = \"g\"\nentity = \"user\"\nttl = \"1h\"\nfreshness_slo = \"1m\"\nfeatures = [{{ name = \"n\", type = \"int64\", default = 0 }}]\n"
        );
        match Registry::from_toml(&toml) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    };
    assert_eq!(
        problems("url = \"redis://p:6379\"\nreplicas = [\"redis://r1:6380\", \"rediss://u:pw@r2\"]\nread_from = \"replica\""),
        ""
    );
    let bad = problems(
        "url = \"redis://p:6379\"\nreplicas = [\"redis://r1:6380\", \"http://r2\", \"redis://:1\"]",
    );
    assert!(
        bad.contains("store.replicas[1]") && bad.contains("store.replicas[2]"),
        "{bad}"
    );
    assert!(!bad.contains("store.replicas[0]"), "{bad}");
    let embedded = problems("url = \"embedded:./d\"\nreplicas = [\"redis://r1:6380\"]");
    assert!(
        embedded.contains("store.replicas") && embedded.contains("redis:// primary"),
        "{embedded}"
    );
    let from = problems("url = \"redis://p:6379\"\nread_from = \"nearest\"");
    assert!(from.contains("store.read_from"), "{from}");
    let none = problems("url = \"redis://p:6379\"\nread_from = \"replica\"");
    assert!(
        none.contains("store.read_from") && none.contains("store.replicas"),
        "{none}"
    );
    let lag = problems("url = \"redis://p:6379\"\nreplica_max_lag = \"soon\"");
    assert!(lag.contains("store.replica_max_lag"), "{lag}");
}
