//! The entities a run holds in memory: their windows (the [`WindowEngine`]), the position
//! each has applied per stream, and those whose stored rows no longer show their windows.
//! An entity is loaded from the store the first time the run meets it (or when a take-over
//! finds it in the pending-expiry index), and all are forgotten when partitions are revoked.

use std::sync::Arc;
use std::time::Instant;

use foldhash::{HashMap as FastMap, HashSet as FastSet};
use riffle_core::{EntityId, Timestamp};
use riffle_store::layout::state_field;
use riffle_store::OnlineStore;
use riffle_window::{EngineConfig, Rejected, WindowEngine};

use super::error::PipelineError;
use super::expiry_index::ExpiryIndex;
use super::specs::named_event;
use super::state::{self, Positions, StateError};
use super::store_retry::retrying;
use super::summary::IngestSummary;
use crate::decode;

/// Entities per store call (state reads and row+state writes).
pub(super) const STORE_CHUNK: usize = 1000;

/// See the module docs.
pub(super) struct Entities {
    engine: WindowEngine,
    /// Positions of every entity seen this run (loaded from the store on first sight).
    known: FastMap<EntityId, Positions>,
    /// Entities restored whose stored rows no longer show their windows (a window moved
    /// while no process held them): rewritten by the next flush.
    stale_rows: Vec<EntityId>,
    /// The engine's configuration, for a fresh engine after a revocation.
    config: EngineConfig,
    /// The source's entity kind (an index into `registry.entities`).
    kind: usize,
    /// The store field of the source's state (`~<source>`).
    field: String,
}

/// What became of one event.
pub(super) enum Outcome {
    /// The window engine took it; `time` is its event time.
    Applied { time: Timestamp },
    /// Its entity's state holds its position: an earlier run applied it.
    AlreadyApplied,
    /// The window engine refused it.
    Rejected(Rejected),
    /// Its entity was never loaded (cannot happen: every entity is loaded on first sight).
    NotLoaded,
}

impl Entities {
    /// No entity held yet, windows by `config`, for source `source` of entity kind `kind`.
    pub(super) fn new(
        config: EngineConfig,
        kind: usize,
        source: &str,
    ) -> Result<Self, PipelineError> {
        let mut engine = WindowEngine::new(config.clone())?;
        engine.advance(Timestamp::now());
        Ok(Self {
            engine,
            known: FastMap::default(),
            stale_rows: Vec::new(),
            config,
            kind,
            field: state_field(source),
        })
    }

    /// Whether the entity was seen this run (its state is loaded).
    pub(super) fn is_known(&self, id: &EntityId) -> bool {
        self.known.contains_key(id)
    }

    /// The positions `id` has applied, most recently used first.
    pub(super) fn positions(&self, id: &EntityId) -> Option<&Positions> {
        self.known.get(id)
    }

    /// The stream of `id`'s latest position.
    pub(super) fn latest_stream(&self, id: &EntityId) -> Option<u64> {
        self.known
            .get(id)
            .and_then(|p| p.entries().first())
            .map(|&(s, _)| s)
    }

    pub(super) fn engine(&self) -> &WindowEngine {
        &self.engine
    }

    /// The source's entity kind (an index into `registry.entities`).
    pub(super) fn kind(&self) -> usize {
        self.kind
    }

    /// The store field of the source's state.
    pub(super) fn field(&self) -> &str {
        &self.field
    }

    /// Applies `event`, read at `(stream, offset)`, unless its entity applied that position
    /// already; `names` are the source's field names, `latest` gives the largest event time
    /// applied from `stream` (the event's lateness is judged against it; asked only when
    /// the event is new to its entity).
    pub(super) fn apply(
        &mut self,
        stream: u64,
        offset: u64,
        event: decode::Event,
        names: &[Arc<str>],
        now: Timestamp,
        latest: impl FnOnce() -> Option<Timestamp>,
    ) -> Outcome {
        let Some(positions) = self.known.get_mut(&event.entity) else {
            return Outcome::NotLoaded;
        };
        if positions.applied(stream, offset) {
            return Outcome::AlreadyApplied;
        }
        let event = named_event(names, event);
        match self.engine.ingest_in_stream(&event, now, latest()) {
            Ok(()) => {
                positions.record(stream, offset);
                Outcome::Applied { time: event.time }
            }
            Err(rejected) => Outcome::Rejected(rejected),
        }
    }

    /// Reads the stored state of entities seen for the first time this run, restores their
    /// windows and remembers their positions; entities whose stored rows no longer show
    /// their windows (one moved since they were written) are rewritten by the next flush.
    /// With `owner` (taking over a stream's pending expiries) the index decides which are
    /// loaded ([`ExpiryIndex::loads_on_take_over`]).
    pub(super) async fn load(
        &mut self,
        store: &OnlineStore,
        ids: &[EntityId],
        owner: Option<u64>,
        index: &mut ExpiryIndex,
        summary: &mut IngestSummary,
    ) -> Result<(), PipelineError> {
        if ids.is_empty() {
            return Ok(());
        }
        let loading = Instant::now();
        for chunk in ids.chunks(STORE_CHUNK) {
            let names: Vec<&str> = chunk.iter().map(EntityId::as_str).collect();
            let (kind, field) = (self.kind, &self.field);
            let stored =
                retrying("state read", || store.read_raw_fields(kind, &names, field)).await?;
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
                    if !index.loads_on_take_over(owner, id, front, has_tiles) {
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
                        index.loaded(id, front);
                    }
                }
                summary.entities_loaded += 1;
                self.known.insert(id.clone(), stored.positions);
            }
        }
        summary.loop_time.loading_state += loading.elapsed();
        Ok(())
    }

    /// Moves the engine clock to `now` and takes every entity whose values changed (new
    /// events, or windows that moved) or whose stored rows are stale, each once. Entities
    /// left with nothing pending and no row to rewrite leave the index.
    pub(super) fn take_changed(
        &mut self,
        now: Timestamp,
        index: &mut ExpiryIndex,
    ) -> Vec<EntityId> {
        let mut ids = self.engine.advance(now);
        ids.extend(self.engine.take_dirty());
        ids.append(&mut self.stale_rows);
        let mut unique = FastSet::with_capacity_and_hasher(ids.len(), Default::default());
        ids.retain(|id| unique.insert(id.clone()));
        for id in self.engine.take_emptied() {
            if !unique.contains(&id) {
                index.emptied(id);
            }
        }
        ids
    }

    /// Drops all in-memory entity state (after a flush): partitions may have moved to another
    /// process, so what this one holds could be stale; entities reload on next touch.
    pub(super) fn forget(&mut self) -> Result<(), PipelineError> {
        let mut engine = WindowEngine::new(self.config.clone())?;
        engine.advance(Timestamp::now());
        self.engine = engine;
        self.known.clear();
        self.stale_rows.clear();
        Ok(())
    }
}
