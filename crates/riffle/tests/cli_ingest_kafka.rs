//! `riffle ingest --brokers … --topic … --group-id …` end to end with the real binary and a
//! real (tansu) broker: a random event stream keyed by entity over 4 partitions, consumed
//! until the group's committed offsets reach the end of every partition, then stopped with
//! SIGTERM; every stored value equals the independent oracle. Messages are produced one per
//! produce call (tansu cannot fetch from an offset inside a producer batch, and its high
//! watermark is exact only then). The fault tests are in `cli_ingest_kafka_faults.rs`.

mod ingest_support;

use std::time::Duration;

use ingest_support::kafka::{self, Background, Committed, Worker, PARTITIONS, TOPIC};
use ingest_support::{generate, MINUTE};
use riffle_core::Timestamp;
use riffle_store::StoreUrl;
use riffle_testkit::KafkaBroker;

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
