//! `produce`: the fraud example's traffic into a Kafka topic for `--seconds`: events of
//! the source's schema from the same generator `riffle demo` and `riffle ingest
//! --generate` run (power-law users, 2% cold starts, up to 3 s of disorder, a 5–10× burst
//! of 5 s every minute), paced by its token bucket, keyed by user id, with idempotence on
//! by default (`--idempotence false` to turn it off; `--linger-ms`, default 25). Every second it rewrites a status
//! file (`--status`) with its counters, so the script can sample them; delivery failures
//! are counted by error. It waits for every message to be acknowledged (or failed) before
//! it exits.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Message};
use riffle_core::Timestamp;
use riffle_synth::{EventGenerator, EventPlan, Pacer};

use crate::Topic;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    topic: Topic,
    /// Events per second (bursts on top).
    #[arg(long, default_value_t = 2000.0)]
    rate: f64,
    /// Distinct users (power-law).
    #[arg(long, default_value_t = 100_000)]
    users: u64,
    /// How long to produce.
    #[arg(long, default_value_t = 60.0)]
    seconds: f64,
    /// The generator's seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// The producer's idempotence (`true` or `false`; also `yes`/`no`, `1`/`0`).
    #[arg(
        long,
        default_value_t = true,
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    idempotence: bool,
    /// librdkafka's `linger.ms`, passed as given.
    #[arg(long, default_value = "25")]
    linger_ms: String,
    /// A file rewritten every second with the counters.
    #[arg(long)]
    status: Option<String>,
}

/// Writes `text` to `path` through a temporary file and a rename, so a reader never sees
/// half of it.
fn write_atomically(path: &str, text: &str) -> std::io::Result<()> {
    let tmp = format!("{path}.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(tmp, path)
}

/// Delivery reports: acknowledged and failed messages, failures by error, and per
/// partition one past the highest acknowledged offset (the topic's end as the producer
/// knows it, a check on the end offsets `riffle lag` reads from the broker).
#[derive(Default)]
struct Deliveries {
    delivered: AtomicU64,
    failed: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
    ends: Mutex<BTreeMap<i32, i64>>,
}

#[derive(Clone, Default)]
struct Counter(Arc<Deliveries>);

impl ClientContext for Counter {}

impl ProducerContext for Counter {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(m) => {
                self.0.delivered.fetch_add(1, Ordering::Relaxed);
                let mut ends = self.0.ends.lock().unwrap_or_else(|p| p.into_inner());
                let end = ends.entry(m.partition()).or_insert(0);
                *end = (*end).max(m.offset() + 1);
            }
            Err((e, _)) => {
                self.0.failed.fetch_add(1, Ordering::Relaxed);
                let kind = e.to_string().replace(' ', "_");
                let mut errors = self.0.errors.lock().unwrap_or_else(|p| p.into_inner());
                *errors.entry(kind).or_default() += 1;
            }
        }
    }
}

