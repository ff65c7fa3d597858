//! The ingest loop: records in; decode, load unseen entities' state, apply what was not
//! applied before, and every flush (also when nothing arrives) write each changed entity's
//! rows and state in one command, then report the Kafka offsets now durable. See the module
//! docs of [`super`] for why this is exactly-once in effect.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use riffle_core::{EntityId, Timestamp};
use riffle_registry::Registry;
use riffle_store::layout::state_field;
use riffle_store::{GroupRow, OnlineStore, RowWrite, StateWrite, StoreError};
use tokio::sync::mpsc;

use super::input::{Feed, Record};
use super::specs::{to_window_event, SpecMap};
use super::state::{self, Positions, StateError};
use super::summary::IngestSummary;
use crate::dead_letter::{DeadLetter, FileDeadLetterSink};
use crate::decode::{Decoder, Rejection};
use crate::window::{ConfigError, Rejected, WindowEngine};

/// Entities per store call (state reads and row+state writes).
const STORE_CHUNK: usize = 1000;

/// Why a run stopped. Bad events never stop it: they are dead-lettered.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("no source #{0} in the registry")]
    NoSource(usize),
    #[error("source {0:?} feeds no feature group with aggregations")]
    NoFeatures(String),
    #[error(transparent)]
    Specs(#[from] ConfigError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("reading the input: {0}")]
    Read(std::io::Error),
    #[error("dead-letter sink {path}: {error}")]
    DeadLetter {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("stored state of {entity} cannot be read ({error}); remove its field to rebuild it")]
    CorruptState { entity: String, error: String },
}

impl PipelineError {
    /// Worth retrying the run (the store or the disk was unhealthy); the others need a fix.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Store(_) | Self::Read(_) | Self::DeadLetter { .. }
        )
    }
}

/// What one run needs besides the store and the input.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// Index into `registry.sources`.
    pub source: usize,
    /// The input's stream id, for the summary (records carry their own).
    pub stream_id: u64,
    pub dead_letter: PathBuf,
    pub flush_interval: Duration,
    pub flush_max_events: usize,
}

/// Told `(partition, next_offset)` pairs once they are durable.
pub type OnDurable = Box<dyn FnMut(&[(i32, i64)]) + Send>;

/// How a continuous run is steered from outside: when to stop, and who hears about durable
/// Kafka offsets.
#[derive(Default)]
pub struct Control {
    /// Completes when the run should stop (Ctrl-C/SIGTERM): the pipeline flushes and returns.
    pub stop: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    /// Called after every flush with `(partition, next_offset)` for each Kafka partition
    /// whose records (applied, skipped as already applied, or dead-lettered) are now durable.
    pub on_durable: Option<OnDurable>,
}

/// One run of the pipeline over one input.
struct Pipeline {
    registry: Arc<Registry>,
    store: Arc<OnlineStore>,
    options: PipelineOptions,
    decoder: Decoder,
    map: SpecMap,
    engine: WindowEngine,
    /// Positions of every entity seen this run (loaded from the store on first sight).
    known: HashMap<EntityId, Positions>,
    field: String,
    sink: FileDeadLetterSink,
    /// Largest event time applied this run.
    watermark: Option<Timestamp>,
    /// Per input stream, the largest event time applied: `allowed_lateness` is judged
    /// against the event's own stream, so a slow partition is not judged by a fast one.
    stream_latest: HashMap<u64, Timestamp>,
    /// Per Kafka partition, the highest offset handled since the last flush.
    unflushed: BTreeMap<i32, u64>,
    summary: IngestSummary,
}

/// Runs the pipeline until `feed` ends (or `control.stop` completes) and everything is
/// durable; `progress` sees the summary after every flush. While the feed stays open the
/// loop flushes every `flush_interval` even without events, so expiry timers keep firing.
pub async fn run(
    registry: Arc<Registry>,
    store: Arc<OnlineStore>,
    options: PipelineOptions,
    mut feed: mpsc::Receiver<std::io::Result<Feed>>,
    control: Control,
    progress: &mut dyn FnMut(&IngestSummary),
) -> Result<IngestSummary, PipelineError> {
    let started = Instant::now();
    let mut p = Pipeline::new(registry, store, options)?;
    let mut stop = control
        .stop
        .unwrap_or_else(|| Box::pin(std::future::pending()));
    let mut on_durable = control.on_durable;
    let mut pending = 0usize;
    let mut last_flush = Instant::now();
    let mut open = true;
    while open {
        let deadline = tokio::time::Instant::from_std(last_flush + p.options.flush_interval);
        let mut batch = Vec::new();
        let mut revoked = false;
        while open && !revoked && pending + batch.len() < p.options.flush_max_events {
            tokio::select! {
                biased;
                () = &mut stop => open = false,
                next = tokio::time::timeout_at(deadline, feed.recv()) => match next {
                    Ok(Some(Ok(Feed::Records(chunk)))) => batch.extend(chunk),
                    Ok(Some(Ok(Feed::Revoked))) => revoked = true,
                    // Nothing is owned per partition yet: an assignment needs no action.
                    Ok(Some(Ok(Feed::Assigned(_)))) => {}
                    Ok(Some(Err(e))) => return Err(PipelineError::Read(e)),
                    Ok(None) => open = false,
                    Err(_) => break,
                },
            }
        }
        pending += batch.len();
        p.apply(batch).await?;
        if revoked
            || !open
            || pending >= p.options.flush_max_events
            || Instant::now() >= deadline.into_std()
        {
            p.flush().await?;
            let durable = p.take_durable();
            if let (Some(report), false) = (on_durable.as_mut(), durable.is_empty()) {
                report(&durable);
            }
            if revoked {
                p.forget()?;
            }
            pending = 0;
            last_flush = Instant::now();
            p.summary.elapsed = started.elapsed();
            progress(&p.summary);
        }
    }
    p.summary.complete = true;
    p.summary.elapsed = started.elapsed();
    Ok(p.summary)
}

