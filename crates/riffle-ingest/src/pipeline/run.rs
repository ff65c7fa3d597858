//! The ingest loop: records in; decode, load unseen entities' state, apply what was not
//! applied before ([`super::apply`]), and every flush (also when nothing arrives) write each
//! changed entity's rows and state in one command ([`super::flush`]), then report the Kafka
//! offsets now durable. Group commit: while a flush's write is in flight the loop goes on
//! receiving, and the next flush carries everything received meanwhile. See the module
//! docs of [`super`] for why this is exactly-once in effect.

use std::sync::Arc;
use std::time::{Duration, Instant};

use riffle_core::{EntityId, Timestamp};
use riffle_registry::Registry;
use riffle_store::{OnlineStore, StoreError};
use tokio::sync::mpsc;

use super::apply::Applier;
use super::entities::Entities;
use super::error::PipelineError;
use super::expiry_index::ExpiryIndex;
use super::flush::{FlushBuilder, FlushJob};
use super::options::{Control, OnDurable, PipelineOptions};
use super::specs::SpecMap;
use super::streams::StreamProgress;
use super::summary::IngestSummary;
use crate::feed::ack::{Ack, AckOutcome};
use crate::feed::item::{Feed, Record};

/// One run of the pipeline over one input: the parts each step works on.
struct Pipeline {
    store: Arc<OnlineStore>,
    options: PipelineOptions,
    /// Decoding, applying, dead letters.
    applier: Applier,
    /// What the run holds in memory of its entities.
    entities: Entities,
    /// Per input stream: lateness, ownership, drained streams, watermarks, offsets.
    streams: StreamProgress,
    /// The pending-expiry index as far as this run knows.
    index: ExpiryIndex,
    flushes: FlushBuilder,
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
        let entities = Entities::new(map.config.clone(), source.entity, &source.name)?;
        let longest = map.config.specs.iter().map(|s| s.window).max();
        let index = ExpiryIndex::new(&source.name, longest);
        let applier = Applier::new(&registry, source, &options.dead_letter)?;
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
            store,
            options,
            applier,
            entities,
            streams,
            index,
            flushes: FlushBuilder::new(registry, map),
            summary,
        })
    }

    /// Decodes and applies a batch of records (durable once the next flush is).
    async fn apply(&mut self, batch: Vec<Record>) -> Result<(), PipelineError> {
        self.applier
            .apply(
                batch,
                &self.store,
                &mut self.entities,
                &mut self.streams,
                &mut self.index,
                &mut self.summary,
            )
            .await
    }

    /// Builds the next flush ([`FlushBuilder::prepare`]) and makes the dead letters durable
    /// (before any offset of theirs can be).
    fn prepare_flush(&mut self) -> Result<FlushJob, PipelineError> {
        let job = self.flushes.prepare(
            &mut self.entities,
            &mut self.index,
            &mut self.streams,
            self.summary.applied,
        );
        self.applier.flush_dead_letters()?;
        Ok(job)
    }

    /// Drops all in-memory entity state (after a flush): partitions may have moved to another
    /// process, so what this one holds could be stale; entities reload on next touch.
    fn forget(&mut self) -> Result<(), PipelineError> {
        self.entities.forget()?;
        self.index.forget();
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
        for &stream in streams {
            let entities = &self.entities;
            let ids: Vec<EntityId> = self
                .index
                .read(&self.store, stream, |id| entities.is_known(id))
                .await?;
            self.entities
                .load(
                    &self.store,
                    &ids,
                    Some(stream),
                    &mut self.index,
                    &mut self.summary,
                )
                .await?;
        }
        Ok(())
    }
}
