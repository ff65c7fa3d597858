//! `riffle ingest --brokers … --topic … --group-id …` end to end with the real binary and a
//! real (tansu) broker: a random event stream keyed by entity over 4 partitions, consumed
//! until the group's committed offsets reach the end of every partition, then stopped with
//! SIGTERM; every stored value equals the independent oracle. Messages are produced one per
//! produce call (tansu cannot fetch from an offset inside a producer batch, and its high
//! watermark is exact only then). Its malformed events land on a dead-letter topic, counted
//! by reason. A second test drains a topic of old events and leaves it
//! idle: the caught-up consumer publishes a watermark near now. The fault tests are in
//! `cli_ingest_kafka_faults.rs`.

mod common;
mod ingest_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::TestCommand;

use ingest_support::kafka::{self, Background, Committed, Worker, PARTITIONS, TOPIC};
use ingest_support::{generate, MINUTE};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use riffle_core::Timestamp;
use riffle_store::StoreUrl;
use riffle_testkit::{KafkaBroker, RedisServer};

const GROUP: &str = "riffle-itest";
/// The dead-letter topic of the oracle test's source.
const DEAD_LETTERS: &str = "transactions.dlq";
const DEADLINE: Duration = Duration::from_secs(60);
/// Events per test (plus a few malformed ones).
const EVENTS: usize = 1500;

#[test]
fn kafka_ingest_matches_the_oracle() {
    let broker = KafkaBroker::start().expect("tansu starts (scripts/test.sh installs it)");
    broker
        .create_topic(TOPIC, PARTITIONS as u32)
        .expect("topic created");
    broker
        .create_topic(DEAD_LETTERS, 1)
        .expect("dead-letter topic created");
    let bootstrap = broker.bootstrap();
    let g = generate(11, Timestamp::now().millis(), 50, EVENTS, 10 * MINUTE, true);
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("riffle.toml");
    let registry = kafka::registry().replace(
        "time_field = \"event_time\"",
        &format!("time_field = \"event_time\"\ndead_letter = \"kafka:{DEAD_LETTERS}\""),
    );
    assert!(
        registry.contains("dead_letter"),
        "the test registry changed"
    );
    std::fs::write(&config, registry).expect("registry written");
    let data = dir.path().join("data");
    let store = format!("embedded:{}", data.display());
    let mut worker = Worker::start(dir.path(), "ingest", &config, &store, &bootstrap, GROUP);
    let ends = Background::start(&bootstrap, kafka::keyed(&g), Duration::ZERO).finish();
    assert_eq!(ends.iter().sum::<i64>(), g.text.lines().count() as i64);
    Committed::new(&bootstrap, GROUP).wait_reach(&ends, DEADLINE, &mut worker);
    let summary = worker.terminate();
    assert!(summary["events_read"].as_u64().is_some(), "{summary}");
    kafka::check_against_oracle(&StoreUrl::Embedded(data), &g.accepted);
    let mut expected: BTreeMap<String, usize> = BTreeMap::new();
    for reason in g.rejected.values() {
        *expected.entry((*reason).to_owned()).or_default() += 1;
    }
    assert!(!expected.is_empty(), "the stream has malformed events");
    let total = expected.values().sum();
    assert_eq!(dead_letters(&bootstrap, total), expected);
}

/// The dead letters on the topic, counted by their `reason` header (waits for `total`).
fn dead_letters(bootstrap: &str, total: usize) -> BTreeMap<String, usize> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "dead-letter-reader")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer config is valid");
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(DEAD_LETTERS, 0, Offset::Beginning)
        .expect("partition added");
    consumer.assign(&list).expect("assigned");
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let started = Instant::now();
    while seen.values().sum::<usize>() < total && started.elapsed() < DEADLINE {
        let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let body: serde_json::Value =
            serde_json::from_slice(message.payload().unwrap_or_default()).expect("JSON letter");
        let header = message
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == "reason"))
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned());
        assert_eq!(header.as_deref(), body["reason"].as_str(), "{body}");
        assert!(
            body["payload"].is_string() && body["position"].is_string(),
            "{body}"
        );
        *seen.entry(header.unwrap_or_default()).or_default() += 1;
    }
    seen
}

/// Every event is 20 to 25 minutes old and the topic then stays idle: once every partition
/// is drained and committed, ingest publishes a watermark of now (nothing is pending, so
/// nothing is behind), and `riffle lag` reports seconds, not 20 minutes. Without the
/// caught-up mark the watermark stays at the newest event time and this fails.
#[test]
fn an_idle_drained_topic_publishes_a_watermark_near_now() {
    let broker = KafkaBroker::start().expect("tansu starts (scripts/test.sh installs it)");
    broker
        .create_topic(TOPIC, PARTITIONS as u32)
        .expect("topic created");
    let redis = RedisServer::start().expect("redis-server starts");
    let bootstrap = broker.bootstrap();
    let old = Timestamp::now().millis() - 20 * MINUTE;
    let g = generate(12, old, 20, 200, 5 * MINUTE, false);
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("riffle.toml");
    std::fs::write(&config, kafka::registry()).expect("registry written");
    let mut worker = Worker::start(
        dir.path(),
        "ingest",
        &config,
        &redis.url(),
        &bootstrap,
        "riffle-idle",
    );
    let ends = Background::start(&bootstrap, kafka::keyed(&g), Duration::ZERO).finish();
    Committed::new(&bootstrap, "riffle-idle").wait_reach(&ends, DEADLINE, &mut worker);
    let started = Instant::now();
    loop {
        let mut cmd = TestCommand::new();
        cmd.arg("lag")
            .arg("--config")
            .arg(&config)
            .args(["--store", &redis.url(), "--json"]);
        let out = cmd.output();
        let report: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("lag printed no JSON ({e}): {out:?}"));
        let lag_ms = report["sources"][0]["lag_ms"].as_u64();
        if lag_ms.is_some_and(|l| l < 10_000) {
            assert_eq!(report["ok"], true, "{report}");
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "the watermark of a drained, idle topic never came near now: {report}\n{}",
            worker.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    worker.terminate();
}
