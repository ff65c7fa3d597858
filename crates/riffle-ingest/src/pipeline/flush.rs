//! Building and writing a flush. [`FlushBuilder::prepare`] moves the engine clock to now and
//! builds, for every entity whose values changed (new events, or windows that moved), its
//! rows (one per group, values read *now*; `event_ts` the largest event time applied,
//! capped at now; `computed_at` now) and its state, in one command per entity, with the
//! pending-expiry index changes of the same entities in the same store call and the
//! streams' largest event times after the last one. [`FlushJob::write`] writes those calls
//! in order, then publishes the watermarks ([`super::watermark`]).

use std::sync::Arc;

use riffle_core::{EntityId, Timestamp};
use riffle_registry::Registry;
use riffle_store::{GroupRow, MetaChanges, OnlineStore, RowWrite, StateWrite};

use super::entities::{Entities, STORE_CHUNK};
use super::error::PipelineError;
use super::expiry_index::ExpiryIndex;
use super::specs::SpecMap;
use super::state;
use super::store_retry::retrying;
use super::streams::StreamProgress;
use super::watermark::{self, Publication};

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

/// Builds the flushes of one source: how the engine's values become each group's row, and
/// the threads a large flush is built on.
pub(super) struct FlushBuilder {
    registry: Arc<Registry>,
    map: SpecMap,
    /// Threads a large flush's writes are built on: the cores available, at most
    /// [`MAX_FLUSH_WORKERS`] (asked once: the answer reads cgroup files).
    workers: usize,
}

/// One flush's store calls, built from the engine: rows, state and index changes per
/// chunk of entities, then the watermarks.
pub(super) struct FlushJob {
    calls: Vec<(Vec<RowWrite>, Vec<StateWrite>, MetaChanges)>,
    /// `(partition, next_offset)` of the Kafka records this flush makes durable.
    pub(super) offsets: Vec<(i32, i64)>,
    publication: Publication,
    pub(super) rows: u64,
    pub(super) entities: u64,
}

impl FlushBuilder {
    pub(super) fn new(registry: Arc<Registry>, map: SpecMap) -> Self {
        Self {
            registry,
            map,
            workers: std::thread::available_parallelism()
                .map_or(1, |n| n.get().min(MAX_FLUSH_WORKERS)),
        }
    }

    /// Moves the engine clock to now and builds the writes of every entity whose values
    /// changed (new events, or windows that moved) — rows and state in one command per
    /// entity —, with what the flush makes durable (the Kafka offsets handled since the last
    /// one) and publishes once it is; `applied` is the run's total of applied events.
    pub(super) fn prepare(
        &self,
        entities: &mut Entities,
        index: &mut ExpiryIndex,
        streams: &mut StreamProgress,
        applied: u64,
    ) -> FlushJob {
        let now = Timestamp::now();
        let ids = entities.take_changed(now, index);
        // What this flush makes durable and publishes once it is; drained input counts as
        // true as of now.
        let offsets = streams.take_handled();
        let publication = streams.publication(now, applied);
        let event_ts = publication.watermark.unwrap_or(now).min(now);
        let written_at = u64::try_from(now.millis()).unwrap_or(0);
        // The flush's changes not tied to one written entity: streams' largest event
        // times, and index entries found with nothing pending.
        let mut rest = streams.changes();
        index.take_removals(&mut rest);
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
            entity: entities.kind(),
        };
        let mut built = self
            .build_writes(entities, streams, &ids, &stamp)
            .into_iter();
        for call in 0..calls {
            let chunk = ids
                .get(call * STORE_CHUNK..ids.len().min((call + 1) * STORE_CHUNK))
                .unwrap_or_default();
            let (rows, states) = built.next().unwrap_or_default();
            let mut meta = MetaChanges {
                ttl: index.ttl(),
                ..MetaChanges::default()
            };
            for id in chunk {
                let due = entities.engine().next_change_of(id).map(Timestamp::millis);
                index.change(id, entities.latest_stream(id), due, &mut meta);
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
        job
    }

    /// The rows and state of `ids`, one `(rows, states)` per [`STORE_CHUNK`] of them. Only
    /// reads the engine, so a large flush (a backfill's, after group commit) is built on
    /// every core: it was a fifth of a 1M-event replay's loop, on one core while the other
    /// waited for Redis.
    fn build_writes(
        &self,
        entities: &Entities,
        streams: &StreamProgress,
        ids: &[EntityId],
        stamp: &Stamp,
    ) -> Vec<(Vec<RowWrite>, Vec<StateWrite>)> {
        let chunks: Vec<&[EntityId]> = ids.chunks(STORE_CHUNK).collect();
        let workers = if ids.len() >= PARALLEL_FLUSH_MIN {
            self.workers
        } else {
            1
        };
        let build = |c: &[EntityId]| self.build_chunk(entities, streams, c, stamp);
        if workers <= 1 || chunks.len() < 2 {
            return chunks.iter().map(|c| build(c)).collect();
        }
        let per_worker = chunks.len().div_ceil(workers);
        std::thread::scope(|scope| {
            let mut parts = chunks.chunks(per_worker);
            let own = parts.next().unwrap_or_default();
            let others: Vec<_> = parts
                .map(|part| scope.spawn(move || part.iter().map(|c| build(c)).collect::<Vec<_>>()))
                .collect();
            let mut built: Vec<_> = own.iter().map(|c| build(c)).collect();
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

    /// [`FlushBuilder::build_writes`] of one chunk.
    fn build_chunk(
        &self,
        entities: &Entities,
        streams: &StreamProgress,
        chunk: &[EntityId],
        stamp: &Stamp,
    ) -> (Vec<RowWrite>, Vec<StateWrite>) {
        let engine = entities.engine();
        let mut rows = Vec::with_capacity(chunk.len() * self.map.groups.len());
        let mut states = Vec::with_capacity(chunk.len());
        // One snapshot buffer per chunk, reused across its entities (hot entities'
        // snapshots run to tens of KiB).
        let mut snapshot = Vec::new();
        for id in chunk {
            let values = engine.values(id, stamp.now);
            let positions = entities.positions(id);
            // The partition of the entity's latest event: serve ages the rows by it.
            let partition = positions
                .and_then(|p| p.entries().first())
                .and_then(|&(stream, _)| streams.partition_of(stream));
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
                engine.snapshot_entity_into(id, &mut snapshot);
                states.push(StateWrite {
                    id: id.clone(),
                    entity: stamp.entity,
                    field: entities.field().to_owned(),
                    bytes: state::encode(stamp.written_at, positions, &snapshot),
                });
            }
        }
        (rows, states)
    }
}

impl FlushJob {
    /// Writes the calls in order (each waits for the previous), then publishes the
    /// watermark.
    pub(super) async fn write(self, store: Arc<OnlineStore>) -> Result<(), PipelineError> {
        for (rows, states, meta) in &self.calls {
            // Idempotent (the same fields set to the same bytes): safe to repeat until the
            // store takes it. Nothing later is written before it is.
            retrying("write", || store.write_with_meta(rows, states, meta)).await?;
        }
        watermark::publish(&store, &self.publication).await;
        Ok(())
    }
}
