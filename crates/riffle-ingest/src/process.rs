//! The ingest process, wired in one place for every command that runs one (`riffle ingest`,
//! `riffle demo`): its input opened as a channel of [`Feed`] items — a file or stdin
//! (optionally followed), events `POST`ed to `/v1/events`, the generator, an archive's events
//! read by the caller, or a member of a Kafka consumer group with the monitor of the whole
//! group —; the [`IngestStatus`] that
//! `/metrics` and `/health` read, served on the process's listener; the [`pipeline`] run
//! with its settings from the registry; and once the run ends, everything stopped in
//! order: the server drained, the Kafka member's last commit and leave, the generator
//! thread joined.
//!
//! Two steps, so that a bad input is reported before the store is connected to:
//! [`IngestProcess::open`] starts the input (nothing is served yet, no store is needed),
//! [`IngestProcess::run`] takes the store and runs until the input ends or, for an input
//! that never does ([`IngestProcess::is_continuous`]), until the stop future completes.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use riffle_auth::Gate;
use riffle_listener::{Listener, ListenerMetrics};
use riffle_registry::Registry;
use riffle_store::OnlineStore;
use riffle_synth::{EventGenerator, EventPlan, GeneratorError, Pacer};
use tokio::sync::{mpsc, oneshot};

use crate::dead_letter::DeadLetterTarget;
use crate::feed::archive::{spawn_archive_reader, ArchiveRecords};
use crate::feed::file::spawn_reader;
use crate::feed::generator::{generator_stream_id, GeneratorFeed};
use crate::feed::http::{self, HttpEvents};
use crate::feed::item::Feed;
use crate::feed::kafka::group_monitor::GroupMonitor;
use crate::feed::kafka::source::group::RIFFLE_CLIENT_PREFIX;
use crate::feed::kafka::source::{KafkaConfig, SourceError};
use crate::feed::kafka::KafkaFeed;
use crate::feed::stream_id::{file_stream_id, kafka_stream_id, stdin_stream_id};
use crate::pipeline::{self, Control, IngestSummary, PipelineError, PipelineOptions};
use crate::server::{self, IngestStatus};

/// Records per feed item from the file and generator inputs; the feed's bound in items is
/// `ingest.queue_capacity` records in items of this size.
const RECORDS_PER_ITEM: usize = 256;

/// Where an ingest process's events come from.
pub enum Input {
    /// NDJSON lines of `path` (`-`: stdin). With `follow`, lines appended to the file are
    /// read until the run is stopped (stdin is read to its end).
    File { path: PathBuf, follow: bool },
    /// Events `POST`ed to `/v1/events` on the process's listener; `address` is that
    /// listener's address as configured, named in the run's description.
    Http { address: String },
    /// Synthetic events of the source's schema.
    Generator(GeneratorInput),
    /// An archive's events, read by the caller: see [`ArchiveInput`].
    Archive(ArchiveInput),
    /// The topic of `KafkaConfig`, read as a member of its consumer group; the member's
    /// client id is set to name this process.
    Kafka(KafkaConfig),
}

/// What the generator makes: `rate` events per second (with bursts and cold starts) of
/// `entities` entities drawn by a power law, the same events for the same `seed`;
/// `max_events` of them, or until the run is stopped.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratorInput {
    pub rate: f64,
    pub entities: u64,
    pub seed: u64,
    pub max_events: Option<u64>,
    /// Every generated event is also appended to this NDJSON file, in the order sent, as a
    /// topic's archive keeps a stream: the source's history for `riffle training-set` and
    /// `riffle validate`.
    pub archive: Option<PathBuf>,
}

/// An archive's events (Parquet, an object-store URL), read by the caller and handed over
/// as NDJSON objects in archive order; the run ends after the last one is durable.
pub struct ArchiveInput {
    /// The archive, as the run's description names it.
    pub described: String,
    /// Its stream id ([`crate::feed::archive_stream_id`]).
    pub stream_id: u64,
    pub records: ArchiveRecords,
}

/// What an ingest process is made of.
pub struct ProcessOptions {
    pub registry: Arc<Registry>,
    /// Index into `registry.sources`.
    pub source: usize,
    pub input: Input,
    pub dead_letter: DeadLetterTarget,
    /// Where `/metrics`, `/health` (and for HTTP input `/v1/events`) are served (TLS and
    /// connection limits as configured); `None`: nowhere.
    pub listener: Option<Listener>,
    /// Who may send events (`ingest:<source>`) and scrape `/metrics` on that listener.
    pub gate: Arc<Gate>,
}

