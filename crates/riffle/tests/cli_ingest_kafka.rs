//! `riffle ingest --brokers … --topic … --group-id …` end to end with the real binary and a
//! real (tansu) broker: a random event stream keyed by entity over 4 partitions, consumed
//! until the group's committed offsets reach the end of every partition, then stopped with
//! SIGTERM; every stored value equals the independent oracle. Messages are produced one per
//! produce call (tansu cannot fetch from an offset inside a producer batch, and its high
//! watermark is exact only then). A second test drains a topic of old events and leaves it
//! idle: the caught-up consumer publishes a watermark near now. The fault tests are in
//! `cli_ingest_kafka_faults.rs`.

mod common;
mod ingest_support;

use std::time::{Duration, Instant};

use common::TestCommand;

use ingest_support::kafka::{self, Background, Committed, Worker, PARTITIONS, TOPIC};
use ingest_support::{generate, MINUTE};
use riffle_core::Timestamp;
use riffle_store::StoreUrl;
use riffle_testkit::{KafkaBroker, RedisServer};

const GROUP: &str = "riffle-itest";
const DEADLINE: Duration = Duration::from_secs(60);
/// Events per test (plus a few malformed ones).
const EVENTS: usize = 1500;

#[test]
fn kafka_ingest_matches_the_oracle() {
    let broker = KafkaBroker::start().expect("tansu starts (scripts/test.sh installs it)");
    broker
        .create_topic(TOPIC, PARTITIONS as u32)
        .expect("topic created");
    let bootstrap = broker.bootstrap();
    let g = generate(11, Timestamp::now().millis(), 50, EVENTS, 10 * MINUTE, true);
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("riffle.toml");
    std::fs::write(&config, kafka::registry()).expect("registry written");
    let data = dir.path().join("data");
    let store = format!("embedded:{}", data.display());
    let mut worker = Worker::start(dir.path(), "ingest", &config, &store, &bootstrap, GROUP);
    let ends = Background::start(&bootstrap, kafka::keyed(&g), Duration::ZERO).finish();
    assert_eq!(ends.iter().sum::<i64>(), g.text.lines().count() as i64);
    Committed::new(&bootstrap, GROUP).wait_reach(&ends, DEADLINE, &mut worker);
    let summary = worker.terminate();
    assert!(summary["events_read"].as_u64().is_some(), "{summary}");
    kafka::check_against_oracle(&StoreUrl::Embedded(data), &g.accepted);
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
