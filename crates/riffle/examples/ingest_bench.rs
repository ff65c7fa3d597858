//! The ingest benchmark's workers (driven by `bench/ingest.sh`; not a test: it reports).
//!
//! - `gen`: NDJSON events for one source of a registry, typed by the source's schema, entity
//!   ids from a Zipf law (a few users make most transactions), event times over the last
//!   ten minutes, each up to a minute out of order (within the allowed lateness).
//! - `produce`: a file of such events into a Kafka topic, keyed by entity id (batched).
//! - `drain`: a bare `rdkafka` consumer in a fresh group reading the topic from the start,
//!   doing nothing with the messages: the rate the broker can feed one process (with
//!   `riffle ingest`'s fetch wait, or `--fetch-wait-ms`).
//! - `wait-group`: waits until a consumer group's committed offsets cover the topic, and
//!   prints the rate between its first and last commit (what `riffle ingest` sustained).
//! - `latency`: produces events at a fixed rate with probe events for new entities mixed
//!   in, and polls `riffle serve` for each probe until its row appears: the time from an
//!   event handed to the producer to its effect served (p50/p99/max).
//!
//! Output lines are `key=value` so the script can pick them up.

use std::collections::HashMap;
use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use riffle_core::{FeatureType, Timestamp};
use riffle_registry::{Registry, Source};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mode, rest) = args.split_first().ok_or_else(|| anyhow!(USAGE))?;
    let flags = Flags::parse(rest)?;
    match mode.as_str() {
        "gen" => gen(&flags),
        "produce" => produce(&flags),
        "drain" => drain(&flags),
        "wait-group" => wait_group(&flags),
        "latency" => latency(&flags),
        _ => bail!(USAGE),
    }
}

const USAGE: &str = "usage: ingest_bench gen|produce|drain|wait-group|latency --flag value …";

/// `--name value` pairs.
struct Flags(HashMap<String, String>);

impl Flags {
    fn parse(args: &[String]) -> anyhow::Result<Self> {
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
        Ok(Self(map))
    }

    fn get(&self, name: &str) -> anyhow::Result<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| anyhow!("--{name} is required"))
    }

    fn num<T: std::str::FromStr>(&self, name: &str, default: T) -> anyhow::Result<T> {
        match self.0.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| anyhow!("--{name}: not a number: {v}")),
        }
    }
}

/// The source `--source` of the registry `--config` (default: its only source).
fn source(flags: &Flags) -> anyhow::Result<Source> {
    let registry = Registry::load(&PathBuf::from(flags.get("config")?))
        .map_err(|e| anyhow!("registry: {e}"))?;
    let source = match flags.0.get("source") {
        Some(name) => registry.sources.iter().find(|s| &s.name == name),
        None => registry.sources.first(),
    };
    source
        .cloned()
        .ok_or_else(|| anyhow!("no such source in the registry"))
}

/// Writes one event of `source` for entity `id` at `time` (ms) as a JSON line.
fn event_line(source: &Source, rng: &mut SmallRng, id: &str, time: i64, out: &mut String) {
    use std::fmt::Write as _;
    out.clear();
    let _ = write!(
        out,
        "{{\"{}\":\"{id}\",\"{}\":{time}",
        source.key_field, source.time_field
    );
    for field in &source.fields {
        let _ = write!(out, ",\"{}\":", field.name);
        let _ = match field.ty {
            FeatureType::Int64 => write!(out, "{}", rng.random_range(0..1000)),
            FeatureType::Float64 => write!(out, "{:.2}", rng.random_range(1.0..500.0)),
            FeatureType::Bool => write!(out, "{}", rng.random_bool(0.1)),
            FeatureType::String => write!(out, "\"v{}\"", rng.random_range(0..200)),
            FeatureType::FloatVector { dim } => {
                let v: Vec<String> = (0..dim).map(|i| format!("0.{i}")).collect();
                write!(out, "[{}]", v.join(","))
            }
        };
    }
    out.push('}');
}

fn gen(flags: &Flags) -> anyhow::Result<()> {
    let source = source(flags)?;
    let events: u64 = flags.num("events", 1_000_000)?;
    let users: u64 = flags.num("users", 100_000)?;
    let out = flags.get("out")?;
    let mut rng = SmallRng::seed_from_u64(flags.num("seed", 7)?);
    let zipf = Zipf::new(users as f64, 1.0).map_err(|e| anyhow!("zipf: {e}"))?;
    let now = Timestamp::now().millis();
    let mut w = BufWriter::new(std::fs::File::create(out).context(out.to_owned())?);
    let mut line = String::new();
    // Event times move from ten minutes ago to now across the file, each up to a minute
    // out of order: well inside the fraud source's 5-minute allowed lateness. (Times drawn
    // uniformly from the last ten minutes put half the events past it, so the bench
    // measured the dead-letter path for them.)
    let span = 600_000i64;
    for i in 0..events {
        let id = format!("u{}", zipf.sample(&mut rng) as u64);
        let time =
            now - span + (i as i64 * span) / events.max(1) as i64 - rng.random_range(0..60_000);
        event_line(&source, &mut rng, &id, time, &mut line);
        writeln!(w, "{line}")?;
    }
    w.flush()?;
    println!("events={events} users={users}");
    Ok(())
}