impl Deliveries {
    /// `partition:end,…`
    fn ends_text(&self) -> String {
        let ends = self.ends.lock().unwrap_or_else(|p| p.into_inner());
        ends.iter()
            .map(|(p, end)| format!("{p}:{end}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The status file's line.
    fn status_line(&self, produced: u64, in_queue: i32, rate: f64) -> String {
        format!(
            "produced={produced} delivered={} failed={} in_queue={in_queue} rate_1s={rate:.0} ends={}\n",
            self.delivered.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.ends_text()
        )
    }

    fn errors_text(&self) -> String {
        let errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        if errors.is_empty() {
            return "none".to_owned();
        }
        errors
            .iter()
            .map(|(k, n)| format!("{k}:{n}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

pub fn produce(args: &Args) -> anyhow::Result<()> {
    let (registry, source) = args.topic.registry_source()?;
    let topic = args.topic.topic.clone();
    let rate = args.rate;
    let users = args.users;
    let seconds = args.seconds;
    let seed = args.seed;
    let idempotence = args.idempotence;
    let status = args.status.clone();
    let plan = EventPlan::new(rate, users, seed);
    let mut generator =
        EventGenerator::new(&registry, &source, &plan).map_err(|e| anyhow!("generator: {e}"))?;
    let mut pacer = Pacer::new(rate, plan.bursts.clone());
    let context = Counter::default();
    let deliveries = context.0.clone();
    let producer: BaseProducer<Counter> = ClientConfig::new()
        .set("bootstrap.servers", &args.topic.brokers)
        // 25 ms, not 5: with idempotence on, librdkafka's broker thread spun at ~half a core
        // against tansu with a 5–10 ms linger (4 partitions, 2,000 events/s), ~5% at 20 ms.
        .set("linger.ms", &args.linger_ms)
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "2000000")
        .set("queue.buffering.max.kbytes", "2097151")
        // A broker restart must not fail messages: they wait in the queue until it is back.
        .set("message.timeout.ms", "900000")
        .set(
            "enable.idempotence",
            if idempotence { "true" } else { "false" },
        )
        .create_with_context(context)?;
    let started = Instant::now();
    let end = Duration::from_secs_f64(seconds.max(0.0));
    let mut produced = 0u64;
    let mut queue_full = 0u64;
    let mut last_status = Instant::now();
    let mut last_progress = Instant::now();
    let (mut window_start, mut window_produced) = (Instant::now(), 0u64);
    let mut recent_rate = 0.0;
    loop {
        let elapsed = started.elapsed();
        if elapsed >= end {
            break;
        }
        let due = pacer.due(elapsed);
        let now_ms = Timestamp::now().millis();
        for _ in 0..due {
            let pick = generator.pick();
            let id = generator.id_of(pick);
            let payload = generator.event_for(pick, now_ms);
            let mut record = BaseRecord::to(&topic).key(&id).payload(&payload);
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        queue_full += 1;
                        record = back;
                        producer.poll(Duration::from_millis(10));
                    }
                    Err((e, _)) => {
                        // Not retryable by waiting (a fatal idempotence error…): count it.
                        deliveries.failed.fetch_add(1, Ordering::Relaxed);
                        let mut errors =
                            deliveries.errors.lock().unwrap_or_else(|p| p.into_inner());
                        *errors
                            .entry(format!("send:{}", e.to_string().replace(' ', "_")))
                            .or_default() += 1;
                        break;
                    }
                }
            }
            produced += 1;
        }
        producer.poll(Duration::ZERO);
        if window_start.elapsed() >= Duration::from_secs(1) {
            recent_rate =
                (produced - window_produced) as f64 / window_start.elapsed().as_secs_f64();
            (window_start, window_produced) = (Instant::now(), produced);
        }
        if let Some(path) = &status {
            if last_status.elapsed() >= Duration::from_secs(1) {
                let _ = write_atomically(
                    path,
                    &deliveries.status_line(produced, producer.in_flight_count(), recent_rate),
                );
                last_status = Instant::now();
            }
        }
        if last_progress.elapsed() >= Duration::from_secs(30) {
            eprintln!(
                "produce: {produced} events in {:.0} s, {} acknowledged, {} failed, {} in queue",
                elapsed.as_secs_f64(),
                deliveries.delivered.load(Ordering::Relaxed),
                deliveries.failed.load(Ordering::Relaxed),
                producer.in_flight_count()
            );
            last_progress = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let sending = started.elapsed().as_secs_f64();
    // Every message acknowledged or failed (message.timeout.ms bounds it).
    let flush_started = Instant::now();
    while producer.in_flight_count() > 0 && flush_started.elapsed() < Duration::from_secs(960) {
        producer.poll(Duration::from_millis(100));
        if let Some(path) = &status {
            let _ = write_atomically(
                path,
                &deliveries.status_line(produced, producer.in_flight_count(), 0.0),
            );
        }
    }
    let _ = producer.flush(Duration::from_secs(5));
    println!(
        "produced={produced} delivered={} failed={} unacknowledged={} seconds={sending:.1} produce_rate={:.0} queue_full_waits={queue_full} idempotence={idempotence} ends={} errors={}",
        deliveries.delivered.load(Ordering::Relaxed),
        deliveries.failed.load(Ordering::Relaxed),
        producer.in_flight_count(),
        produced as f64 / sending.max(1e-9),
        deliveries.ends_text(),
        deliveries.errors_text()
    );
    Ok(())
}
