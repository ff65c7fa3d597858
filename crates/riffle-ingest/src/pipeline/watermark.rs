//! Publishing the pipeline's event-time watermarks after every durable flush, so `riffle
//! serve` ages a stream group's values by how far the pipeline has processed (not by when an
//! entity last had an event) and `riffle lag` can tell how far behind it is. What the
//! records hold and how readers combine them: `riffle_store::watermark`.
//!
//! One store call per flush, after its rows: the worker's own record (field `<host>:<pid>`
//! of `<project>:~meta:watermark:<source>`) and, from Kafka, the mark of every partition it
//! owns (field `<topic>:<partition>` of `<project>:~meta:partitions:<source>`). What they
//! say is computed when the flush is prepared (`streams.rs`). Publishing is best
//! effort: a failure is logged and the next flush publishes again. The first publish of a
//! process also removes publisher records not republished for a day (finished runs).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use riffle_core::Timestamp;
use riffle_store::meta::{partition_member, partitions_name, watermark_name, META_TTL};
use riffle_store::watermark::{PartitionMark, WatermarkRecord};
use riffle_store::{MetaChange, MetaChanges, OnlineStore, StoreError};

/// `<host>:<pid>` of this process, computed once.
pub fn publisher_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let host = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unknown".into());
        format!("{host}:{}", std::process::id())
    })
}

/// What one flush publishes once its rows are durable.
#[derive(Debug, Clone, PartialEq)]
pub struct Publication {
    pub source: String,
    /// The worker's watermark (nothing is published before an event was applied or the
    /// input was drained).
    pub watermark: Option<Timestamp>,
    /// Events applied by this run so far.
    pub applied: u64,
    /// The marks of the Kafka partitions this worker owns.
    pub partitions: Vec<PartitionMark>,
}

/// Publishes `publication`. Call it only once the rows it speaks of are durable.
pub async fn publish(store: &OnlineStore, publication: &Publication) {
    let now = Timestamp::now();
    let mut changes: Vec<MetaChange> = publication
        .partitions
        .iter()
        .map(|m| mark_change(&publication.source, m))
        .collect();
    let name = watermark_name(&publication.source);
    if let Some(watermark) = publication.watermark {
        let record = WatermarkRecord {
            watermark_ms: watermark.min(now).millis(),
            published_at_ms: now.millis(),
            events_applied_total: publication.applied,
            publisher: publisher_id().to_owned(),
        };
        changes.push(MetaChange {
            name: name.clone(),
            member: record.publisher.clone(),
            bytes: Some(record.encode()),
        });
    }
    if changes.is_empty() {
        return;
    }
    let meta = MetaChanges {
        before: Vec::new(),
        after: changes,
        ttl: META_TTL,
    };
    let source = &publication.source;
    if let Err(e) = store.write_with_meta(&[], &[], &meta).await {
        tracing::warn!(source, error = %e, "could not publish the watermark; retrying next flush");
        return;
    }
    static PRUNED: AtomicBool = AtomicBool::new(false);
    if !PRUNED.swap(true, Ordering::Relaxed) {
        if let Err(e) = prune(store, &name, now).await {
            tracing::debug!(source, error = %e, "could not prune old watermark records");
        }
    }
}

/// The meta change that sets one partition's mark.
fn mark_change(source: &str, mark: &PartitionMark) -> MetaChange {
    MetaChange {
        name: partitions_name(source),
        member: partition_member(&mark.topic, mark.partition),
        bytes: Some(mark.encode()),
    }
}

/// Removes the records of `name` not republished for
/// [`riffle_store::watermark::PRUNE_AFTER`].
async fn prune(store: &OnlineStore, name: &str, now: Timestamp) -> Result<(), StoreError> {
    let old: Vec<String> = store
        .get_meta(name)
        .await?
        .into_iter()
        .filter(|(_, bytes)| WatermarkRecord::decode(bytes).is_none_or(|r| r.is_prunable(now)))
        .map(|(member, _)| member)
        .collect();
    store.delete_meta(name, &old).await
}