fn producer(brokers: &str) -> anyhow::Result<BaseProducer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .create()?)
}

/// Queues one message, polling the producer while its queue is full.
fn send(p: &BaseProducer, topic: &str, key: &str, payload: &str) -> anyhow::Result<()> {
    loop {
        match p.send(BaseRecord::to(topic).key(key).payload(payload)) {
            Ok(()) => return Ok(()),
            Err((
                rdkafka::error::KafkaError::MessageProduction(
                    rdkafka::types::RDKafkaErrorCode::QueueFull,
                ),
                _,
            )) => {
                p.poll(Duration::from_millis(10));
            }
            Err((e, _)) => return Err(e.into()),
        }
    }
}

fn key_of(source: &Source, line: &str) -> String {
    serde_json::from_str::<serde_json::Value>(line)
        .ok()
        .and_then(|v| v[&source.key_field].as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn produce(flags: &Flags) -> anyhow::Result<()> {
    let source = source(flags)?;
    let topic = flags.get("topic")?;
    let p = producer(flags.get("brokers")?)?;
    let file = std::fs::File::open(flags.get("file")?)?;
    let started = Instant::now();
    let mut n = 0u64;
    for line in std::io::BufReader::new(file).lines() {
        let line = line?;
        send(&p, topic, &key_of(&source, &line), &line)?;
        n += 1;
        if n.is_multiple_of(10_000) {
            p.poll(Duration::ZERO);
        }
    }
    p.flush(Duration::from_secs(120))?;
    let secs = started.elapsed().as_secs_f64();
    println!("produced={n} produce_rate={:.0}", n as f64 / secs);
    Ok(())
}

/// The end offsets of every partition of `topic`, summed.
fn topic_end(consumer: &BaseConsumer, topic: &str) -> anyhow::Result<(Vec<i32>, i64)> {
    let meta = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let partitions: Vec<i32> = meta
        .topics()
        .first()
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .unwrap_or_default();
    let mut total = 0;
    for &p in &partitions {
        let (_, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?;
        total += high;
    }
    Ok((partitions, total))
}

fn drain(flags: &Flags) -> anyhow::Result<()> {
    let topic = flags.get("topic")?;
    let expect: u64 = flags.num("expect", 0)?;
    // By default as `riffle ingest`'s consumer sets it, so both read the broker alike;
    // `--fetch-wait-ms 500` is librdkafka's default.
    let fetch_wait: u64 = flags.num(
        "fetch-wait-ms",
        riffle_ingest::feed::kafka::source::FETCH_WAIT.as_millis() as u64,
    )?;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", flags.get("brokers")?)
        .set("group.id", format!("bare-{}", std::process::id()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("partition.assignment.strategy", "range")
        .set("fetch.wait.max.ms", fetch_wait.to_string())
        .create()?;
    consumer.subscribe(&[topic])?;
    let mut first = None;
    let mut n = 0u64;
    let mut bytes = 0usize;
    let deadline = Instant::now() + Duration::from_secs(600);
    while n < expect && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                first.get_or_insert_with(Instant::now);
                bytes += m.payload().map_or(0, <[u8]>::len);
                n += 1;
            }
            Some(Err(e)) => eprintln!("drain: {e}"),
            None => {}
        }
    }
    let secs = first.map_or(f64::NAN, |f| f.elapsed().as_secs_f64());
    println!(
        "drained={n} bytes={bytes} drain_rate={:.0}",
        n as f64 / secs
    );
    Ok(())
}

fn wait_group(flags: &Flags) -> anyhow::Result<()> {
    let topic = flags.get("topic")?;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", flags.get("brokers")?)
        .set("group.id", flags.get("group")?)
        .create()?;
    let (partitions, end) = topic_end(&consumer, topic)?;
    let mut list = TopicPartitionList::new();
    for &p in &partitions {
        list.add_partition(topic, p);
    }
    let started = Instant::now();
    let mut first: Option<(Instant, i64)> = None;
    let mut last_print = Instant::now();
    loop {
        let committed = consumer.committed_offsets(list.clone(), Duration::from_secs(5))?;
        let done: i64 = committed
            .elements()
            .iter()
            .map(|e| match e.offset() {
                Offset::Offset(o) => o,
                _ => 0,
            })
            .sum();
        if done > 0 && first.is_none() {
            first = Some((Instant::now(), done));
        }
        if last_print.elapsed() > Duration::from_secs(2) {
            eprintln!("  committed {done}/{end}");
            last_print = Instant::now();
        }
        if done >= end {
            let (t0, d0) = first.unwrap_or((started, 0));
            let secs = t0.elapsed().as_secs_f64();
            println!(
                "committed={done} total_secs={:.2} ingest_rate={:.0}",
                started.elapsed().as_secs_f64(),
                (done - d0) as f64 / secs
            );
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(900) {
            bail!("group did not catch up: {done}/{end}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Produces at `--rate` for `--seconds`; one event in `--probe-every` is for a new entity
/// `probe-<n>`, whose first served row is timed from the moment its event was handed to the
/// producer.
fn latency(flags: &Flags) -> anyhow::Result<()> {
    let source = source(flags)?;
    let topic = flags.get("topic")?.to_owned();
    let rate: u64 = flags.num("rate", 50_000)?;
    let seconds: u64 = flags.num("seconds", 20)?;
    let probe_every: u64 = flags.num("probe-every", 2_500)?;
    let users: u64 = flags.num("users", 100_000)?;
    let serve = flags.get("serve")?.trim_end_matches('/').to_owned();
    let group = flags.get("group-name")?.to_owned();
    let entity = flags.get("entity")?.to_owned();
    let p = producer(flags.get("brokers")?)?;
    let (probe_tx, probe_rx) = std::sync::mpsc::channel::<(String, Instant)>();
    let poller = std::thread::spawn(move || poll_probes(&serve, &entity, &group, &probe_rx));
    let mut rng = SmallRng::seed_from_u64(11);
    let zipf = Zipf::new(users as f64, 1.0).map_err(|e| anyhow!("zipf: {e}"))?;
    let started = Instant::now();
    let mut line = String::new();
    let total = rate * seconds;
    for i in 0..total {
        // Pace: event i is due at i / rate seconds.
        let due = started + Duration::from_secs_f64(i as f64 / rate as f64);
        let now = Instant::now();
        if due > now {
            p.poll(Duration::ZERO);
            std::thread::sleep(due - now);
        }
        let probe = i % probe_every == 0;
        let id = if probe {
            format!("probe-{}-{i}", std::process::id())
        } else {
            format!("u{}", zipf.sample(&mut rng) as u64)
        };
        event_line(&source, &mut rng, &id, Timestamp::now().millis(), &mut line);
        // A probe is timed from the moment it is handed to the producer: the figure includes
        // the producer's linger and the broker, as a real event's would.
        let sent = Instant::now();
        send(&p, &topic, &id, &line)?;
        if probe {
            let _ = probe_tx.send((id, sent));
        }
        if i % 1000 == 0 {
            p.poll(Duration::ZERO);
        }
    }
    p.flush(Duration::from_secs(60))?;
    let achieved = total as f64 / started.elapsed().as_secs_f64();
    drop(probe_tx);
    let mut lat = poller.join().map_err(|_| anyhow!("poller panicked"))?;
    lat.sort_unstable();
    let pick = |q: f64| lat.get(((lat.len() as f64 * q).ceil() as usize).saturating_sub(1));
    let ms = |d: Option<&Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0);
    println!(
        "produce_rate={achieved:.0} probes={} p50_ms={:.1} p99_ms={:.1} max_ms={:.1}",
        lat.len(),
        ms(pick(0.5)),
        ms(pick(0.99)),
        ms(lat.last())
    );
    Ok(())
}

/// Polls serve for each probe (in order) until its group's row is there.
fn poll_probes(
    serve: &str,
    entity: &str,
    group: &str,
    probes: &std::sync::mpsc::Receiver<(String, Instant)>,
) -> Vec<Duration> {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("an HTTP client with default TLS settings builds");
    let mut pending: Vec<(String, Instant)> = Vec::new();
    let mut out = Vec::new();
    let mut open = true;
    while open || !pending.is_empty() {
        loop {
            match probes.try_recv() {
                Ok(p) => pending.push(p),
                Err(std::sync::mpsc::TryRecvError::Empty) => break,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        pending.retain(|(id, sent)| {
            if sent.elapsed() > Duration::from_secs(30) {
                eprintln!("probe {id} never appeared");
                return false;
            }
            let url = format!("{serve}/v1/features/{entity}/{id}?groups={group}");
            let present = client
                .get(&url)
                .send()
                .and_then(|r| r.json::<serde_json::Value>())
                .map(|b| b["results"][0]["groups"][0]["status"] != "missing")
                .unwrap_or(false);
            if present {
                out.push(sent.elapsed());
            }
            !present
        });
        std::thread::sleep(Duration::from_millis(2));
    }
    out
}
