//! `riffle ingest --config PATH [--store URL] [--source NAME] (--from FILE|- [--follow] |
//! [--brokers H:P,… --topic T [--group-id G]]) [--json]`: feeds events of one source through
//! the window pipeline (`riffle_ingest::pipeline`), with a progress line on stderr and a
//! summary on stdout.
//!
//! - `--from`: replays NDJSON events and exits once every event is durable; with `--follow`
//!   it keeps tailing the file until Ctrl-C/SIGTERM.
//! - `--generate RATE` (or a `generator` source): synthetic events of the source's schema
//!   (power-law entities, bursts, cold starts; `--entities`, `--seed`) until Ctrl-C/SIGTERM,
//!   or `--max-events N` of them, then exit once durable.
//! - `--http-events` (or an `http` source): events `POST`ed to `/v1/events` on the
//!   listener, each request answered once its events are durable; until Ctrl-C/SIGTERM.
//! - otherwise the source's Kafka topic (or the `--brokers/--topic/--group-id` overrides,
//!   also allowed for a source of another kind: the event schema stays the source's) is
//!   consumed until Ctrl-C/SIGTERM; offsets are committed once durable.
//!
//! Whatever the input, `/metrics` and `/health` are served on `--listen` (default the
//! registry's `ingest.listen`) while the run lasts.
//!
//! Exit 0 when done (bad events are dead-lettered, not failures), 1 on a runtime failure
//! (store, input, dead-letter file), 2 on bad usage or an invalid registry (no such source,
//! no input, a missing file).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::anyhow;
use clap::Args;
use riffle_ingest::dead_letter::DeadLetterTarget;
use riffle_ingest::feed::http::{self, HttpEvents};
use riffle_ingest::feed::kafka::group_monitor::GroupMonitor;
use riffle_ingest::feed::kafka::source::group::RIFFLE_CLIENT_PREFIX;
use riffle_ingest::feed::kafka::source::KafkaConfig;
use riffle_ingest::feed::{self, Feed, GeneratorFeed, KafkaFeed};
use riffle_ingest::pipeline::{self, Control, IngestSummary, PipelineOptions};
use riffle_ingest::server::{self, IngestStatus};
use riffle_registry::{Registry, SourceKind};
use riffle_store::StoreUrl;
use riffle_synth::{EventGenerator, EventPlan, Pacer};
use tokio::sync::mpsc;

use crate::config::{self, ConfigArgs};
use crate::exit::{runtime, usage, CmdResult, Failure};
use crate::kafka::KafkaArgs;
use crate::progress;

