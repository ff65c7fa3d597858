//! The ingest loop: records in; decode, load unseen entities' state, apply what was not
//! applied before, and every flush (also when nothing arrives) write each changed entity's
//! rows and state in one command, then report the Kafka offsets now durable. See the module
//! docs of [`super`] for why this is exactly-once in effect.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use foldhash::{HashMap as FastMap, HashSet as FastSet};
use riffle_core::{EntityId, Timestamp};
use riffle_registry::Registry;
use riffle_store::layout::state_field;
use riffle_store::meta::{timers_name, META_TTL};
use riffle_store::{
    GroupRow, MetaChange, MetaChanges, OnlineStore, RowWrite, StateWrite, StoreError,
};
use tokio::sync::mpsc;

use super::specs::{named_event, SpecMap};
use super::state::{self, Positions, StateError};
use super::streams::StreamProgress;
use super::summary::IngestSummary;
use super::watermark::Publication;
use crate::dead_letter::{DeadLetter, DeadLetterSink, DeadLetterTarget};
use crate::decode::{Decoder, Rejection};
use crate::feed::ack::{Ack, AckOutcome};
use crate::feed::item::{Feed, Record};
use riffle_window::{ConfigError, Rejected, WindowEngine};

/// How long pending-expiry index and stream-progress keys outlive their last write, beyond
/// the longest window (after it every pending expiry is past).
const INDEX_SLACK: Duration = Duration::from_secs(24 * 3600);

/// Entities per store call (state reads and row+state writes).
const STORE_CHUNK: usize = 1000;

/// Entities from which a flush's writes are built on several threads (below it, starting
/// them costs more than it saves), and at most how many threads.
const PARALLEL_FLUSH_MIN: usize = 4 * STORE_CHUNK;
const MAX_FLUSH_WORKERS: usize = 4;