impl Pipeline {
    fn new(
        registry: Arc<Registry>,
        store: Arc<OnlineStore>,
        options: PipelineOptions,
    ) -> Result<Self, PipelineError> {
        let source = registry
            .sources
            .get(options.source)
            .ok_or(PipelineError::NoSource(options.source))?;
        let map = SpecMap::new(&registry, options.source);
        if map.config.specs.is_empty() {
            return Err(PipelineError::NoFeatures(source.name.clone()));
        }
        let mut engine = WindowEngine::new(map.config.clone())?;
        engine.advance(Timestamp::now());
        let sink = FileDeadLetterSink::open(&options.dead_letter).map_err(|error| {
            PipelineError::DeadLetter {
                path: options.dead_letter.clone(),
                error,
            }
        })?;
        let summary = IngestSummary {
            source: source.name.clone(),
            stream_id: options.stream_id,
            dead_letter_path: options.dead_letter.display().to_string(),
            ..IngestSummary::default()
        };
        Ok(Self {
            decoder: Decoder::new(&registry, source),
            field: state_field(&source.name),
            registry,
            store,
            options,
            map,
            engine,
            known: HashMap::new(),
            sink,
            watermark: None,
            stream_latest: HashMap::new(),
            unflushed: BTreeMap::new(),
            summary,
        })
    }

    /// `(partition, next_offset)` of every Kafka partition handled since the last call.
    fn take_durable(&mut self) -> Vec<(i32, i64)> {
        std::mem::take(&mut self.unflushed)
            .into_iter()
            .map(|(p, o)| (p, i64::try_from(o).unwrap_or(i64::MAX - 1) + 1))
            .collect()
    }

    /// Drops all in-memory entity state (after a flush): partitions may have moved to another
    /// process, so what this one holds could be stale; entities reload on next touch.
    fn forget(&mut self) -> Result<(), PipelineError> {
        let mut engine = WindowEngine::new(self.map.config.clone())?;
        engine.advance(Timestamp::now());
        self.engine = engine;
        self.known.clear();
        Ok(())
    }

    fn dead_letter(
        &mut self,
        rejection: &Rejection,
        origin: String,
        payload: &[u8],
    ) -> Result<(), PipelineError> {
        *self
            .summary
            .dead_lettered
            .entry(rejection.reason())
            .or_default() += 1;
        let source = &self.registry.sources[self.options.source].name;
        let letter = DeadLetter::new(rejection, source, origin, payload);
        self.sink
            .write(&letter)
            .map_err(|error| PipelineError::DeadLetter {
                path: self.options.dead_letter.clone(),
                error,
            })
    }

    /// Decodes and applies a batch of records (not yet durable: see [`Pipeline::flush`]).
    async fn apply(&mut self, batch: Vec<Record>) -> Result<(), PipelineError> {
        self.summary.events_read += batch.len() as u64;
        let mut events = Vec::with_capacity(batch.len());
        for record in batch {
            if let Some(p) = record.partition {
                let high = self.unflushed.entry(p).or_insert(record.offset);
                *high = (*high).max(record.offset);
            }
            match self.decoder.decode(&record.payload, None) {
                Ok(event) => events.push((record, event)),
                Err(rejection) => {
                    self.dead_letter(&rejection, record.origin(), &record.payload)?;
                }
            }
        }
        let mut unseen: Vec<EntityId> = Vec::new();
        let mut seen_now = HashSet::new();
        for (_, e) in &events {
            if !self.known.contains_key(&e.entity) && seen_now.insert(e.entity.clone()) {
                unseen.push(e.entity.clone());
            }
        }
        self.load(&unseen).await?;
        let now = Timestamp::now();
        let registry = self.registry.clone();
        let source = &registry.sources[self.options.source];
        for (record, event) in events {
            let Some(positions) = self.known.get_mut(&event.entity) else {
                continue; // unreachable: `load` registered every unseen entity
            };
            let (stream, line) = (record.stream, record.offset);
            if positions.applied(stream, line) {
                self.summary.already_applied += 1;
                continue;
            }
            let event = to_window_event(source, event);
            let latest = self.stream_latest.get(&stream).copied();
            match self.engine.ingest_in_stream(&event, now, latest) {
                Ok(()) => {
                    positions.record(stream, line);
                    let t = event.time;
                    self.stream_latest
                        .entry(stream)
                        .and_modify(|m| *m = (*m).max(t))
                        .or_insert(t);
                    self.summary.applied += 1;
                    let t = event.time.min(now);
                    self.watermark = Some(self.watermark.map_or(t, |w| w.max(t)));
                }
                Err(rejected) => {
                    let rejection = to_rejection(&rejected);
                    self.dead_letter(&rejection, record.origin(), &record.payload)?;
                }
            }
        }
        Ok(())
    }

