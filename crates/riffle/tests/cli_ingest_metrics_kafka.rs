//! The ingest process's own `/metrics` and `/health` while it consumes a real (tansu)
//! Kafka topic with the real binary: events read and applied reach what was produced, and
//! every partition shows its consumer lag in messages (from librdkafka's statistics) and
//! in seconds (from its largest applied event time), falling to zero messages once the
//! commits catch up; `/health` says healthy. Messages are produced one per produce call
//! (tansu's high watermark is exact only then).

mod common;
mod ingest_support;

use std::time::{Duration, Instant};

use common::{Running, TestCommand};
use ingest_support::{generate, MINUTE, REGISTRY};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use riffle_core::Timestamp;
use riffle_testkit::KafkaBroker;
use serde_json::Value;

const TOPIC: &str = "tx-metrics";
/// Events asked of the generator (bursts make it a few more).
const EVENTS: usize = 200;

/// Produces `(key, value)` pairs, each flushed before the next.
fn produce(bootstrap: &str, messages: &[(String, String)]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "0")
        .create()
        .expect("producer config is valid");
    for (key, value) in messages {
        let record = BaseRecord::to(TOPIC).key(key).payload(value);
        producer.send(record).map_err(|(e, _)| e).expect("queued");
        producer
            .flush(Duration::from_secs(10))
            .expect("acknowledged");
    }
}

/// The value of the first sample whose line starts with `start`.
fn sample(text: &str, start: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(start))
        .and_then(|rest| rest.trim().parse().ok())
}

#[test]
fn kafka_partition_lag_and_counters_are_on_the_ingest_metrics() {
    let broker = KafkaBroker::start().expect("tansu starts (scripts/test.sh installs it)");
    broker.create_topic(TOPIC, 2).expect("topic created");
    let bootstrap = broker.bootstrap();
    let g = generate(5, Timestamp::now().millis(), 30, EVENTS, 10 * MINUTE, false);
    let messages: Vec<(String, String)> = g
        .text
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            (v["user_id"].as_str().unwrap().to_owned(), line.to_owned())
        })
        .collect();
    produce(&bootstrap, &messages);
    let produced = messages.len() as f64;

    let port = riffle_testkit::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut cmd = TestCommand::new();
    let config = cmd.write("riffle.toml", REGISTRY);
    let data = cmd.dir().join("data");
    let child = cmd
        .arg("ingest")
        .arg("--config")
        .arg(&config)
        .arg("--store")
        .arg(format!("embedded:{}", data.display()))
        .args(["--brokers", &bootstrap, "--topic", TOPIC])
        .args(["--group-id", "riffle-metrics", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .spawn();
    let mut running = Running(child);
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();

    let src = "{source=\"transactions\"";
    let deadline = Instant::now() + Duration::from_secs(90);
    let text = loop {
        let text = client
            .get(format!("{base}/metrics"))
            .send()
            .and_then(|r| r.text())
            .unwrap_or_default();
        let applied = sample(&text, &format!("riffle_ingest_events_applied_total{src}}}"));
        let caught_up = (0..2).all(|p| {
            sample(
                &text,
                &format!("riffle_ingest_partition_lag_messages{src},partition=\"{p}\"}}"),
            ) == Some(0.0)
        });
        if applied == Some(produced) && caught_up {
            break text;
        }
        if let Ok(Some(status)) = running.0.try_wait() {
            panic!("riffle ingest exited early: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "ingest never caught up on its metrics:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(
        sample(&text, &format!("riffle_ingest_events_read_total{src}}}")),
        Some(produced)
    );
    for p in 0..2 {
        let lag = sample(
            &text,
            &format!("riffle_ingest_partition_lag_seconds{src},partition=\"{p}\"}}"),
        )
        .unwrap_or_else(|| panic!("no lag in seconds for partition {p}:\n{text}"));
        assert!((0.0..600.0).contains(&lag), "partition {p}: {lag}");
    }
    let health: Value = client
        .get(format!("{base}/health"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(health["status"], "healthy", "{health}");

    riffle_testkit::signal(running.0.id(), "TERM").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = running.0.try_wait().unwrap() {
            assert!(status.success(), "ingest exited with {status}");
            break;
        }
        assert!(Instant::now() < deadline, "ingest did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}
