//! The ingest pipeline across restarts and rebalances, at the pipeline API with the embedded
//! store and a feed that stays open: window expiries of entities nobody touches again fire
//! after a restart (the pending-expiry index), only for the streams this process owns;
//! lateness is judged per stream and as a clean run judged it; a caught-up input publishes a
//! watermark of now; from Kafka, each owned partition gets its own mark and rows name their
//! partition.
//!
//! Windows are seconds long so decay is observed quickly. No timing asserts: every wait is a
//! poll with a generous deadline, and every stored value is compared with an oracle read at
//! the row's own `computed_at`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use riffle_core::{FeatureValue, Timestamp};
use riffle_ingest::dead_letter::DeadLetterTarget;
use riffle_ingest::feed::{kafka_stream_id, Feed, Record};
use riffle_ingest::pipeline::{self, Control, IngestSummary, PipelineOptions};
use riffle_registry::Registry;
use riffle_store::meta::watermark_name;
use riffle_store::watermark::{PartitionMark, PartitionWatermarks, WatermarkRecord};
use riffle_store::{EntityRead, GroupRow, OnlineStore, RowRead, StoreLimits, StoreUrl};
use riffle_testkit::fixtures;
use tokio::sync::mpsc;

const DEADLINE: Duration = Duration::from_secs(40);

/// The seconds-long windows fixture with an `allowed_lateness`.
fn registry_text(lateness: &str) -> String {
    fixtures::with(
        fixtures::SHORT_WINDOWS_TOML,
        "time_field = \"ts\"\n",
        &format!("time_field = \"ts\"\nallowed_lateness = \"{lateness}\"\n"),
    )
}

/// One event: (user, event time ms, amount).
type Ev = (String, i64, f64);

/// The documented window definition over raw events: 1 s tiles; `n_4s` counts events in
/// the 4 tiles ending with the reader's, `sum_8s` sums amounts (whole numbers: exact in any
/// order) in the last 8.
fn oracle(events: &[Ev], user: &str, at: i64) -> Vec<FeatureValue> {
    let tile = |t: i64| t.div_euclid(1_000);
    let within = |t: i64, n: i64| tile(t) > tile(at) - n && tile(t) <= tile(at);
    let mine = events.iter().filter(|e| e.0 == user);
    let n = mine.clone().filter(|e| within(e.1, 4)).count() as i64;
    let sum: f64 = mine.filter(|e| within(e.1, 8)).map(|e| e.2).sum();
    vec![FeatureValue::Int64(n), FeatureValue::Float64(sum)]
}

fn record(stream: u64, offset: u64, partition: Option<i32>, e: &Ev) -> Record {
    Record {
        stream,
        offset,
        partition,
        payload: format!(r#"{{"user_id":"{}","ts":{},"amount":{}}}"#, e.0, e.1, e.2).into_bytes(),
    }
}

struct Setup {
    registry: Arc<Registry>,
    store: Arc<OnlineStore>,
    dir: tempfile::TempDir,
}

async fn setup(lateness: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let registry = Arc::new(Registry::from_toml(&registry_text(lateness)).unwrap());
    let url = StoreUrl::parse(&format!("embedded:{}", dir.path().join("store").display())).unwrap();
    let mut limits = StoreLimits::from_settings(&registry.store);
    limits.timeout = Duration::from_secs(10);
    let store = Arc::new(
        OnlineStore::open(&url, registry.clone(), limits)
            .await
            .unwrap(),
    );
    Setup {
        registry,
        store,
        dir,
    }
}

/// A running pipeline and its feed, open until [`Running::finish`].
struct Running {
    feed: mpsc::Sender<std::io::Result<Feed>>,
    done: std::thread::JoinHandle<IngestSummary>,
}

fn start(s: &Setup, stream: u64, kafka_topic: Option<&str>) -> Running {
    let (feed, rx) = mpsc::channel(16);
    let options = PipelineOptions {
        source: 0,
        stream_id: stream,
        kafka_topic: kafka_topic.map(str::to_owned),
        dead_letter: DeadLetterTarget::File(s.dir.path().join("dead.ndjson")),
        flush_interval: Duration::from_millis(100),
        flush_max_events: 1_000,
    };
    let control = Control::default();
    let (registry, store) = (s.registry.clone(), s.store.clone());
    // `run` is not `Send` (its progress callback): it gets a thread and runtime of its own.
    let done = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(pipeline::run(
            registry,
            store,
            options,
            rx,
            control,
            &mut |_| {},
        ))
        .unwrap()
    });
    Running { feed, done }
}