/// What every write of one flush is stamped with.
struct Stamp {
    now: Timestamp,
    event_ts: Timestamp,
    written_at: u64,
    entity: usize,
}

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
    #[error("dead-letter sink {sink}: {error}")]
    DeadLetter { sink: String, error: std::io::Error },
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
    /// The Kafka topic when the input is one: the streams this process owns are then the
    /// partitions each [`Feed::Assigned`] names. `None`: the input is the one stream
    /// `stream_id`, owned from the start (its pending expiries are loaded then).
    pub kafka_topic: Option<String>,
    pub dead_letter: DeadLetterTarget,
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
    /// whose records (applied, skipped as already applied, or dead-lettered) are now durable
    /// (none when it wrote nothing of Kafka's: the flush itself is news, the pipeline lives).
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
    known: FastMap<EntityId, Positions>,
    field: String,
    /// The source's field names, shared by every event's engine form.
    field_names: Vec<Arc<str>>,
    sink: DeadLetterSink,
    /// Per input stream: lateness, ownership, drained streams, watermarks, offsets.
    streams: StreamProgress,
    /// Per entity, its entry in the pending-expiry index as far as this run knows:
    /// `(stream, due ms)`, the due time unknown for entities loaded from the store.
    indexed: FastMap<EntityId, (u64, Option<i64>)>,
    /// Entities restored whose stored rows no longer show their windows (a window moved
    /// while no process held them): rewritten by the next flush.
    stale_rows: Vec<EntityId>,
    /// Index entries `(stream, entity)` to remove at the next flush: nothing pending.
    unindex: Vec<(u64, EntityId)>,
    /// TTL of the index and stream-progress keys.
    meta_ttl: Duration,
    summary: IngestSummary,
    /// Threads a large flush's writes are built on: the cores available, at most
    /// [`MAX_FLUSH_WORKERS`] (asked once: the answer reads cgroup files).
    flush_workers: usize,
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
    if p.options.kafka_topic.is_none() {
        // One stream, owned from the start: its pending expiries are this process's.
        p.take_over(&[p.options.stream_id]).await?;
    }
    let mut stop = control
        .stop
        .unwrap_or_else(|| Box::pin(std::future::pending()));
    let mut on_durable = control.on_durable;
    // Acknowledged chunks applied since the last flush, with their outcome.
    let mut acks: Vec<(Ack, AckOutcome)> = Vec::new();
    // The previous flush's write, still in flight while the next batches are decoded and
    // applied (the store works on the other core meanwhile). At most one: a flush waits
    // for the previous one before it writes, so an entity's later write never overtakes an
    // earlier one, and what a flush makes durable (acks, Kafka offsets, progress) is told
    // only once its write completed.
    let mut inflight: Option<InFlight> = None;
    let mut pending = 0usize;
    let backlog = p.options.flush_max_events.saturating_mul(BACKLOG_FLUSHES);
    let mut last_flush = Instant::now();
    let mut open = true;
    while open {
        let deadline = tokio::time::Instant::from_std(last_flush + p.options.flush_interval);
        let mut batch = Vec::new();
        let mut revoked = false;
        let mut assigned = None;
        let mut acked = None;
        while open && !revoked && assigned.is_none() && acked.is_none() {
            // A flush is due at `flush_max_events` events or at the deadline. While the
            // previous write is in flight the due flush cannot start, so records keep being
            // received (group commit) and are applied once it completed: under load flushes
            // grow and coalesce repeated writes of busy entities, up to `backlog` events,
            // where the loop stops reading and applies (the feed fills and the input
            // pauses). Applying in slices while the write is in flight was measured slower
            // (0.6-0.9x the events/s): more, smaller flushes rewrite busy entities more often.
            let count = pending + batch.len();
            let due =
                count >= p.options.flush_max_events || tokio::time::Instant::now() >= deadline;
            if (due && inflight.is_none()) || count >= backlog {
                break;
            }
            // Once due, only the write completing (or the input) can end the wait.
            let wait_until = if due { far_future() } else { deadline };
            let mut written = None;
            let waiting = Instant::now();
            tokio::select! {
                biased;
                () = &mut stop => open = false,
                result = wait_written(&mut inflight) => written = Some(result),
                next = tokio::time::timeout_at(wait_until, feed.recv()) => match next {
                    Ok(Some(Ok(Feed::Records(chunk)))) => {
                        p.streams.arrived(&chunk);
                        batch.extend(chunk);
                    }
                    Ok(Some(Ok(Feed::CaughtUp(streams)))) => p.streams.caught_up(&streams),
                    Ok(Some(Ok(Feed::Revoked))) => revoked = true,
                    Ok(Some(Ok(Feed::Assigned { partitions, partition_count }))) => {
                        assigned = Some((partitions, partition_count));
                    }
                    Ok(Some(Ok(Feed::Acked(chunk, ack)))) => acked = Some((chunk, ack)),
                    Ok(Some(Err(e))) => return Err(PipelineError::Read(e)),
                    Ok(None) => open = false,
                    Err(_) => {} // the deadline passed: the flush is due
                },
            }
            let waited = waiting.elapsed();
            let time = &mut p.summary.loop_time;
            if due {
                time.waiting_for_store += waited;
            } else {
                time.waiting_for_input += waited;
            }
            if let Some(result) = written {
                let done = inflight.take().map(|f| f.done);
                p.durable(result, done, &mut on_durable, &feed, started, progress)?;
            }
        }
        pending += batch.len();
        p.apply(batch).await?;
        if let Some((partitions, partition_count)) = assigned {
            // Taking streams over reads the store: what is in flight lands first.
            p.settle(&mut inflight, &mut on_durable, &feed, started, progress)
                .await?;
            let streams = p.streams.assigned(&partitions, partition_count);
            p.take_over(&streams).await?;
        }
        if let Some((chunk, ack)) = acked {
            // Applied on their own, so their outcome is told apart from other records'.
            let before = AckOutcome::totals(&p.summary);
            pending += chunk.len();
            p.apply(chunk).await?;
            acks.push((ack, AckOutcome::totals(&p.summary).since(before)));
        }
        if revoked
            || !open
            || pending >= p.options.flush_max_events
            || Instant::now() >= deadline.into_std()
        {
            let preparing = Instant::now();
            let mut job = p.prepare_flush()?;
            p.summary.loop_time.preparing_flushes += preparing.elapsed();
            p.settle(&mut inflight, &mut on_durable, &feed, started, progress)
                .await?;
            let done = Done {
                acks: std::mem::take(&mut acks),
                offsets: std::mem::take(&mut job.offsets),
                started: Instant::now(),
                rows: job.rows,
                entities: job.entities,
            };
            inflight = Some(InFlight {
                task: tokio::spawn(job.write(p.store.clone())),
                done,
            });
            if revoked || !open {
                // Revoked: forget only once everything held is durable. End: return then.
                p.settle(&mut inflight, &mut on_durable, &feed, started, progress)
                    .await?;
            }
            if revoked {
                p.forget()?;
            }
            pending = 0;
            last_flush = Instant::now();
        }
    }
    p.summary.complete = true;
    p.summary.elapsed = started.elapsed();
    Ok(p.summary)
}