    /// Reads the stored state of entities seen for the first time this run, restores their
    /// windows and remembers their positions.
    async fn load(&mut self, ids: &[EntityId]) -> Result<(), PipelineError> {
        let entity = self.registry.sources[self.options.source].entity;
        for chunk in ids.chunks(STORE_CHUNK) {
            let names: Vec<&str> = chunk.iter().map(EntityId::as_str).collect();
            let stored = self
                .store
                .read_raw_fields(entity, &names, &self.field)
                .await?;
            for (id, bytes) in chunk.iter().zip(stored) {
                let positions = match bytes {
                    None => Positions::default(),
                    Some(bytes) => {
                        let corrupt = |error: String| PipelineError::CorruptState {
                            entity: id.as_str().to_owned(),
                            error,
                        };
                        let (positions, snapshot) = state::decode(&bytes)
                            .map_err(|e: StateError| corrupt(e.to_string()))?;
                        if !snapshot.is_empty() {
                            self.engine
                                .restore_entity(id.clone(), snapshot)
                                .map_err(|e| corrupt(e.to_string()))?;
                        }
                        self.summary.entities_loaded += 1;
                        positions
                    }
                };
                self.known.insert(id.clone(), positions);
            }
        }
        Ok(())
    }

    /// Moves the engine clock to now and writes every entity whose values changed (new
    /// events, or windows that moved) — rows and state in one command per entity — then
    /// makes the dead letters durable.
    async fn flush(&mut self) -> Result<(), PipelineError> {
        let now = Timestamp::now();
        let mut ids = self.engine.advance(now);
        ids.extend(self.engine.take_dirty());
        let mut unique = HashSet::with_capacity(ids.len());
        ids.retain(|id| unique.insert(id.clone()));
        let event_ts = self.watermark.unwrap_or(now).min(now);
        let entity = self.registry.sources[self.options.source].entity;
        for chunk in ids.chunks(STORE_CHUNK) {
            let mut rows = Vec::with_capacity(chunk.len() * self.map.groups.len());
            let mut states = Vec::with_capacity(chunk.len());
            for id in chunk {
                let values = self.engine.values(id, now);
                for (g, (gid, _)) in self.map.groups.iter().enumerate() {
                    rows.push(RowWrite {
                        id: id.clone(),
                        group: *gid,
                        row: GroupRow {
                            event_ts,
                            computed_at: now,
                            values: self.map.row_values(&self.registry, g, &values),
                        },
                    });
                }
                // Every entity in the engine came through `load`, so its positions are known.
                if let Some(positions) = self.known.get(id) {
                    let snapshot = self.engine.snapshot_entity(id).unwrap_or_default();
                    states.push(StateWrite {
                        id: id.clone(),
                        entity,
                        field: self.field.clone(),
                        bytes: state::encode(positions, &snapshot),
                    });
                }
            }
            self.store.write_with_state(&rows, &states).await?;
            self.summary.rows_written += rows.len() as u64;
            self.summary.entities_written += chunk.len() as u64;
        }
        self.sink
            .flush()
            .map_err(|error| PipelineError::DeadLetter {
                path: self.options.dead_letter.clone(),
                error,
            })?;
        self.summary.flushes += 1;
        let source = &self.registry.sources[self.options.source].name;
        super::watermark::publish(&self.store, source, self.watermark, self.summary.applied).await;
        Ok(())
    }
}

/// The engine's refusal as a dead-letter rejection.
fn to_rejection(rejected: &Rejected) -> Rejection {
    let detail = rejected.to_string();
    match rejected {
        Rejected::TooLate { .. } => Rejection::TooLate(detail),
        Rejected::FromFuture { .. } => Rejection::FromFuture(detail),
        Rejected::NotNumeric { .. } | Rejected::NotFinite { .. } => {
            Rejection::SchemaMismatch(detail)
        }
    }
}