impl Running {
    async fn send(&self, feed: Feed) {
        self.feed.send(Ok(feed)).await.unwrap();
    }

    /// Closes the feed: the pipeline applies what was sent, flushes and returns.
    async fn finish(self) -> IngestSummary {
        drop(self.feed);
        let done = self.done;
        tokio::task::spawn_blocking(move || done.join().unwrap())
            .await
            .unwrap()
    }
}

async fn read_row(store: &OnlineStore, user: &str) -> Option<GroupRow> {
    let groups = [0];
    let reads = [EntityRead {
        entity: 0,
        id: user,
        groups: &groups,
    }];
    match store.read(&reads).await.unwrap().remove(0).remove(0) {
        RowRead::Found(row) => Some(row),
        RowRead::Missing => None,
        RowRead::Corrupt(e) => panic!("corrupt row of {user}: {e}"),
        RowRead::Unavailable => panic!("store node unavailable"),
    }
}

/// Polls until, read after `settled` (every window of every event has passed), every
/// user's stored row equals the oracle read now; every row read on the way must equal the
/// oracle read at its own `computed_at`.
async fn wait_settled(store: &OnlineStore, events: &[Ev], users: &[String], settled: i64) {
    let started = Instant::now();
    loop {
        let mut pending = Vec::new();
        let now = now_ms();
        for user in users {
            let row = read_row(store, user)
                .await
                .unwrap_or_else(|| panic!("no row for {user}"));
            let at = row.computed_at.millis();
            assert_eq!(row.values, oracle(events, user, at), "{user} at {at}");
            if now < settled || row.values != oracle(events, user, now) {
                pending.push(user.clone());
            }
        }
        if pending.is_empty() {
            return;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "rows never rewritten after their windows moved: {pending:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn now_ms() -> i64 {
    Timestamp::now().millis()
}

/// Events of 12 users in the last ~2 s: their windows end 4 s and 8 s later.
fn recent_events(prefix: &str) -> Vec<Ev> {
    let now = now_ms();
    (0..36)
        .map(|i| {
            (
                format!("{prefix}{}", i % 12),
                now - 2_000 + i * 50,
                (i % 5) as f64,
            )
        })
        .collect()
}

fn users(events: &[Ev]) -> Vec<String> {
    let mut u: Vec<String> = events.iter().map(|e| e.0.clone()).collect();
    u.sort();
    u.dedup();
    u
}

/// Ingest stops with events whose windows are still open; a restarted ingest that gets no
/// event at all rewrites their rows as the windows pass (some already passed while it was
/// down: rewritten at once), down to zero, and the index is empty again at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiries_fire_after_a_restart_without_new_events() {
    let s = setup("1h").await;
    let stream = 0xF11E;
    let events = recent_events("u");
    let run = start(&s, stream, None);
    let records: Vec<Record> = (1..)
        .zip(&events)
        .map(|(o, e)| record(stream, o, None, e))
        .collect();
    run.send(Feed::Records(records)).await;
    let first = run.finish().await;
    assert_eq!(first.applied, events.len() as u64);
    // Down for a while: the 4 s windows of the earliest events pass meanwhile.
    tokio::time::sleep(Duration::from_millis(2_500)).await;

    let run = start(&s, stream, None);
    let last = events.iter().map(|e| e.1).max().unwrap();
    // Past every window of every event (8 s, and the tile of the last event).
    let settled = (last.div_euclid(1_000) + 8) * 1_000;
    wait_settled(&s.store, &events, &users(&events), settled).await;
    let second = run.finish().await;
    assert_eq!(second.events_read, 0);
    assert!(second.entities_loaded >= 12, "{second:?}");
    for user in users(&events) {
        let row = read_row(&s.store, &user).await.unwrap();
        assert_eq!(
            row.values,
            vec![FeatureValue::Int64(0), FeatureValue::Float64(0.0)]
        );
    }
    let index = s
        .store
        .get_meta(&riffle_store::meta::timers_name("tx", stream))
        .await
        .unwrap();
    assert!(
        index.is_empty(),
        "nothing pending, nothing indexed: {index:?}"
    );
}

/// Ingest was down until every window of every event had passed: no timer is left to fire,
/// yet the restarted run rewrites every row at once (the state says when its rows were
/// computed), and leaves nothing in the index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_whose_windows_passed_while_ingest_was_down_are_rewritten_at_start() {
    let s = setup("1h").await;
    let stream = 0xD0_5E;
    let events = recent_events("d");
    let run = start(&s, stream, None);
    let records: Vec<Record> = (1..)
        .zip(&events)
        .map(|(o, e)| record(stream, o, None, e))
        .collect();
    run.send(Feed::Records(records)).await;
    run.finish().await;
    let last = events.iter().map(|e| e.1).max().unwrap();
    let settled = (last.div_euclid(1_000) + 8) * 1_000;
    while now_ms() < settled + 200 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for user in users(&events) {
        let row = read_row(&s.store, &user).await.unwrap();
        assert_ne!(
            row.values,
            oracle(&events, &user, now_ms()),
            "{user}: not stale yet?"
        );
    }
    let run = start(&s, stream, None);
    wait_settled(&s.store, &events, &users(&events), settled).await;
    let summary = run.finish().await;
    assert!(summary.entities_written >= 12, "{summary:?}");
    let index = s
        .store
        .get_meta(&riffle_store::meta::timers_name("tx", stream))
        .await
        .unwrap();
    assert!(
        index.is_empty(),
        "nothing pending, nothing indexed: {index:?}"
    );
}

