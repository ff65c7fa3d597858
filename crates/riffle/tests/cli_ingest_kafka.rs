//! `riffle ingest --brokers … --topic … --group-id …` end to end with the real binary and a
//! real (tansu) broker: a random event stream keyed by entity over 4 partitions, consumed
//! until the group's committed offsets reach the end of every partition, then stopped with
//! SIGTERM; every stored value equals the independent oracle. Messages are produced one per
//! produce call (tansu cannot fetch from an offset inside a producer batch, and its high
//! watermark is exact only then).

mod common;
mod ingest_support;

use std::collections::BTreeSet;
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::TestCommand;
use ingest_support::{generate, oracle, Ev, MINUTE, REGISTRY};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use riffle_core::Timestamp;
use riffle_registry::Registry;
use riffle_store::{EntityRead, GroupRow, OnlineStore, RowRead, StoreLimits, StoreUrl};
use riffle_testkit::KafkaBroker;

const TOPIC: &str = "transactions";
const GROUP: &str = "riffle-itest";
const PARTITIONS: i32 = 4;
const DEADLINE: Duration = Duration::from_secs(60);
/// Events per test (plus a few malformed ones).
const EVENTS: usize = 1500;

/// The broker with the topic, and the generated stream as `(key, payload)` messages.
struct Setup {
    broker: KafkaBroker,
    messages: Vec<(String, String)>,
    accepted: Vec<Ev>,
}

fn setup(seed: u64, count: usize) -> Setup {
    let broker = KafkaBroker::start().expect("tansu starts (scripts/test.sh installs it)");
    broker
        .create_topic(TOPIC, PARTITIONS as u32)
        .expect("topic created");
    let now = Timestamp::now().millis();
    let g = generate(seed, now, 50, count, 10 * MINUTE, true);
    let messages = g
        .text
        .lines()
        .map(|line| {
            let key = serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v["user_id"].as_str().map(str::to_owned))
                .unwrap_or_else(|| "malformed".to_owned());
            (key, line.to_owned())
        })
        .collect();
    Setup {
        broker,
        messages,
        accepted: g.accepted,
    }
}

/// Produces each message in a produce call of its own, waiting for its acknowledgement (see
/// the module docs for why).
fn produce(bootstrap: &str, messages: &[(String, String)]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "0")
        .create()
        .expect("producer config is valid");
    for (key, payload) in messages {
        producer
            .send(BaseRecord::to(TOPIC).key(key).payload(payload))
            .map_err(|(e, _)| e)
            .expect("message queued");
        let started = Instant::now();
        while producer.in_flight_count() > 0 {
            assert!(started.elapsed() < DEADLINE, "message not delivered");
            producer.poll(Duration::from_millis(1));
        }
    }
}

/// `riffle ingest` on the topic, in the background.
fn start_ingest(cmd: &mut TestCommand, store: &str, bootstrap: &str) -> Child {
    // Lateness is judged against the process-wide watermark, and partitions are consumed at
    // different paces: allow more than the stream's 10-minute span.
    let registry = REGISTRY.replace(
        "time_field = \"event_time\"",
        "time_field = \"event_time\"\nallowed_lateness = \"1h\"",
    );
    let config = cmd.write("riffle.toml", &registry);
    cmd.arg("ingest")
        .arg("--config")
        .arg(config)
        .args(["--store", store, "--json"])
        .args([
            "--brokers",
            bootstrap,
            "--topic",
            TOPIC,
            "--group-id",
            GROUP,
        ]);
    cmd.spawn()
}

/// Stops `child` with SIGTERM and checks that it exits 0 (after its last flush and commit).
fn stop(child: Child) {
    riffle_testkit::signal(child.id(), "TERM").expect("kill -TERM");
    let out = child.wait_with_output().expect("ingest exits");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ingest: {:?}\n{stdout}", out.status);
    let summary: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"));
    assert!(summary["events_read"].as_u64().is_some(), "{summary}");
    eprintln!("ingest summary: {summary}");
}

/// Waits until the group's committed offset of every partition is its high watermark
/// (every message's effects are durable), with `total` messages in all.
fn wait_committed(bootstrap: &str, total: usize, alive: &mut dyn FnMut() -> bool) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", GROUP)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer config is valid");
    let started = Instant::now();
    let mut last = String::new();
    while started.elapsed() < DEADLINE {
        assert!(alive(), "ingest exited early");
        let mut high = 0i64;
        let mut tpl = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            if let Ok((_, hi)) = consumer.fetch_watermarks(TOPIC, p, Duration::from_secs(5)) {
                high += hi;
            }
            tpl.add_partition(TOPIC, p);
        }
        if let Ok(committed) = consumer.committed_offsets(tpl, Duration::from_secs(5)) {
            let done: i64 = committed
                .elements()
                .iter()
                .map(|e| match e.offset() {
                    Offset::Offset(o) => o,
                    _ => 0,
                })
                .sum();
            last = format!("committed {done} of {high} (produced {total})");
            if high == total as i64 && done == high {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("the group did not commit everything in {DEADLINE:?}: {last}");
}

/// Reads the `tx` rows of `users` (None where missing).
fn read_rows(url: &StoreUrl, users: &[String]) -> Vec<Option<GroupRow>> {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let registry = Arc::new(Registry::from_toml(REGISTRY).expect("registry"));
        let mut limits = StoreLimits::from_settings(&registry.store);
        limits.timeout = Duration::from_secs(10);
        let store = OnlineStore::open(url, registry, limits)
            .await
            .expect("store");
        let groups = [0];
        let reads: Vec<EntityRead> = users
            .iter()
            .map(|id| EntityRead {
                entity: 0,
                id,
                groups: &groups,
            })
            .collect();
        let mut out = Vec::new();
        for mut rows in store.read(&reads).await.expect("read") {
            out.push(match rows.remove(0) {
                RowRead::Found(row) => Some(row),
                RowRead::Missing => None,
                RowRead::Corrupt(e) => panic!("corrupt row: {e}"),
            });
        }
        out
    })
}

/// Every value of every user equals the oracle's read at the row's `computed_at`.
fn check_against_oracle(url: &StoreUrl, events: &[Ev]) {
    let users: Vec<String> = events
        .iter()
        .map(|e| e.user.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let rows = read_rows(url, &users);
    for (user, row) in users.iter().zip(rows) {
        let row = row.unwrap_or_else(|| panic!("no row for {user}"));
        let want = oracle(events, user, row.computed_at.millis());
        assert_eq!(row.values, want, "{user} at {}", row.computed_at);
        assert!(row.event_ts <= row.computed_at);
    }
}

fn running(child: &mut Child) -> bool {
    matches!(child.try_wait(), Ok(None))
}

/// Kills the ingest process if the test fails before stopping it.
struct Running(Option<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn kafka_ingest_matches_the_oracle() {
    let s = setup(11, EVENTS);
    let bootstrap = s.broker.bootstrap();
    let mut cmd = TestCommand::new();
    let data = cmd.dir().join("data");
    let store = format!("embedded:{}", data.display());
    let mut guard = Running(Some(start_ingest(&mut cmd, &store, &bootstrap)));
    produce(&bootstrap, &s.messages);
    wait_committed(&bootstrap, s.messages.len(), &mut || {
        guard.0.as_mut().is_some_and(running)
    });
    stop(guard.0.take().expect("still running"));
    check_against_oracle(&StoreUrl::Embedded(data), &s.accepted);
}