/// Completes when a run should stop (Ctrl-C/SIGTERM): the pipeline flushes and returns.
pub type Stop = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Why an ingest process could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The input file cannot be opened.
    #[error("cannot open {}: {error}", path.display())]
    Open {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The input file's stream id cannot be computed.
    #[error("cannot identify {}: {error}", path.display())]
    Identify {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The generator cannot make events of the source.
    #[error(transparent)]
    Generator(GeneratorError),
    /// The input's thread (the file reader or the generator) cannot start.
    #[error(transparent)]
    Thread(std::io::Error),
    /// The Kafka consumer cannot start.
    #[error(transparent)]
    Kafka(SourceError),
    /// The pipeline could not start, or stopped on an error.
    #[error(transparent)]
    Pipeline(PipelineError),
}

/// Hears how a run goes; both methods do nothing by default.
pub trait IngestProgress {
    /// After every durable flush, the run's summary so far.
    fn flushed(&mut self, _summary: &IngestSummary) {}
    /// The pipeline returned; the server and the input are stopped next.
    fn finished(&mut self) {}
}

/// Hears nothing.
pub struct Quiet;

impl IngestProgress for Quiet {}

/// An ingest process whose input is open: see the module docs.
pub struct IngestProcess {
    registry: Arc<Registry>,
    source: usize,
    dead_letter: DeadLetterTarget,
    input: OpenInput,
    status: Arc<IngestStatus>,
    routes: Router,
    listener: Option<Listener>,
}

/// An input once open.
struct OpenInput {
    /// See [`IngestProcess::described`].
    described: String,
    stream_id: u64,
    feed: mpsc::Receiver<std::io::Result<Feed>>,
    /// It goes on until the run is stopped.
    continuous: bool,
    /// The consumer thread and its settings, for Kafka.
    kafka: Option<(KafkaFeed, KafkaConfig)>,
    /// The generator thread.
    generator: Option<GeneratorFeed>,
}

impl IngestProcess {
    /// Opens the input (its thread, or its consumer, starts) and the status `/metrics` and
    /// `/health` will read. Nothing is served before [`IngestProcess::run`].
    pub fn open(options: ProcessOptions) -> Result<Self, ProcessError> {
        let ProcessOptions {
            registry,
            source,
            input,
            dead_letter,
            listener,
            gate,
        } = options;
        let name = &registry
            .sources
            .get(source)
            .ok_or(ProcessError::Pipeline(PipelineError::NoSource(source)))?
            .name;
        let capacity = registry.ingest.queue_capacity.div_ceil(RECORDS_PER_ITEM);
        let mut status = IngestStatus::new(name, &registry.ingest, capacity);
        gate.metrics.register(status.metrics.registry_mut());
        let listener = listener.map(|listener| {
            let metrics = ListenerMetrics::default();
            let registry = status.metrics.registry_mut();
            metrics.register(registry.sub_registry_with_prefix("listener"));
            listener.metrics(metrics)
        });
        let status = Arc::new(status);
        let mut routes = server::router(status.clone(), gate.clone());
        let input = match input {
            Input::File { path, follow } => open_file(path, follow, capacity)?,
            Input::Http { address } => {
                let (events, input) = open_http(&address, &status, capacity, gate, source);
                routes = routes.merge(events);
                input
            }
            Input::Generator(generate) => open_generator(&registry, source, generate, capacity)?,
            Input::Archive(archive) => OpenInput {
                feed: spawn_archive_reader(
                    archive.records,
                    archive.stream_id,
                    RECORDS_PER_ITEM,
                    capacity,
                )
                .map_err(ProcessError::Thread)?,
                described: archive.described,
                stream_id: archive.stream_id,
                continuous: false,
                kafka: None,
                generator: None,
            },
            Input::Kafka(config) => open_kafka(&registry, config, &status, capacity)?,
        };
        Ok(Self {
            registry,
            source,
            dead_letter,
            input,
            status,
            routes,
            listener,
        })
    }

    /// The input, for a summary: the file, `-`, the topic and group, the generator's
    /// settings, or the events URL.
    pub fn described(&self) -> &str {
        &self.input.described
    }

    /// Whether the input goes on until the run is stopped (a followed file, HTTP, Kafka, a
    /// generator without `max_events`) rather than ending by itself.
    pub fn is_continuous(&self) -> bool {
        self.input.continuous
    }

    /// Where `/metrics` and `/health` are served, if anywhere.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.as_ref()?.local_addr().ok()
    }

    /// Serves `/metrics` and `/health` (and `/v1/events`), and runs the pipeline into
    /// `store` until the input ends or `stop` completes (`None`: only the input's end ends
    /// the run); then stops the server and the input. `progress` hears of every flush.
    pub async fn run(
        self,
        store: Arc<OnlineStore>,
        stop: Option<Stop>,
        progress: &mut dyn IngestProgress,
    ) -> Result<IngestSummary, ProcessError> {
        let settings = &self.registry.ingest;
        let status = self.status;
        let input = self.input;
        let monitor = input.kafka.as_ref().map(|(feed, config)| {
            let monitor = GroupMonitor::start(
                config,
                feed.control(),
                store.clone(),
                &self.registry.sources[self.source].name,
                settings.rejoin_after,
            );
            status.set_group(monitor.watch(), feed.control());
            monitor
        });
        let options = PipelineOptions {
            source: self.source,
            stream_id: input.stream_id,
            kafka_topic: input.kafka.as_ref().map(|(_, config)| config.topic.clone()),
            dead_letter: self.dead_letter,
            flush_interval: settings.flush_interval,
            flush_max_events: settings.flush_max_events,
        };
        let control = Control {
            stop,
            on_durable: input.kafka.as_ref().map(|(feed, _)| feed.durable()),
        };
        let (server_stop, server_stopped) = oneshot::channel::<()>();
        let server = self.listener.map(|listener| {
            tokio::spawn(server::serve(listener, self.routes, async {
                let _ = server_stopped.await;
            }))
        });
        let mut observe = |s: &IngestSummary| {
            status.observe(s);
            progress.flushed(s);
        };
        let result = pipeline::run(
            self.registry.clone(),
            store,
            options,
            input.feed,
            control,
            &mut observe,
        )
        .await;
        progress.finished();
        let _ = server_stop.send(());
        if let Some(server) = server {
            let _ = server.await;
        }
        if let Some((feed, _)) = input.kafka {
            drop(monitor);
            // Commits the last durable offsets and leaves the group.
            let _ = tokio::task::spawn_blocking(move || feed.shutdown()).await;
        }
        if let Some(generator) = input.generator {
            let _ = tokio::task::spawn_blocking(move || generator.stop()).await;
        }
        result.map_err(ProcessError::Pipeline)
    }
}