/// After a Kafka rebalance the pipeline takes over the pending expiries of the partitions
/// it is assigned, and never writes an entity of a partition it does not own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assignment_takes_over_only_the_owned_partitions() {
    let s = setup("1h").await;
    let (p0, p1) = (kafka_stream_id("t", 0), kafka_stream_id("t", 1));
    let mine = recent_events("a");
    let theirs = recent_events("b");
    let run = start(&s, 0, Some("t"));
    run.send(Feed::Assigned {
        partitions: vec![0, 1],
        partition_count: Some(2),
    })
    .await;
    let mut records = Vec::new();
    for (o, (a, b)) in (0..).zip(mine.iter().zip(&theirs)) {
        records.push(record(p0, o, Some(0), a));
        records.push(record(p1, o, Some(1), b));
    }
    run.send(Feed::Records(records)).await;
    run.send(Feed::Revoked).await;
    run.finish().await;
    let before: Vec<GroupRow> = {
        let mut rows = Vec::new();
        for user in users(&theirs) {
            rows.push(read_row(&s.store, &user).await.unwrap());
        }
        rows
    };

    // Another worker (not running here) owns partition 1 now; this one gets partition 0.
    let run = start(&s, 0, Some("t"));
    run.send(Feed::Assigned {
        partitions: vec![0],
        partition_count: Some(2),
    })
    .await;
    let last = mine.iter().map(|e| e.1).max().unwrap();
    wait_settled(
        &s.store,
        &mine,
        &users(&mine),
        (last.div_euclid(1_000) + 8) * 1_000,
    )
    .await;
    run.finish().await;
    for (user, old) in users(&theirs).iter().zip(before) {
        let row = read_row(&s.store, user).await.unwrap();
        assert_eq!(row, old, "{user} of an unowned partition was written");
    }
}

/// Lateness is judged per stream, and a restarted run judges an event as a clean run did:
/// the streams' largest event times are durable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lateness_is_per_stream_and_survives_a_restart() {
    let s = setup("2s").await;
    let (fast, slow) = (1u64, 2u64);
    let now = now_ms();
    let ev = |t: i64| ("x".to_owned(), t, 1.0);
    let run = start(&s, fast, None);
    // The slow stream is 3 s behind the fast one: judged on its own, nothing is late.
    run.send(Feed::Records(vec![
        record(fast, 1, None, &ev(now)),
        record(slow, 1, None, &ev(now - 3_000)),
        record(slow, 2, None, &ev(now - 3_500)),
        record(fast, 2, None, &ev(now - 1_000)),
    ]))
    .await;
    let first = run.finish().await;
    assert_eq!(
        (first.applied, first.dead_lettered_total()),
        (4, 0),
        "{first:?}"
    );

    // Restarted: 2.5 s behind the fast stream's latest is too late, as in one clean run.
    let run = start(&s, fast, None);
    run.send(Feed::Records(vec![
        record(fast, 3, None, &ev(now - 2_500)),
        record(slow, 3, None, &ev(now - 5_100)),
        record(slow, 4, None, &ev(now - 4_900)),
    ]))
    .await;
    let second = run.finish().await;
    assert_eq!(second.applied, 1, "{second:?}");
    assert_eq!(second.dead_lettered.get("too_late"), Some(&2), "{second:?}");
}