/// How many times `flush_max_events` the loop receives while a flush's write is in flight
/// before it stops reading and applies them (then waits for the write). With the default
/// 1,000: at most 100k records held (~20 MB of NDJSON). Measured on a 1M-event replay into
/// Redis: 50 -> 233k events/s (303k entity writes), 100 -> 264k (250k), 200 -> 282k (198k):
/// each doubling writes busy entities less often, and holds twice the records.
const BACKLOG_FLUSHES: usize = 100;

/// A deadline that never comes (an hour is beyond any flush interval in use).
fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(3600)
}

/// A flush's write in flight, and what to do once it is durable.
struct InFlight {
    task: tokio::task::JoinHandle<Result<(), PipelineError>>,
    done: Done,
}

/// What a flush makes true once its write completed.
struct Done {
    acks: Vec<(Ack, AckOutcome)>,
    offsets: Vec<(i32, i64)>,
    started: Instant,
    rows: u64,
    entities: u64,
}

/// Completes when the write in flight does (never, when there is none).
async fn wait_written(inflight: &mut Option<InFlight>) -> Result<(), PipelineError> {
    match inflight {
        Some(f) => joined((&mut f.task).await),
        None => std::future::pending().await,
    }
}

fn joined(
    result: Result<Result<(), PipelineError>, tokio::task::JoinError>,
) -> Result<(), PipelineError> {
    result.unwrap_or_else(|e| {
        Err(PipelineError::Store(StoreError::Unavailable(format!(
            "the flush's write task failed: {e}"
        ))))
    })
}

/// First and longest pause between attempts of a store call that failed for the store's
/// health.
const STORE_RETRY_MIN: Duration = Duration::from_millis(100);
const STORE_RETRY_MAX: Duration = Duration::from_secs(5);