/// A file, or stdin for `-` (`follow`: keep tailing the file).
fn open_file(path: PathBuf, follow: bool, capacity: usize) -> Result<OpenInput, ProcessError> {
    let stdin = path.as_os_str() == "-";
    let (stream_id, reader): (u64, Box<dyn std::io::Read + Send>) = if stdin {
        (stdin_stream_id(), Box::new(std::io::stdin()))
    } else {
        let file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(error) => return Err(ProcessError::Open { path, error }),
        };
        let id = match file_stream_id(&path) {
            Ok(id) => id,
            Err(error) => return Err(ProcessError::Identify { path, error }),
        };
        (id, Box::new(file))
    };
    let feed = spawn_reader(
        reader,
        stream_id,
        follow && !stdin,
        RECORDS_PER_ITEM,
        capacity,
    )
    .map_err(ProcessError::Thread)?;
    Ok(OpenInput {
        described: path.display().to_string(),
        stream_id,
        feed,
        continuous: follow,
        kafka: None,
        generator: None,
    })
}

/// Events `POST`ed to `/v1/events` (the returned route, to serve with the others).
fn open_http(
    address: &str,
    status: &Arc<IngestStatus>,
    capacity: usize,
    gate: Arc<Gate>,
    source: usize,
) -> (Router, OpenInput) {
    let (events, feed) = HttpEvents::channel(
        status.clone(),
        capacity,
        http::DEFAULT_MAX_BODY,
        http::DEFAULT_MAX_WAIT,
        (gate, source),
    );
    let input = OpenInput {
        described: format!("POST http://{address}/v1/events"),
        stream_id: events.stream_id(),
        feed,
        continuous: true,
        kafka: None,
        generator: None,
    };
    (events.router(), input)
}