#[derive(Debug, Args)]
pub struct IngestArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Online store URL (default: the registry's store.url).
    #[arg(long, env = "RIFFLE_STORE", value_name = "URL")]
    pub store: Option<String>,
    /// The source whose events these are (default: the registry's only source).
    #[arg(long, value_name = "NAME")]
    pub source: Option<String>,
    /// NDJSON events to replay: a file, or `-` for stdin (default: the source's Kafka topic).
    #[arg(long, value_name = "FILE|-", conflicts_with_all = ["brokers", "topic", "group_id"])]
    pub from: Option<PathBuf>,
    /// With `--from FILE`: keep reading lines appended to the file until Ctrl-C/SIGTERM.
    #[arg(long, requires = "from")]
    pub follow: bool,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Synthetic events of the source's schema at RATE per second (with bursts and cold
    /// starts) instead of its own input; a `generator` source needs no flag.
    #[arg(long, value_name = "RATE", conflicts_with_all = ["from", "brokers", "topic"])]
    pub generate: Option<f64>,
    /// Entities the generator draws from by the power law (default: the source's
    /// `entities`, else 100000).
    #[arg(long, value_name = "N")]
    pub entities: Option<u64>,
    /// Seed of the generator (same seed, same events).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Generate this many events, then exit once they are durable (default: run until
    /// Ctrl-C/SIGTERM).
    #[arg(long, value_name = "N")]
    pub max_events: Option<u64>,
    /// Take events `POST`ed to `/v1/events` on the listener (JSON object, array, or NDJSON)
    /// instead of the source's own input; an `http` source needs no flag.
    #[arg(long, conflicts_with_all = ["from", "brokers", "topic", "generate"])]
    pub http_events: bool,
    /// Where `/metrics`, `/health` (and `/v1/events`) listen (default: the registry's
    /// `ingest.listen`). When the default address is taken and the input is not HTTP,
    /// ingest runs on without them (with a warning).
    #[arg(long, env = "RIFFLE_INGEST_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: IngestArgs) -> CmdResult {
    let registry = config::load_registry(&args.config.config)?;
    let source = pick_source(&registry, args.source.as_deref())?;
    let url =
        StoreUrl::parse(args.store.as_deref().unwrap_or(&registry.store.url)).map_err(usage)?;
    let dead_letter = dead_letter_target(&registry, source, &url, &args)?;
    let capacity = registry.ingest.queue_capacity.div_ceil(256);
    let http = args.http_events || matches!(registry.sources[source].kind, SourceKind::Http);
    // Bind first: a taken port is reported before any work.
    let listen = args
        .listen
        .clone()
        .unwrap_or_else(|| registry.ingest.listen.clone());
    let listener = match config::bind(&listen, "riffle ingest").await {
        Ok(listener) => Some(listener),
        Err(failure) if !http && args.listen.is_none() => {
            tracing::warn!(error = %failure.error, "riffle ingest runs without /metrics and /health");
            eprintln!("riffle ingest: no /metrics or /health: {:#}", failure.error);
            None
        }
        Err(failure) => return Err(failure),
    };
    let status = Arc::new(IngestStatus::new(
        &registry.sources[source].name,
        &registry.ingest,
        capacity,
    ));
    let mut routes = server::router(status.clone());
    let generated = args.generate.is_some()
        || matches!(registry.sources[source].kind, SourceKind::Generator { .. });
    let mut kafka_topic = None;
    let mut input = match &args.from {
        Some(from) => open_file(from, args.follow, capacity)?,
        None if http => {
            let (events, rx) = HttpEvents::channel(
                status.clone(),
                capacity,
                http::DEFAULT_MAX_BODY,
                http::DEFAULT_MAX_WAIT,
            );
            routes = routes.merge(events.router());
            Input {
                described: format!("POST http://{listen}/v1/events"),
                stream_id: events.stream_id(),
                feed: rx,
                kafka: None,
                generator: None,
            }
        }
        None if generated => open_generator(&registry, source, &args, capacity)?,
        None => {
            let config = kafka_config(&registry, source, &args)?;
            let described = format!("kafka {} (group {})", config.topic, config.group_id);
            kafka_topic = Some(config.topic.clone());
            let topic = config.topic.clone();
            let (feed, rx) = KafkaFeed::start(config.clone(), capacity, registry.ingest.max_stall)
                .map_err(runtime)?;
            let lag = feed.lag_probe();
            status.set_partitions(Box::new(move || {
                lag.lag()
                    .into_iter()
                    .map(|p| {
                        (
                            p.partition,
                            p.consumer_lag,
                            feed::kafka_stream_id(&topic, p.partition),
                        )
                    })
                    .collect()
            }));
            Input {
                described,
                stream_id: 0,
                feed: rx,
                kafka: Some(KafkaInput {
                    feed,
                    config,
                    monitor: None,
                }),
                generator: None,
            }
        }
    };
    let store = config::open_url(&registry, &url).await?;
    if let Some(kafka) = &mut input.kafka {
        let monitor = GroupMonitor::start(
            &kafka.config,
            kafka.feed.control(),
            store.clone(),
            &registry.sources[source].name,
            registry.ingest.rejoin_after,
        );
        status.set_group(monitor.watch(), kafka.feed.control());
        kafka.monitor = Some(monitor);
    }
    let settings = &registry.ingest;
    let options = PipelineOptions {
        source,
        stream_id: input.stream_id,
        kafka_topic,
        dead_letter,
        flush_interval: settings.flush_interval,
        flush_max_events: settings.flush_max_events,
    };
    let continuous = args.follow
        || http
        || input.kafka.is_some()
        || (input.generator.is_some() && args.max_events.is_none());
    let control = Control {
        stop: continuous.then(|| Box::pin(crate::shutdown::signal()) as _),
        on_durable: input.kafka.as_ref().map(|k| k.feed.durable()),
    };
    let (server_stop, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = listener.map(|listener| {
        if let Ok(addr) = listener.local_addr() {
            eprintln!(
                "riffle ingest: metrics on http://{addr}/metrics, health on http://{addr}/health"
            );
        }
        tokio::spawn(server::serve(listener, routes, async {
            let _ = server_stopped.await;
        }))
    });
    let bar = progress::spinner();
    let mut report = |s: &IngestSummary| {
        status.observe(s);
        bar.set_message(format!(
            "events: {} read, {} applied, {} already applied, {} dead-lettered; {} rows written",
            s.events_read,
            s.applied,
            s.already_applied,
            s.dead_lettered_total(),
            s.rows_written
        ));
    };
    let result = pipeline::run(
        registry.clone(),
        store,
        options,
        input.feed,
        control,
        &mut report,
    )
    .await;
    bar.finish_and_clear();
    let _ = server_stop.send(());
    if let Some(server) = server {
        let _ = server.await;
    }
    if let Some(kafka) = input.kafka {
        drop(kafka.monitor);
        // Commits the last durable offsets and leaves the group.
        let _ = tokio::task::spawn_blocking(move || kafka.feed.shutdown()).await;
    }
    if let Some(generator) = input.generator {
        let _ = tokio::task::spawn_blocking(move || generator.stop()).await;
    }
    let summary = result.map_err(|e| match e {
        pipeline::PipelineError::NoFeatures(_) | pipeline::PipelineError::Specs(_) => usage(e),
        other => runtime(other),
    })?;
    if args.json {
        let mut value = serde_json::to_value(&summary).map_err(runtime)?;
        value["events_per_sec"] = serde_json::json!(summary.events_per_sec().round());
        value["dead_lettered_total"] = serde_json::json!(summary.dead_lettered_total());
        let text = serde_json::to_string_pretty(&value).map_err(runtime)?;
        println!("{text}");
    } else {
        print_table(&input.described, &summary);
    }
    Ok(())
}

/// Where the events come from.
struct Input {
    /// For the summary: the file, `-`, or the topic and group.
    described: String,
    stream_id: u64,
    feed: mpsc::Receiver<std::io::Result<Feed>>,
    /// The consumer thread and the group monitor, for Kafka.
    kafka: Option<KafkaInput>,
    /// The generator thread, for `--generate` or a generator source.
    generator: Option<GeneratorFeed>,
}

/// A Kafka input: the consumer thread, its settings, and (once the store is open) the
/// monitor of the whole group for `/metrics`, `/health` and rejoins.
struct KafkaInput {
    feed: KafkaFeed,
    config: KafkaConfig,
    monitor: Option<GroupMonitor>,
}

/// `--from FILE|-` (`--follow`: keep tailing the file).
fn open_file(from: &Path, follow: bool, capacity: usize) -> Result<Input, Failure> {
    let stdin = from.as_os_str() == "-";
    let (stream_id, reader): (u64, Box<dyn std::io::Read + Send>) = if stdin {
        (feed::stdin_stream_id(), Box::new(std::io::stdin()))
    } else {
        let file = std::fs::File::open(from)
            .map_err(|e| usage(anyhow!("cannot open {}: {e}", from.display())))?;
        let id = feed::file_stream_id(from)
            .map_err(|e| usage(anyhow!("cannot identify {}: {e}", from.display())))?;
        (id, Box::new(file))
    };
    let feed =
        feed::spawn_reader(reader, stream_id, follow && !stdin, 256, capacity).map_err(runtime)?;
    Ok(Input {
        described: from.display().to_string(),
        stream_id,
        feed,
        kafka: None,
        generator: None,
    })
}

/// `--generate RATE` or a `generator` source: synthetic events of the source's schema.
fn open_generator(
    registry: &Registry,
    source: usize,
    args: &IngestArgs,
    capacity: usize,
) -> Result<Input, Failure> {
    let src = &registry.sources[source];
    let (declared_rate, declared_entities) = match src.kind {
        SourceKind::Generator { rate, entities } => (Some(rate), Some(entities)),
        _ => (None, None),
    };
    let rate = args.generate.or(declared_rate).unwrap_or(1000.0);
    if !(rate > 0.0 && rate.is_finite()) {
        return Err(usage(anyhow!("--generate: {rate} is not a positive rate")));
    }
    let entities = args.entities.or(declared_entities).unwrap_or(100_000);
    if entities == 0 {
        return Err(usage(anyhow!("--entities must be at least 1")));
    }
    let plan = EventPlan::new(rate, entities, args.seed);
    let generator = EventGenerator::new(registry, src, &plan).map_err(usage)?;
    let pacer = Pacer::new(rate, plan.bursts.clone());
    let stream_id = feed::generator_stream_id(args.seed);
    let (feed, rx) =
        GeneratorFeed::start(generator, pacer, stream_id, args.max_events, 256, capacity)
            .map_err(runtime)?;
    Ok(Input {
        described: format!(
            "generator ({rate} events/s over {entities} entities, seed {})",
            args.seed
        ),
        stream_id,
        feed: rx,
        kafka: None,
        generator: Some(feed),
    })
}

/// The source's Kafka settings with the command-line overrides; a source of another kind
/// needs `--brokers` and `--topic`.
fn kafka_config(
    registry: &Registry,
    source: usize,
    args: &IngestArgs,
) -> Result<KafkaConfig, Failure> {
    let mut config = args.kafka.config_for(registry, source).ok_or_else(|| {
        usage(anyhow!(
            "source {} is not a Kafka source: give --from FILE|- or --brokers and --topic",
            registry.sources[source].name
        ))
    })?;
    config.client_id = format!("{RIFFLE_CLIENT_PREFIX}{}", std::process::id());
    Ok(config)
}

/// `--source`, or the registry's only source.
fn pick_source(registry: &Registry, name: Option<&str>) -> Result<usize, Failure> {
    let names = || {
        registry
            .sources
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match name {
        Some(name) => registry
            .sources
            .iter()
            .position(|s| s.name == name)
            .ok_or_else(|| usage(anyhow!("no source {name:?} (sources: {})", names()))),
        None => match registry.sources.len() {
            1 => Ok(0),
            0 => Err(usage(anyhow!("the registry declares no source"))),
            _ => Err(usage(anyhow!(
                "the registry has several sources ({}): choose one with --source",
                names()
            ))),
        },
    }
}

/// The source's `dead_letter`: `file:PATH`, or `kafka:TOPIC` on the source's brokers (or
/// `--brokers`); else a file beside the embedded store, else `./dead-letter-<source>.ndjson`.
fn dead_letter_target(
    registry: &Registry,
    source: usize,
    url: &StoreUrl,
    args: &IngestArgs,
) -> Result<DeadLetterTarget, Failure> {
    let src = &registry.sources[source];
    let Some(sink) = src.dead_letter.as_deref() else {
        let name = format!("dead-letter-{}.ndjson", src.name);
        return Ok(DeadLetterTarget::File(match url {
            StoreUrl::Embedded(dir) => dir.join(name),
            _ => Path::new(".").join(name),
        }));
    };
    if let Some(path) = sink.strip_prefix("file:") {
        return Ok(DeadLetterTarget::File(PathBuf::from(path)));
    }
    // The registry accepts only `file:` and `kafka:` sinks.
    let topic = sink.strip_prefix("kafka:").unwrap_or(sink);
    let brokers = args
        .kafka
        .brokers
        .clone()
        .or_else(|| KafkaConfig::from_source(&src.kind).map(|c| c.brokers))
        .ok_or_else(|| {
            usage(anyhow!(
                "source {}: dead-letter sink {sink:?} needs Kafka brokers: the source is not a Kafka source, give --brokers",
                src.name
            ))
        })?;
    Ok(DeadLetterTarget::Kafka {
        brokers,
        topic: topic.to_owned(),
    })
}

fn print_table(from: &str, s: &IngestSummary) {
    println!("riffle ingest: {from} -> source {}", s.source);
    let mut rows = vec![
        ("events read", s.events_read.to_string()),
        ("applied", s.applied.to_string()),
        ("already applied (skipped)", s.already_applied.to_string()),
        ("dead-lettered", s.dead_lettered_total().to_string()),
    ];
    for (reason, n) in &s.dead_lettered {
        rows.push((reason, n.to_string()));
    }
    rows.extend([
        ("rows written", s.rows_written.to_string()),
        ("entities written", s.entities_written.to_string()),
        (
            "time",
            format!(
                "{:.2} s ({:.0} events/s)",
                s.elapsed.as_secs_f64(),
                s.events_per_sec()
            ),
        ),
    ]);
    for (name, value) in rows {
        println!("  {name:<28}{value:>12}");
    }
    // What limited the run: the phases of the pipeline loop, largest first.
    let mut phases = s.loop_time.phases();
    let total: f64 = phases.iter().map(|(_, d)| d.as_secs_f64()).sum();
    if total > 0.0 {
        phases.sort_by_key(|(_, d)| std::cmp::Reverse(*d));
        let split: Vec<String> = phases
            .iter()
            .filter(|(_, d)| !d.is_zero())
            .map(|(name, d)| {
                let share = 100.0 * d.as_secs_f64() / total;
                format!("{} {share:.0}%", name.replace('_', " "))
            })
            .collect();
        println!("  {:<28}{}", "loop time", split.join(", "));
    }
    if s.dead_lettered_total() > 0 {
        println!("dead letters: {}", s.dead_letter_path);
    }
}
