//! What callers read and write through [`OnlineStore`](crate::OnlineStore), typed: a read
//! of some groups of one entity and what the store holds for each ([`RowRead`]), a group's
//! row to write, and pipeline state to write beside an entity's rows.

use riffle_core::EntityId;
use riffle_registry::GroupId;

use crate::codec::{DecodeError, GroupRow};

/// Read the rows of some groups of one entity.
#[derive(Debug, Clone)]
pub struct EntityRead<'a> {
    /// Index of the entity in the registry.
    pub entity: usize,
    pub id: &'a str,
    /// Groups to read (all of this entity).
    pub groups: &'a [GroupId],
}

/// What the store holds for one (entity, group).
#[derive(Debug, Clone, PartialEq)]
pub enum RowRead {
    Found(GroupRow),
    /// No row, or a row older than the group's TTL.
    Missing,
    /// A row that does not decode as the group's declared schema.
    Corrupt(DecodeError),
    /// The entity's node could not answer (Redis Cluster: that node down, slow or skipped
    /// by its breaker) while other entities of the batch were answered.
    Unavailable,
}

/// One group's row to write for one entity.
#[derive(Debug, Clone, PartialEq)]
pub struct RowWrite {
    pub id: EntityId,
    pub group: GroupId,
    pub row: GroupRow,
}

/// Pipeline state to write beside an entity's rows: one reserved field (starting with
/// [`layout::STATE_PREFIX`](crate::layout::STATE_PREFIX)) of the entity's own key, written
/// in the same command as the entity's rows (see
/// [`OnlineStore::write_with_state`](crate::OnlineStore::write_with_state)).
#[derive(Debug, Clone, PartialEq)]
pub struct StateWrite {
    pub id: EntityId,
    /// Index of the entity in the registry.
    pub entity: usize,
    /// The field, e.g. `~transactions` ([`layout::state_field`](crate::layout::state_field)).
    pub field: String,
    pub bytes: Vec<u8>,
}