/// Synthetic events of the source's schema.
fn open_generator(
    registry: &Registry,
    source: usize,
    generate: GeneratorInput,
    capacity: usize,
) -> Result<OpenInput, ProcessError> {
    let GeneratorInput {
        rate,
        entities,
        seed,
        max_events,
        archive,
    } = generate;
    let archive = archive
        .map(|path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|error| ProcessError::Open { path, error })
        })
        .transpose()?;
    let plan = EventPlan::new(rate, entities, seed);
    let generator = EventGenerator::new(registry, &registry.sources[source], &plan)
        .map_err(ProcessError::Generator)?;
    let pacer = Pacer::new(rate, plan.bursts.clone());
    let stream_id = generator_stream_id(seed);
    let (generator, feed) = GeneratorFeed::start(
        generator,
        pacer,
        stream_id,
        max_events,
        RECORDS_PER_ITEM,
        capacity,
        archive,
    )
    .map_err(ProcessError::Thread)?;
    Ok(OpenInput {
        described: format!("generator ({rate} events/s over {entities} entities, seed {seed})"),
        stream_id,
        feed,
        continuous: max_events.is_none(),
        kafka: None,
        generator: Some(generator),
    })
}

/// A member of the consumer group of `config`, whose partitions' lag `status` samples.
fn open_kafka(
    registry: &Registry,
    mut config: KafkaConfig,
    status: &IngestStatus,
    capacity: usize,
) -> Result<OpenInput, ProcessError> {
    config.client_id = format!("{RIFFLE_CLIENT_PREFIX}{}", std::process::id());
    let described = format!("kafka {} (group {})", config.topic, config.group_id);
    let topic = config.topic.clone();
    let (feed, rx) = KafkaFeed::start(config.clone(), capacity, registry.ingest.max_stall)
        .map_err(ProcessError::Kafka)?;
    let lag = feed.lag_probe();
    status.set_partitions(Box::new(move || {
        lag.lag()
            .into_iter()
            .map(|p| {
                (
                    p.partition,
                    p.consumer_lag,
                    kafka_stream_id(&topic, p.partition),
                )
            })
            .collect()
    }));
    Ok(OpenInput {
        described,
        stream_id: 0,
        feed: rx,
        continuous: true,
        kafka: Some((feed, config)),
        generator: None,
    })
}

#[cfg(test)]
mod tests {
    use riffle_store::{StoreLimits, StoreUrl};

    use super::*;

    fn options(input: Input, dir: &std::path::Path) -> ProcessOptions {
        let registry = Arc::new(riffle_testkit::fixtures::generator_registry());
        ProcessOptions {
            gate: Arc::new(Gate::new(registry.clone(), None, "ingest")),
            registry,
            source: 0,
            input,
            dead_letter: DeadLetterTarget::File(dir.join("dead.ndjson")),
            listener: None,
        }
    }

    #[test]
    fn a_missing_file_is_reported_before_anything_runs() {
        let dir = tempfile::tempdir().unwrap();
        let input = Input::File {
            path: dir.path().join("missing.ndjson"),
            follow: false,
        };
        let Err(error) = IngestProcess::open(options(input, dir.path())) else {
            panic!("a missing file opens");
        };
        assert!(matches!(error, ProcessError::Open { .. }), "{error:?}");
        assert!(error.to_string().starts_with("cannot open "), "{error}");
    }

    /// A generator with `max_events` is not continuous: the run ends once they are durable,
    /// with no stop and nothing served.
    #[tokio::test]
    async fn generated_events_end_the_run_once_durable() {
        let dir = tempfile::tempdir().unwrap();
        let input = Input::Generator(GeneratorInput {
            rate: 20_000.0,
            entities: 50,
            seed: 7,
            max_events: Some(300),
            archive: Some(dir.path().join("archive.ndjson")),
        });
        let options = options(input, dir.path());
        let limits = StoreLimits::from_settings(&options.registry.store);
        let url = StoreUrl::Embedded(dir.path().join("store"));
        let store = OnlineStore::open(&url, options.registry.clone(), limits)
            .await
            .unwrap();
        let process = IngestProcess::open(options).unwrap();
        assert!(!process.is_continuous());
        assert_eq!(process.local_addr(), None);
        assert_eq!(
            process.described(),
            "generator (20000 events/s over 50 entities, seed 7)"
        );
        let summary = process
            .run(Arc::new(store), None, &mut Quiet)
            .await
            .unwrap();
        assert!(summary.complete);
        assert_eq!(summary.events_read, 300);
        assert_eq!(summary.applied + summary.dead_lettered_total(), 300);
        assert!(summary.rows_written > 0);
        // The archive holds the very events sent, one per line.
        let archived = std::fs::read_to_string(dir.path().join("archive.ndjson")).unwrap();
        assert_eq!(archived.lines().count(), 300);
        assert!(archived
            .lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()));
    }
}
