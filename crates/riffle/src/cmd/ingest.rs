//! `riffle ingest --config PATH [--store URL] [--source NAME] (--from FILE|- [--follow] |
//! [--brokers H:P,… --topic T [--group-id G]]) [--json]`: feeds events of one source through
//! the window pipeline (`riffle_ingest::pipeline`, wired by `riffle_ingest::process`), with a
//! progress line on stderr and a summary on stdout.
//!
//! - `--from`: replays NDJSON events and exits once every event is durable; with `--follow`
//!   it keeps tailing the file until Ctrl-C/SIGTERM. A Parquet file, a folder, a glob or a
//!   `file://`, `s3://` or `gs://` URL is an archive (`riffle_offline::archive`): its events
//!   are replayed the same way, to backfill from history before the stream takes over.
//! - `--generate RATE` (or a `generator` source): synthetic events of the source's schema
//!   (power-law entities, bursts, cold starts; `--entities`, `--seed`) until Ctrl-C/SIGTERM,
//!   or `--max-events N` of them, then exit once durable; `--archive-to FILE` also keeps
//!   them, as the source's history.
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

use std::path::PathBuf;

use anyhow::anyhow;
use clap::Args;
use riffle_ingest::dead_letter::DeadLetterTarget;
use riffle_ingest::feed::kafka::source::KafkaConfig;
use riffle_ingest::pipeline::{IngestSummary, PipelineError};
use riffle_ingest::process::{
    GeneratorInput, IngestProcess, Input, ProcessError, ProcessOptions, Stop,
};
use riffle_registry::{Registry, SourceKind};
use riffle_store::StoreUrl;

use crate::access::{self, AccessArgs};
use crate::config::{self, ConfigArgs};
use crate::exit::{runtime, usage, CmdResult, Failure};
use crate::kafka::KafkaArgs;
use crate::progress;

#[derive(Debug, Args)]
pub struct IngestArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub access: AccessArgs,
    /// Online store URL (default: the registry's store.url).
    #[arg(long, env = "RIFFLE_STORE", value_name = "URL")]
    pub store: Option<String>,
    /// The source whose events these are (default: the registry's only source).
    #[arg(long, value_name = "NAME")]
    pub source: Option<String>,
    /// Events to replay: an NDJSON file, `-` for stdin, or an archive (a Parquet file, a
    /// folder, a glob, a file://, s3:// or gs:// URL) (default: the source's Kafka topic).
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
    /// With the generator: also append every generated event to FILE as an NDJSON line,
    /// as a topic's archive keeps a stream, so it can be the source's history
    /// (`riffle training-set --events`, `riffle validate --events`).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["from", "brokers", "topic"])]
    pub archive_to: Option<PathBuf>,
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
    let generated = args.generate.is_some()
        || matches!(registry.sources[source].kind, SourceKind::Generator { .. });
    let archive = args
        .from
        .as_ref()
        .and_then(|f| f.to_str())
        .filter(|f| riffle_offline::archive::is_archive(f));
    if archive.is_some() && args.follow {
        return Err(usage(anyhow!(
            "--follow tails an NDJSON file, not an archive"
        )));
    }
    if args.archive_to.is_some() && (http || !generated) {
        return Err(usage(anyhow!(
            "--archive-to keeps the generator's events: use it with --generate RATE or a generator source"
        )));
    }
    let input = match (&args.from, archive) {
        (Some(_), Some(location)) => Input::Archive(
            riffle_offline::archive::open(location)
                .await
                .map_err(|e| usage(anyhow::Error::new(e).context("cannot replay the archive")))?,
        ),
        (Some(from), None) => Input::File {
            path: from.clone(),
            follow: args.follow,
        },
        (None, _) if http => Input::Http { address: listen },
        (None, _) if generated => Input::Generator(generator_input(&registry, source, &args)?),
        (None, _) => Input::Kafka(kafka_config(&registry, source, &args)?),
    };
    // Events sent over HTTP need the door guarded; a listener serving only `/metrics` and
    // `/health` may face the network (Prometheus scrapes it).
    let gate = match listener.as_ref().map(|l| l.local_addr()) {
        Some(Ok(addr)) if http => access::gate(&registry, "ingest", addr, &args.access).await?,
        _ => access::open_gate(&registry, "ingest").await?,
    };
    let (listener, scheme) = match listener {
        Some(socket) => {
            let (listener, tls) =
                access::listener(socket, &registry.ingest.listener, &args.access)?;
            (Some(listener), if tls { "https" } else { "http" })
        }
        None => (None, "http"),
    };
    let process = IngestProcess::open(ProcessOptions {
        registry: registry.clone(),
        source,
        input,
        dead_letter,
        listener,
        gate,
    })
    .map_err(failure)?;
    let store = config::open_url(&registry, &url).await?;
    // Until Ctrl-C/SIGTERM when the input never ends by itself (and, as ever, for a file
    // replayed into an `http` source).
    let continuous = http || process.is_continuous();
    let stop = continuous.then(|| Box::pin(crate::shutdown::signal()) as Stop);
    if let Some(addr) = process.local_addr() {
        eprintln!(
            "riffle ingest: metrics on {scheme}://{addr}/metrics, health on {scheme}://{addr}/health"
        );
    }
    let described = process.described().to_owned();
    let mut bar = progress::IngestBar::new();
    let summary = process.run(store, stop, &mut bar).await.map_err(failure)?;
    if args.json {
        let mut value = serde_json::to_value(&summary).map_err(runtime)?;
        value["events_per_sec"] = serde_json::json!(summary.events_per_sec().round());
        value["dead_lettered_total"] = serde_json::json!(summary.dead_lettered_total());
        let text = serde_json::to_string_pretty(&value).map_err(runtime)?;
        println!("{text}");
    } else {
        print_table(&described, &summary);
    }
    Ok(())
}