/// Runs a store call until it succeeds, while it fails because the store is unreachable,
/// slow or at its in-flight bound: ingest waits out a store outage (logging each failure,
/// with a back-off of 100 ms doubling to 5 s) instead of ending. Meanwhile nothing new is
/// flushed, the bounded feed fills and the input pauses (backpressure); `/health` turns
/// unhealthy once no flush has completed for a while. Other errors end the run.
pub(super) async fn retrying<T, F, Fut>(what: &'static str, mut call: F) -> Result<T, PipelineError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut pause = STORE_RETRY_MIN;
    loop {
        match call().await {
            Ok(value) => return Ok(value),
            Err(
                error @ (StoreError::Timeout(_)
                | StoreError::Unavailable(_)
                | StoreError::Overloaded(_)),
            ) => {
                tracing::warn!(%error, what, retry_in_ms = pause.as_millis() as u64, "store call failed; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(STORE_RETRY_MAX);
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// One flush's store calls, built from the engine: rows, state and index changes per
/// chunk of entities, then the watermarks.
struct FlushJob {
    calls: Vec<(Vec<RowWrite>, Vec<StateWrite>, MetaChanges)>,
    /// `(partition, next_offset)` of the Kafka records this flush makes durable.
    offsets: Vec<(i32, i64)>,
    publication: Publication,
    rows: u64,
    entities: u64,
}

impl FlushJob {
    /// Writes the calls in order (each waits for the previous), then publishes the
    /// watermark.
    async fn write(self, store: Arc<OnlineStore>) -> Result<(), PipelineError> {
        for (rows, states, meta) in &self.calls {
            // Idempotent (the same fields set to the same bytes): safe to repeat until the
            // store takes it. Nothing later is written before it is.
            retrying("write", || store.write_with_meta(rows, states, meta)).await?;
        }
        super::watermark::publish(&store, &self.publication).await;
        Ok(())
    }
}

impl Pipeline {
    /// Waits for the write in flight, if any, and tells what it made durable.
    async fn settle(
        &mut self,
        inflight: &mut Option<InFlight>,
        on_durable: &mut Option<OnDurable>,
        feed: &mpsc::Receiver<std::io::Result<Feed>>,
        started: Instant,
        progress: &mut dyn FnMut(&IngestSummary),
    ) -> Result<(), PipelineError> {
        let Some(f) = inflight.take() else {
            return Ok(());
        };
        let waiting = Instant::now();
        let result = joined(f.task.await);
        self.summary.loop_time.waiting_for_store += waiting.elapsed();
        self.durable(result, Some(f.done), on_durable, feed, started, progress)
    }

    /// After a flush's write completed: answers its acknowledgements, reports its Kafka
    /// offsets and the summary.
    fn durable(
        &mut self,
        result: Result<(), PipelineError>,
        done: Option<Done>,
        on_durable: &mut Option<OnDurable>,
        feed: &mpsc::Receiver<std::io::Result<Feed>>,
        started: Instant,
        progress: &mut dyn FnMut(&IngestSummary),
    ) -> Result<(), PipelineError> {
        result?;
        let Some(done) = done else { return Ok(()) };
        self.summary.last_flush = done.started.elapsed();
        self.summary.rows_written += done.rows;
        self.summary.entities_written += done.entities;
        self.summary.flushes += 1;
        for (ack, outcome) in done.acks {
            ack.send(outcome);
        }
        if let Some(report) = on_durable.as_mut() {
            report(&done.offsets);
        }
        self.summary.elapsed = started.elapsed();
        self.summary.watermark_ms = self.streams.watermark().map(Timestamp::millis);
        self.summary.stream_watermarks = self.streams.latest_ms();
        self.summary.queued = feed.len();
        progress(&self.summary);
        Ok(())
    }

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
        let longest = map.config.specs.iter().map(|s| s.window).max();
        let meta_ttl = META_TTL.max(longest.unwrap_or_default() + INDEX_SLACK);
        let sink = DeadLetterSink::open(&options.dead_letter).map_err(|error| {
            PipelineError::DeadLetter {
                sink: options.dead_letter.to_string(),
                error,
            }
        })?;
        let streams = StreamProgress::new(
            &source.name,
            options.kafka_topic.as_deref(),
            options.stream_id,
        );
        let summary = IngestSummary {
            source: source.name.clone(),
            stream_id: options.stream_id,
            dead_letter_path: options.dead_letter.to_string(),
            ..IngestSummary::default()
        };
        Ok(Self {
            decoder: Decoder::new(&registry, source),
            field: state_field(&source.name),
            field_names: source
                .fields
                .iter()
                .map(|f| f.name.as_str().into())
                .collect(),
            registry,
            store,
            options,
            map,
            engine,
            known: FastMap::default(),
            sink,
            streams,
            indexed: FastMap::default(),
            stale_rows: Vec::new(),
            unindex: Vec::new(),
            meta_ttl,
            summary,
            flush_workers: std::thread::available_parallelism()
                .map_or(1, |n| n.get().min(MAX_FLUSH_WORKERS)),
        })
    }

    /// Drops all in-memory entity state (after a flush): partitions may have moved to another
    /// process, so what this one holds could be stale; entities reload on next touch.
    fn forget(&mut self) -> Result<(), PipelineError> {
        let mut engine = WindowEngine::new(self.map.config.clone())?;
        engine.advance(Timestamp::now());
        self.engine = engine;
        self.known.clear();
        self.indexed.clear();
        self.stale_rows.clear();
        self.streams.revoked();
        Ok(())
    }

    /// Takes over streams this process now owns (the file at start; the partitions of a
    /// Kafka assignment): reads their largest event times, and loads every entity of their
    /// pending-expiry index not held yet, so those windows expire on time. An entry whose
    /// entity's latest position is in another stream (or that has no state left) is removed,
    /// and that entity is left alone: it may belong to another process.
    async fn take_over(&mut self, streams: &[u64]) -> Result<(), PipelineError> {
        self.streams.read_latest(&self.store, streams).await?;
        let source = self.registry.sources[self.options.source].name.clone();
        for &stream in streams {
            let name = timers_name(&source, stream);
            let entries = retrying("index read", || self.store.get_meta(&name)).await?;
            let ids: Vec<EntityId> = entries
                .into_iter()
                .filter_map(|(member, _)| EntityId::new(member).ok())
                .filter(|id| !self.known.contains_key(id))
                .collect();
            tracing::debug!(
                source,
                stream,
                entities = ids.len(),
                "taking over pending expiries"
            );
            self.load(&ids, Some(stream)).await?;
        }
        Ok(())
    }

    /// This flush's changes to the pending-expiry index for one written entity: its entry
    /// set in the stream of its latest position (before the rows: an entity with pending
    /// expiries is always indexed), its old entry removed (after the rows).
    fn index_change(&mut self, id: &EntityId, meta: &mut MetaChanges) {
        let source = &self.registry.sources[self.options.source].name;
        let stream = self
            .known
            .get(id)
            .and_then(|p| p.entries().first())
            .map(|&(s, _)| s);
        let due = self.engine.next_change_of(id).map(Timestamp::millis);
        let new = stream.zip(due);
        let old = self.indexed.get(id).copied();
        if let Some((s, d)) = new {
            if old == Some((s, Some(d))) {
                return; // the stored entry is already right
            }
            meta.before.push(MetaChange {
                name: timers_name(source, s),
                member: id.as_str().to_owned(),
                bytes: Some(d.to_string().into_bytes()),
            });
            self.indexed.insert(id.clone(), (s, Some(d)));
        } else {
            self.indexed.remove(id);
        }
        if let Some((o, _)) = old.filter(|&(o, _)| new.map(|n| n.0) != Some(o)) {
            meta.after.push(MetaChange {
                name: timers_name(source, o),
                member: id.as_str().to_owned(),
                bytes: None,
            });
        }
    }

    /// The flush's changes not tied to one written entity: streams' largest event times,
    /// and index entries found with nothing pending.
    fn stream_changes(&mut self) -> Vec<MetaChange> {
        let source = &self.registry.sources[self.options.source].name;
        let mut out = self.streams.changes();
        for (stream, id) in std::mem::take(&mut self.unindex) {
            out.push(MetaChange {
                name: timers_name(source, stream),
                member: id.as_str().to_owned(),
                bytes: None,
            });
        }
        out
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
                sink: self.options.dead_letter.to_string(),
                error,
            })
    }

    /// Decodes and applies a batch of records (not yet durable: see [`Pipeline::flush`]).
    async fn apply(&mut self, batch: Vec<Record>) -> Result<(), PipelineError> {
        let applying = Instant::now();
        let loading_before = self.summary.loop_time.loading_state;
        self.summary.events_read += batch.len() as u64;
        let mut events = Vec::with_capacity(batch.len());
        for record in batch {
            self.streams.handled(record.partition, record.offset);
            match self.decoder.decode(&record.payload, None) {
                Ok(event) => events.push((record, event)),
                Err(rejection) => {
                    self.dead_letter(&rejection, record.origin(), &record.payload)?;
                }
            }
        }
        let mut unseen: Vec<EntityId> = Vec::new();
        let mut seen_now = FastSet::default();
        let mut streams = Vec::new();
        for (r, e) in &events {
            if !self.known.contains_key(&e.entity) && seen_now.insert(e.entity.clone()) {
                unseen.push(e.entity.clone());
            }
            if !self.streams.is_read(r.stream) && !streams.contains(&r.stream) {
                streams.push(r.stream);
            }
        }
        self.streams.read_latest(&self.store, &streams).await?;
        self.load(&unseen, None).await?;
        let now = Timestamp::now();
        for (record, event) in events {
            let Some(positions) = self.known.get_mut(&event.entity) else {
                continue; // unreachable: `load` registered every unseen entity
            };
            let (stream, line) = (record.stream, record.offset);
            if positions.applied(stream, line) {
                self.summary.already_applied += 1;
                continue;
            }
            let event = named_event(&self.field_names, event);
            let latest = self.streams.latest(stream);
            match self.engine.ingest_in_stream(&event, now, latest) {
                Ok(()) => {
                    positions.record(stream, line);
                    self.streams.applied(stream, event.time, now);
                    self.summary.applied += 1;
                }
                Err(rejected) => {
                    let rejection = to_rejection(&rejected);
                    self.dead_letter(&rejection, record.origin(), &record.payload)?;
                }
            }
        }
        let time = &mut self.summary.loop_time;
        let loading = time.loading_state.saturating_sub(loading_before);
        time.applying += applying.elapsed().saturating_sub(loading);
        Ok(())
    }

    /// Reads the stored state of entities seen for the first time this run, restores their
    /// windows and remembers their positions; entities whose stored rows no longer show
    /// their windows (one moved since they were written) are rewritten by the next flush.
    /// With `owner` (taking over a stream's pending expiries) an entity whose latest
    /// position is not in that stream, or that has no state, is not loaded: its index entry
    /// there is removed.
    async fn load(&mut self, ids: &[EntityId], owner: Option<u64>) -> Result<(), PipelineError> {
        if ids.is_empty() {
            return Ok(());
        }
        let loading = Instant::now();
        let entity = self.registry.sources[self.options.source].entity;
        for chunk in ids.chunks(STORE_CHUNK) {
            let names: Vec<&str> = chunk.iter().map(EntityId::as_str).collect();
            let store = &self.store;
            let field = &self.field;
            let stored = retrying("state read", || {
                store.read_raw_fields(entity, &names, field)
            })
            .await?;
            for (id, bytes) in chunk.iter().zip(stored) {
                let corrupt = |error: String| PipelineError::CorruptState {
                    entity: id.as_str().to_owned(),
                    error,
                };
                let stored = bytes
                    .as_deref()
                    .map(state::decode)
                    .transpose()
                    .map_err(|e: StateError| corrupt(e.to_string()))?;
                let front = stored
                    .as_ref()
                    .and_then(|s| s.positions.entries().first())
                    .map(|&(s, _)| s);
                let has_tiles = stored.as_ref().is_some_and(|s| !s.snapshot.is_empty());
                if let Some(owner) = owner {
                    if front != Some(owner) || !has_tiles {
                        self.unindex.push((owner, id.clone()));
                        continue;
                    }
                }
                let Some(stored) = stored else {
                    self.known.insert(id.clone(), Positions::default());
                    continue;
                };
                if has_tiles {
                    let written_at = stored
                        .written_at_ms
                        .and_then(|ms| Timestamp::from_millis(ms as i64).ok());
                    let moved = self
                        .engine
                        .restore_entity_since(id.clone(), stored.snapshot, written_at)
                        .map_err(|e| corrupt(e.to_string()))?;
                    if moved {
                        self.stale_rows.push(id.clone());
                    }
                    if let Some(front) = front {
                        self.indexed.insert(id.clone(), (front, None));
                    }
                }
                self.summary.entities_loaded += 1;
                self.known.insert(id.clone(), stored.positions);
            }
        }
        self.summary.loop_time.loading_state += loading.elapsed();
        Ok(())
    }

    /// Moves the engine clock to now and builds the writes of every entity whose values
    /// changed (new events, or windows that moved) — rows and state in one command per
    /// entity —, and makes the dead letters durable (before any offset of theirs can be).
    fn prepare_flush(&mut self) -> Result<FlushJob, PipelineError> {
        let now = Timestamp::now();
        let mut ids = self.engine.advance(now);
        ids.extend(self.engine.take_dirty());
        ids.append(&mut self.stale_rows);
        let mut unique = FastSet::with_capacity_and_hasher(ids.len(), Default::default());
        ids.retain(|id| unique.insert(id.clone()));
        // Entities with nothing pending any more and no row to rewrite leave the index.
        for id in self.engine.take_emptied() {
            if !unique.contains(&id) {
                if let Some((stream, _)) = self.indexed.remove(&id) {
                    self.unindex.push((stream, id));
                }
            }
        }
        // What this flush makes durable and publishes once it is; drained input counts as
        // true as of now.
        let offsets = self.streams.take_handled();
        let publication = self.streams.publication(now, self.summary.applied);
        let event_ts = publication.watermark.unwrap_or(now).min(now);
        let entity = self.registry.sources[self.options.source].entity;
        let written_at = u64::try_from(now.millis()).unwrap_or(0);
        let mut rest = self.stream_changes();
        let calls = ids.len().div_ceil(STORE_CHUNK).max(1);
        let mut job = FlushJob {
            calls: Vec::with_capacity(calls),
            offsets,
            publication,
            rows: 0,
            entities: 0,
        };
        let stamp = Stamp {
            now,
            event_ts,
            written_at,
            entity,
        };
        let mut built = self.build_writes(&ids, &stamp).into_iter();
        for call in 0..calls {
            let chunk = ids
                .get(call * STORE_CHUNK..ids.len().min((call + 1) * STORE_CHUNK))
                .unwrap_or_default();
            let (rows, states) = built.next().unwrap_or_default();
            let mut meta = MetaChanges {
                ttl: self.meta_ttl,
                ..MetaChanges::default()
            };
            for id in chunk {
                self.index_change(id, &mut meta);
            }
            if call + 1 == calls {
                meta.after.append(&mut rest);
            }
            if rows.is_empty() && meta.is_empty() {
                continue;
            }
            job.rows += rows.len() as u64;
            job.entities += chunk.len() as u64;
            job.calls.push((rows, states, meta));
        }
        self.sink
            .flush()
            .map_err(|error| PipelineError::DeadLetter {
                sink: self.options.dead_letter.to_string(),
                error,
            })?;
        Ok(job)
    }

    /// The rows and state of `ids`, one `(rows, states)` per [`STORE_CHUNK`] of them. Only
    /// reads the engine, so a large flush (a backfill's, after group commit) is built on
    /// every core: it was a fifth of a 1M-event replay's loop, on one core while the other
    /// waited for Redis.
    fn build_writes(
        &self,
        ids: &[EntityId],
        stamp: &Stamp,
    ) -> Vec<(Vec<RowWrite>, Vec<StateWrite>)> {
        let chunks: Vec<&[EntityId]> = ids.chunks(STORE_CHUNK).collect();
        let workers = if ids.len() >= PARALLEL_FLUSH_MIN {
            self.flush_workers
        } else {
            1
        };
        if workers <= 1 || chunks.len() < 2 {
            return chunks.iter().map(|c| self.build_chunk(c, stamp)).collect();
        }
        let per_worker = chunks.len().div_ceil(workers);
        std::thread::scope(|scope| {
            let mut parts = chunks.chunks(per_worker);
            let own = parts.next().unwrap_or_default();
            let others: Vec<_> = parts
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .map(|c| self.build_chunk(c, stamp))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            let mut built: Vec<_> = own.iter().map(|c| self.build_chunk(c, stamp)).collect();
            for worker in others {
                // A worker only reads and allocates; should it panic anyway, the panic
                // goes on here, as it would have on this thread.
                built.extend(
                    worker
                        .join()
                        .unwrap_or_else(|e| std::panic::resume_unwind(e)),
                );
            }
            built
        })
    }

    /// [`Pipeline::build_writes`] of one chunk.
    fn build_chunk(&self, chunk: &[EntityId], stamp: &Stamp) -> (Vec<RowWrite>, Vec<StateWrite>) {
        let mut rows = Vec::with_capacity(chunk.len() * self.map.groups.len());
        let mut states = Vec::with_capacity(chunk.len());
        // One snapshot buffer per chunk, reused across its entities (hot entities'
        // snapshots run to tens of KiB).
        let mut snapshot = Vec::new();
        for id in chunk {
            let values = self.engine.values(id, stamp.now);
            let positions = self.known.get(id);
            // The partition of the entity's latest event: serve ages the rows by it.
            let partition = positions
                .and_then(|p| p.entries().first())
                .and_then(|&(stream, _)| self.streams.partition_of(stream));
            for (g, (gid, _)) in self.map.groups.iter().enumerate() {
                rows.push(RowWrite {
                    id: id.clone(),
                    group: *gid,
                    row: GroupRow {
                        event_ts: stamp.event_ts,
                        computed_at: stamp.now,
                        values: self.map.row_values(&self.registry, g, &values),
                        partition,
                    },
                });
            }
            // Every entity in the engine came through `load`, so its positions are known.
            if let Some(positions) = positions {
                snapshot.clear();
                self.engine.snapshot_entity_into(id, &mut snapshot);
                states.push(StateWrite {
                    id: id.clone(),
                    entity: stamp.entity,
                    field: self.field.clone(),
                    bytes: state::encode(stamp.written_at, positions, &snapshot),
                });
            }
        }
        (rows, states)
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
