//! The crash-sequence benchmark's workers (driven by `bench/crash_sequence.sh`; not a test:
//! it reports).
//!
//! - `member`: a bare librdkafka consumer of a group, as the comparison describes
//!   (`range,roundrobin`, 10 s session, 1 s heartbeat): it reads, commits what it read every
//!   500 ms, and logs each assignment as `assigned [..]` (what `riffle ingest` logs as
//!   `kafka partitions assigned`), as `assigned=0,1`, until killed.
//! - `produce`: the lines of a file into a topic, keyed by user id, paced to take
//!   `--seconds` (librdkafka batches what is queued while a request is in flight).
//! - `state`: the consumer group from outside it (`riffle_ingest`'s group probe): per
//!   partition the end offset and the committed offset, as `end=.. committed=..`.
//!
//! Output lines are `key=value` so the script can pick them up.

use std::collections::HashMap;
use std::io::BufRead;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use riffle_ingest::feed::kafka::source::group::GroupProbe;
use riffle_ingest::feed::kafka::source::KafkaConfig;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mode, rest) = args.split_first().ok_or_else(|| anyhow!(USAGE))?;
    let flags = flags(rest)?;
    let get = |name: &str| {
        flags
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| anyhow!("--{name} is required"))
    };
    match mode.as_str() {
        "member" => member(get("brokers")?, get("topic")?, get("group")?),
        "produce" => {
            let seconds: f64 = get("seconds")?.parse()?;
            produce(get("brokers")?, get("topic")?, get("file")?, seconds)
        }
        "state" => state(get("brokers")?, get("topic")?, get("group")?),
        _ => bail!(USAGE),
    }
}

const USAGE: &str = "usage: crash_bench member|produce|state --flag value …";

fn flags(args: &[String]) -> anyhow::Result<HashMap<String, String>> {
    let mut map = HashMap::new();
    for pair in args.chunks(2) {
        let [name, value] = pair else {
            bail!("flag {} has no value", pair[0]);
        };
        let name = name
            .strip_prefix("--")
            .ok_or_else(|| anyhow!("expected --flag, got {name}"))?;
        map.insert(name.to_owned(), value.clone());
    }
    Ok(map)
}

fn member(brokers: &str, topic: &str, group: &str) -> anyhow::Result<()> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("client.id", format!("bare-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", "range,roundrobin")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000")
        .create()?;
    consumer.subscribe(&[topic])?;
    let mut shown: Option<Vec<i32>> = None;
    let mut next: HashMap<i32, i64> = HashMap::new();
    let mut last_commit = Instant::now();
    loop {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            next.insert(m.partition(), m.offset() + 1);
        }
        let mut now: Vec<i32> = consumer
            .assignment()
            .map(|t| t.elements().iter().map(|e| e.partition()).collect())
            .unwrap_or_default();
        now.sort_unstable();
        if shown.as_ref() != Some(&now) {
            println!("assigned={}", join(&now));
            next.retain(|p, _| now.contains(p));
            shown = Some(now);
        }
        if last_commit.elapsed() > Duration::from_millis(500) && !next.is_empty() {
            let mut tpl = TopicPartitionList::new();
            for (&p, &o) in &next {
                tpl.add_partition_offset(topic, p, Offset::Offset(o))?;
            }
            // A failed commit (the group moved on) is the next owner's replay.
            let _ = consumer.commit(&tpl, CommitMode::Async);
            last_commit = Instant::now();
        }
    }
}

fn produce(brokers: &str, topic: &str, file: &str, seconds: f64) -> anyhow::Result<()> {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .create()?;
    let lines: Vec<String> = std::io::BufReader::new(std::fs::File::open(file)?)
        .lines()
        .collect::<Result<_, _>>()?;
    let started = Instant::now();
    let every = Duration::from_secs_f64(seconds / lines.len().max(1) as f64);
    for (i, line) in lines.iter().enumerate() {
        let key = serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v["user_id"].as_str().map(str::to_owned))
            .unwrap_or_default();
        producer
            .send(BaseRecord::to(topic).key(&key).payload(line))
            .map_err(|(e, _)| e)?;
        producer.poll(Duration::ZERO);
        let due = every * (i as u32 + 1);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    producer.flush(Duration::from_secs(30))?;
    println!(
        "produced={} seconds={:.1}",
        lines.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn state(brokers: &str, topic: &str, group: &str) -> anyhow::Result<()> {
    let probe = GroupProbe::connect(&KafkaConfig::new(brokers, topic, group))?;
    let sample = probe.sample(Duration::from_secs(5))?;
    let end: Vec<i64> = sample
        .partitions
        .iter()
        .map(|p| p.end_offset.unwrap_or(-1))
        .collect();
    let committed: Vec<i64> = sample
        .partitions
        .iter()
        .map(|p| p.committed.unwrap_or(0))
        .collect();
    println!(
        "end={} committed={} members={}",
        join(&end),
        join(&committed),
        sample.members.len()
    );
    Ok(())
}

/// `1,2,3`: one word for the script.
fn join<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}
