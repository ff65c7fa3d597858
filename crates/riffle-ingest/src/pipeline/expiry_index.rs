//! The pending-expiry index as this run knows it (see "Window expiry across restarts and
//! rebalances" in the [module docs](super)): per source and input stream, the meta hash
//! `timers:<source>:<stream>` maps each entity with a pending window change to its next due
//! time, in the stream of the entity's latest position.
//!
//! [`ExpiryIndex`] remembers the entry of every entity this run wrote or loaded, so a flush
//! changes only the entries that moved ([`ExpiryIndex::change`]: set before the rows,
//! removed after them), and removes the entries of entities left with nothing pending. On
//! a take-over it reads a stream's entries ([`ExpiryIndex::read`]) and decides which of
//! their entities the process loads ([`ExpiryIndex::loads_on_take_over`]).

use std::time::Duration;

use foldhash::HashMap as FastMap;
use riffle_core::EntityId;
use riffle_store::meta::{timers_name, META_TTL};
use riffle_store::{MetaChange, MetaChanges, OnlineStore};

use super::error::PipelineError;
use super::store_retry::retrying;

/// How long pending-expiry index and stream-progress keys outlive their last write, beyond
/// the longest window (after it every pending expiry is past).
const INDEX_SLACK: Duration = Duration::from_secs(24 * 3600);

/// See the module docs.
pub(super) struct ExpiryIndex {
    source: String,
    /// Per entity, its entry in the pending-expiry index as far as this run knows:
    /// `(stream, due ms)`, the due time unknown for entities loaded from the store.
    indexed: FastMap<EntityId, (u64, Option<i64>)>,
    /// Index entries `(stream, entity)` to remove at the next flush: nothing pending.
    unindex: Vec<(u64, EntityId)>,
    /// TTL of the index and stream-progress keys.
    ttl: Duration,
}

impl ExpiryIndex {
    /// The index of `source`, whose longest window is `longest_window`.
    pub(super) fn new(source: &str, longest_window: Option<Duration>) -> Self {
        Self {
            source: source.to_owned(),
            indexed: FastMap::default(),
            unindex: Vec::new(),
            ttl: META_TTL.max(longest_window.unwrap_or_default() + INDEX_SLACK),
        }
    }

    /// The TTL a flush gives the index and stream-progress keys it writes.
    pub(super) fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Reads the index of `stream` (one call): the entities with something pending there,
    /// except those `skip` names (already held).
    pub(super) async fn read(
        &self,
        store: &OnlineStore,
        stream: u64,
        skip: impl Fn(&EntityId) -> bool,
    ) -> Result<Vec<EntityId>, PipelineError> {
        let name = timers_name(&self.source, stream);
        let entries = retrying("index read", || store.get_meta(&name)).await?;
        let ids: Vec<EntityId> = entries
            .into_iter()
            .filter_map(|(member, _)| EntityId::new(member).ok())
            .filter(|id| !skip(id))
            .collect();
        tracing::debug!(
            source = self.source,
            stream,
            entities = ids.len(),
            "taking over pending expiries"
        );
        Ok(ids)
    }

    /// The take-over decision for an entity indexed in `owner`, a stream this process now
    /// owns, as its stored state shows it: loaded only if its latest position is in `owner`
    /// and it has windows. Otherwise its entry there is removed at the next flush, and the
    /// entity is left alone: it may belong to another process.
    pub(super) fn loads_on_take_over(
        &mut self,
        owner: u64,
        id: &EntityId,
        latest_stream: Option<u64>,
        has_tiles: bool,
    ) -> bool {
        if latest_stream != Some(owner) || !has_tiles {
            self.unindex.push((owner, id.clone()));
            return false;
        }
        true
    }

    /// An entity with windows was loaded from the store: its entry is in `stream`, that of
    /// its latest position, with a due time this run does not know.
    pub(super) fn loaded(&mut self, id: &EntityId, stream: u64) {
        self.indexed.insert(id.clone(), (stream, None));
    }

    /// An entity has nothing pending any more and no row to rewrite: its entry, if any, is
    /// removed at the next flush.
    pub(super) fn emptied(&mut self, id: EntityId) {
        if let Some((stream, _)) = self.indexed.remove(&id) {
            self.unindex.push((stream, id));
        }
    }

    /// This flush's changes to the index for one written entity, whose latest position is
    /// in `stream` and whose next window change is `due` (ms): its entry set in `stream`
    /// (before the rows: an entity with pending expiries is always indexed), its old entry
    /// removed (after the rows).
    pub(super) fn change(
        &mut self,
        id: &EntityId,
        stream: Option<u64>,
        due: Option<i64>,
        meta: &mut MetaChanges,
    ) {
        let new = stream.zip(due);
        let old = self.indexed.get(id).copied();
        if let Some((s, d)) = new {
            if old == Some((s, Some(d))) {
                return; // the stored entry is already right
            }
            meta.before.push(MetaChange {
                name: timers_name(&self.source, s),
                member: id.as_str().to_owned(),
                bytes: Some(d.to_string().into_bytes()),
            });
            self.indexed.insert(id.clone(), (s, Some(d)));
        } else {
            self.indexed.remove(id);
        }
        if let Some((o, _)) = old.filter(|&(o, _)| new.map(|n| n.0) != Some(o)) {
            meta.after.push(MetaChange {
                name: timers_name(&self.source, o),
                member: id.as_str().to_owned(),
                bytes: None,
            });
        }
    }

    /// Adds to `out` the removal of every entry found with nothing pending since the last
    /// flush (written after the rows).
    pub(super) fn take_removals(&mut self, out: &mut Vec<MetaChange>) {
        for (stream, id) in std::mem::take(&mut self.unindex) {
            out.push(MetaChange {
                name: timers_name(&self.source, stream),
                member: id.as_str().to_owned(),
                bytes: None,
            });
        }
    }

    /// Forgets every entry (partitions were revoked: the entities held are dropped);
    /// removals already found are still written.
    pub(super) fn forget(&mut self) {
        self.indexed.clear();
    }
}
