//! Pipeline metadata beside the rows: the names of the reserved keys `<project>:~meta:<name>`
//! and of their fields, and how long they live (documented in `docs/storage-layout.md`).
//!
//! A meta key is a hash with one field per **publisher** (`<host>:<pid>` of an ingest
//! worker), per input stream or per Kafka partition, so several workers of one source
//! publish side by side and a reader gets them all in one call (`HGETALL`). The key's TTL
//! ([`META_TTL`]) is refreshed by every publish and only cleans up after all publishers are
//! gone. What the watermark records hold and how readers combine them is
//! [`crate::watermark`]'s.
//!
//! A writer changes meta keys in the same store call as rows with [`MetaChanges`] (see
//! [`OnlineStore::write_with_meta`](crate::OnlineStore::write_with_meta)).

use std::time::Duration;

/// Keys of pipeline metadata: `<project>:~meta:<name>`. The `~` keeps them apart from
/// entity keys (`<project>:{…}`).
pub fn meta_key(project: &str, name: &str) -> String {
    format!("{project}:~meta:{name}")
}

/// The meta name of a source's watermark records: `watermark:<source>`.
pub fn watermark_name(source: &str) -> String {
    format!("watermark:{source}")
}

/// The meta name of a source's per-partition watermarks: `partitions:<source>`, one field
/// per partition of its Kafka topic ([`partition_member`]).
pub fn partitions_name(source: &str) -> String {
    format!("partitions:{source}")
}

/// The field of one Kafka partition in [`partitions_name`]: `<topic>:<partition>` (a topic
/// name holds no `:`).
pub fn partition_member(topic: &str, partition: u32) -> String {
    format!("{topic}:{partition}")
}

/// The meta name of the pending-expiry index of one input stream of a source:
/// `timers:<source>:<stream>` (stream id as 16 hex digits). Field: an entity id; value: the
/// time (ms since epoch, decimal ASCII) of that entity's next window change without a new
/// event (a hint: never later than the real one). `riffle ingest` loads these entities when
/// it takes the stream over (start, Kafka assignment), so their windows expire on time.
pub fn timers_name(source: &str, stream: u64) -> String {
    format!("timers:{source}:{stream:016x}")
}

/// The meta name of a source's per-stream progress: `streams:<source>`. Field: a stream id
/// (16 hex digits); value: the largest event time applied from that stream (ms since epoch,
/// decimal ASCII), so a restarted run judges `allowed_lateness` as a clean run did.
pub fn streams_name(source: &str) -> String {
    format!("streams:{source}")
}

/// A stream id as it appears in meta names and fields: 16 hex digits.
pub fn stream_member(stream: u64) -> String {
    format!("{stream:016x}")
}

/// TTL of a meta key, refreshed by every publish: the last watermark stays readable this
/// long after ingest stopped (so serve can still age values from it).
pub const META_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// One change to a field (`member`) of a pipeline-metadata hash `<project>:~meta:<name>`,
/// made in the same store call as rows (see
/// [`OnlineStore::write_with_meta`](crate::OnlineStore::write_with_meta)).
#[derive(Debug, Clone, PartialEq)]
pub struct MetaChange {
    pub name: String,
    pub member: String,
    /// The new value; `None` removes the field.
    pub bytes: Option<Vec<u8>>,
}

/// Metadata changes around one batch of rows and states, and the TTL the written meta keys
/// get (refreshed on every write: no key without a TTL).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetaChanges {
    /// Applied before the rows: of the batch, the sets (e.g. index entries added).
    pub before: Vec<MetaChange>,
    /// Applied after the rows (sets first, then removals).
    pub after: Vec<MetaChange>,
    pub ttl: Duration,
}

impl MetaChanges {
    pub fn is_empty(&self) -> bool {
        self.before.is_empty() && self.after.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_keys() {
        assert_eq!(
            meta_key("fraud", &watermark_name("tx")),
            "fraud:~meta:watermark:tx"
        );
        assert_eq!(partitions_name("tx"), "partitions:tx");
        assert_eq!(partition_member("transactions", 3), "transactions:3");
    }
}