/// Exit 2 for what the flags or the registry got wrong (a missing file, a generator that
/// cannot make the source's events, a source that feeds no feature), 1 otherwise.
fn failure(error: ProcessError) -> Failure {
    match error {
        ProcessError::Open { .. }
        | ProcessError::Identify { .. }
        | ProcessError::Generator(_)
        | ProcessError::Pipeline(PipelineError::NoFeatures(_) | PipelineError::Specs(_)) => {
            usage(error)
        }
        other => runtime(other),
    }
}

/// `--generate RATE` or a `generator` source: the rate and entities the flags or the source
/// declare.
fn generator_input(
    registry: &Registry,
    source: usize,
    args: &IngestArgs,
) -> Result<GeneratorInput, Failure> {
    let (declared_rate, declared_entities) = match registry.sources[source].kind {
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
    Ok(GeneratorInput {
        rate,
        entities,
        seed: args.seed,
        max_events: args.max_events,
        archive: args.archive_to.clone(),
    })
}

/// The source's Kafka settings with the command-line overrides; a source of another kind
/// needs `--brokers` and `--topic`.
fn kafka_config(
    registry: &Registry,
    source: usize,
    args: &IngestArgs,
) -> Result<KafkaConfig, Failure> {
    args.kafka.config_for(registry, source).ok_or_else(|| {
        usage(anyhow!(
            "source {} is not a Kafka source: give --from FILE|- or --brokers and --topic",
            registry.sources[source].name
        ))
    })
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

/// The source's dead-letter sink ([`DeadLetterTarget::of_source`]), on `--brokers` when
/// given.
fn dead_letter_target(
    registry: &Registry,
    source: usize,
    url: &StoreUrl,
    args: &IngestArgs,
) -> Result<DeadLetterTarget, Failure> {
    let src = &registry.sources[source];
    DeadLetterTarget::of_source(src, url, args.kafka.brokers.as_deref()).ok_or_else(|| {
        usage(anyhow!(
            "source {}: dead-letter sink {:?} needs Kafka brokers: the source is not a Kafka source, give --brokers",
            src.name,
            src.dead_letter.as_deref().unwrap_or_default()
        ))
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
