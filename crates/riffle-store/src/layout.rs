//! The key layout: a documented contract (`docs/storage-layout.md`) so that an external
//! writer (a Flink or Spark job) can write rows Riffle serves.
//!
//! - One Redis hash per entity: `<project>:{<entity>:<id>}`. The braces are a Redis Cluster hash tag: every key of one
//!   entity lands in the same slot, so one entity's groups are read in one call on any node.
//! - One hash field per feature group and schema version: `<group>@<version>`.
//! - The field's value is one encoded row ([`crate::codec`]).
//! - Fields starting with `~` ([`STATE_PREFIX`]) are pipeline state, never rows: `~<source>`
//!   holds `riffle ingest`'s per-entity window state and source positions, written in the
//!   same command as the entity's rows.
//! - The hash's TTL is the longest TTL among the entity's groups plus jitter, refreshed on
//!   every write; each group's own TTL is enforced at read time from the row's computed-at.

use riffle_registry::FeatureGroup;

/// First character of every pipeline-state field; no group name can start with it.
pub const STATE_PREFIX: &str = "~";

/// The hash field holding a source's pipeline state for an entity: `~<source>`.
pub fn state_field(source: &str) -> String {
    format!("{STATE_PREFIX}{source}")
}

/// The store key of one entity.
pub fn entity_key(project: &str, entity: &str, id: &str) -> String {
    let mut key = String::with_capacity(project.len() + entity.len() + id.len() + 4);
    key.push_str(project);
    key.push_str(":{");
    key.push_str(entity);
    key.push(':');
    key.push_str(id);
    key.push('}');
    key
}

/// The hash field of one group's row.
pub fn group_field(group: &FeatureGroup) -> String {
    format!("{}@{}", group.name, group.version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_hash_tagged_per_entity() {
        assert_eq!(entity_key("fraud", "user", "u42"), "fraud:{user:u42}");
    }
}
