//! `dump`: a bare consumer reading every partition of the topic from its start to its
//! end, after the run: the events Kafka holds, whatever the producer believes it sent. It
//! writes them as one NDJSON file merged by event time (a k-way merge that keeps each
//! partition's own order, so each user's events stay in the order ingest read them), the
//! users that had events (one id per line), and counts per partition, offset gaps and
//! duplicate payloads (a producer retry without idempotence).

use std::collections::{BTreeMap, BinaryHeap, HashSet};
use std::io::{BufWriter, Write};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::Value;

use crate::Topic;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    topic: Topic,
    /// The NDJSON file of every event, merged by event time.
    #[arg(long)]
    out: String,
    /// The users that had events, one id per line.
    #[arg(long)]
    users_out: String,
    /// Seconds without a message, every partition at its end, before the dump stops.
    #[arg(long, default_value_t = 3)]
    idle_secs: u64,
}

/// One partition's messages in offset order: (event time, payload).
#[derive(Default)]
struct PartitionDump {
    events: Vec<(i64, Vec<u8>)>,
    first_offset: Option<i64>,
    next_offset: i64,
    gaps: u64,
    eof: bool,
}

pub fn dump(args: &Args) -> anyhow::Result<()> {
    let (_, source) = args.topic.registry_source()?;
    let topic = args.topic.topic.as_str();
    let out = args.out.as_str();
    let users_out = args.users_out.as_str();
    let idle = Duration::from_secs(args.idle_secs);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &args.topic.brokers)
        .set("group.id", format!("soak-dump-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100")
        .create()?;
    let meta = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let partitions: Vec<i32> = meta
        .topics()
        .first()
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .unwrap_or_default();
    if partitions.is_empty() {
        bail!("topic {topic} has no partitions");
    }
    let mut list = TopicPartitionList::new();
    for &p in &partitions {
        list.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&list)?;
    let mut dumps: BTreeMap<i32, PartitionDump> = partitions
        .iter()
        .map(|&p| (p, PartitionDump::default()))
        .collect();
    let started = Instant::now();
    let mut last_message = Instant::now();
    let mut last_progress = Instant::now();
    let mut total = 0u64;
    let mut bad_time = 0u64;
    let mut keys: HashSet<String> = HashSet::new();
    loop {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                last_message = Instant::now();
                let d = dumps.entry(m.partition()).or_default();
                d.eof = false;
                if d.first_offset.is_none() {
                    d.first_offset = Some(m.offset());
                } else if m.offset() != d.next_offset {
                    d.gaps += 1;
                }
                d.next_offset = m.offset() + 1;
                let payload = m.payload().unwrap_or_default().to_vec();
                let parsed: Option<Value> = serde_json::from_slice(&payload).ok();
                let time = parsed
                    .as_ref()
                    .and_then(|v| v[&source.time_field].as_i64())
                    .unwrap_or_else(|| {
                        bad_time += 1;
                        i64::MIN
                    });
                let key = m
                    .key()
                    .map(|k| String::from_utf8_lossy(k).into_owned())
                    .or_else(|| {
                        parsed
                            .as_ref()
                            .and_then(|v| v[&source.key_field].as_str().map(str::to_owned))
                    });
                if let Some(key) = key {
                    keys.insert(key);
                }
                d.events.push((time, payload));
                total += 1;
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                dumps.entry(p).or_default().eof = true;
            }
            Some(Err(e)) => eprintln!("dump: {e}"),
            None => {}
        }
        if last_progress.elapsed() >= Duration::from_secs(10) {
            eprintln!("dump: {total} messages read");
            last_progress = Instant::now();
        }
        let all_eof = dumps.values().all(|d| d.eof);
        if all_eof && last_message.elapsed() >= idle {
            break;
        }
        if started.elapsed() > Duration::from_secs(1800) {
            bail!("dump: the topic was not read to its end in 30 minutes ({total} messages)");
        }
    }
    // Duplicate payloads (a retried produce request written twice): every generated event
    // is unique (its time, user and values), so an identical payload is a second copy.
    let mut seen: HashSet<u64> = HashSet::with_capacity(total as usize);
    let mut duplicates = 0u64;
    for d in dumps.values() {
        for (_, payload) in &d.events {
            use std::hash::{BuildHasher, BuildHasherDefault};
            let h = BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
                .hash_one(payload);
            if !seen.insert(h) {
                duplicates += 1;
            }
        }
    }
    // k-way merge by event time; ties and each partition's own order kept.
    let mut w = BufWriter::new(std::fs::File::create(out).context(out.to_owned())?);
    let mut heap = BinaryHeap::new();
    let parts: Vec<&PartitionDump> = dumps.values().collect();
    let mut next = vec![0usize; parts.len()];
    for (i, d) in parts.iter().enumerate() {
        if let Some((t, _)) = d.events.first() {
            heap.push(std::cmp::Reverse((*t, i)));
        }
    }
    while let Some(std::cmp::Reverse((_, i))) = heap.pop() {
        let (_, payload) = &parts[i].events[next[i]];
        w.write_all(payload)?;
        w.write_all(b"\n")?;
        next[i] += 1;
        if let Some((t, _)) = parts[i].events.get(next[i]) {
            heap.push(std::cmp::Reverse((*t, i)));
        }
    }
    w.flush()?;
    let mut users: Vec<String> = keys.into_iter().collect();
    users.sort();
    let mut u = BufWriter::new(std::fs::File::create(users_out).context(users_out.to_owned())?);
    for id in &users {
        writeln!(u, "{id}")?;
    }
    u.flush()?;
    let per_partition: Vec<String> = dumps
        .iter()
        .map(|(p, d)| {
            format!(
                "{p}:{}@{}..{}",
                d.events.len(),
                d.first_offset.unwrap_or(0),
                d.next_offset
            )
        })
        .collect();
    let ends: Vec<String> = dumps
        .iter()
        .map(|(p, d)| format!("{p}:{}", d.next_offset))
        .collect();
    println!(
        "messages={total} users={} duplicates={duplicates} offset_gaps={} bad_event_time={bad_time} ends={} partitions={} dump_secs={:.1}",
        users.len(),
        dumps.values().map(|d| d.gaps).sum::<u64>(),
        ends.join(","),
        per_partition.join(","),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