/// A drained input (the feed says so) publishes the flush time as its watermark, though the
/// last event is old; once records come again, the largest event time is published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caught_up_input_publishes_a_watermark_of_now() {
    let s = setup("1h").await;
    let stream = 7;
    let old = now_ms() - 5_000;
    let run = start(&s, stream, None);
    run.send(Feed::Records(vec![record(
        stream,
        1,
        None,
        &("u".into(), old, 1.0),
    )]))
    .await;
    let watermark = || async {
        let records = s.store.get_meta(&watermark_name("tx")).await.unwrap();
        records
            .iter()
            .filter_map(|(_, b)| WatermarkRecord::decode(b))
            .map(|r| r.watermark_ms)
            .max()
    };
    let started = Instant::now();
    while watermark().await != Some(old) {
        assert!(started.elapsed() < DEADLINE, "no watermark published");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let marked = now_ms();
    run.send(Feed::CaughtUp(vec![stream])).await;
    while watermark().await.is_none_or(|w| w < marked) {
        assert!(
            started.elapsed() < DEADLINE,
            "the watermark stays at the old event"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    run.finish().await;
}

/// From Kafka, every flush publishes the mark of each owned partition by its own progress
/// (a drained one at now, the others at their largest event time), and every row names the
/// partition its entity's events arrive on; a revoked partition is no longer marked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_partition_is_marked_by_its_own_progress_and_rows_name_theirs() {
    let s = setup("1h").await;
    let (p0, p1) = (kafka_stream_id("t", 0), kafka_stream_id("t", 1));
    let now = now_ms();
    // Both within the 8 s window (older events would be outside every window).
    let (slow, fast) = (now - 6_000, now - 1_000);
    let run = start(&s, 0, Some("t"));
    run.send(Feed::Assigned {
        partitions: vec![0, 1],
        partition_count: Some(3),
    })
    .await;
    run.send(Feed::Records(vec![
        record(p0, 5, Some(0), &("a".into(), slow, 1.0)),
        record(p1, 9, Some(1), &("b".into(), fast, 1.0)),
    ]))
    .await;
    let marks = || async {
        let name = riffle_store::meta::partitions_name("tx");
        let stored = s.store.get_meta(&name).await.unwrap();
        let marks: Vec<PartitionMark> = stored
            .iter()
            .filter_map(|(_, b)| PartitionMark::decode(b))
            .collect();
        PartitionWatermarks::from_marks(marks)
    };
    let started = Instant::now();
    let first = loop {
        if let Some(m) = marks()
            .await
            .filter(|m| m.of(0).is_some() && m.of(1).is_some())
        {
            break m;
        }
        assert!(started.elapsed() < DEADLINE, "no partition marks published");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!((first.topic.as_str(), first.marks.len()), ("t", 3));
    assert_eq!((first.of(0), first.of(1)), (Some(slow), Some(fast)));
    assert_eq!(first.missing(), vec![2], "nobody owns partition 2");
    let offsets: Vec<Option<i64>> = first.marks[..2]
        .iter()
        .map(|m| m.as_ref().and_then(|m| m.next_offset))
        .collect();
    assert_eq!(
        offsets,
        [Some(6), Some(10)],
        "one past the last offset durable"
    );
    assert_eq!(read_row(&s.store, "a").await.unwrap().partition, Some(0));
    assert_eq!(read_row(&s.store, "b").await.unwrap().partition, Some(1));

    // Partition 1 is drained: its mark moves to now; partition 0's stays at its event.
    let marked = now_ms();
    run.send(Feed::CaughtUp(vec![p1])).await;
    loop {
        let m = marks().await.unwrap();
        if m.of(1).is_some_and(|w| w >= marked) {
            assert_eq!(m.of(0), Some(slow));
            break;
        }
        assert!(started.elapsed() < DEADLINE, "partition 1's mark stays");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Partition 0 is revoked, 1 kept: only 1's mark moves on.
    run.send(Feed::Revoked).await;
    run.send(Feed::Assigned {
        partitions: vec![1],
        partition_count: Some(3),
    })
    .await;
    run.send(Feed::CaughtUp(vec![p1])).await;
    let revoked_at = now_ms();
    loop {
        let m = marks().await.unwrap();
        let p0_at = m.marks[0].as_ref().unwrap().published_at_ms;
        if m.marks[1].as_ref().unwrap().published_at_ms > revoked_at + 300 {
            assert!(
                p0_at <= revoked_at + 300,
                "a revoked partition is still marked"
            );
            assert_eq!(m.of(0), Some(slow));
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "partition 1 is not marked any more"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    run.finish().await;
}
