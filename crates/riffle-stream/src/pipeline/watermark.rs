//! Publishing the pipeline's event-time watermark after every durable flush, so `riffle
//! serve` ages a stream group's values by how far the pipeline has processed (not by when an
//! entity last had an event) and `riffle lag` can tell how far behind it is.
//!
//! Each worker publishes its own record ([`WatermarkRecord`]) as field `<host>:<pid>` of the
//! reserved key `<project>:~meta:watermark:<source>` (see `riffle_store::meta`); readers
//! take the MIN over the records published in the last 30 s. The watermark is the largest
//! event time applied (capped at now) once everything up to it is durable. Publishing is
//! best effort: a failure is logged and the next flush publishes again. The first publish of
//! a process also removes records not republished for a day (finished runs).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use riffle_core::Timestamp;
use riffle_store::meta::{watermark_name, WatermarkRecord, META_TTL};
use riffle_store::OnlineStore;
use riffle_store::StoreError;

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

/// Publishes `watermark` (nothing when no event was applied yet) for `source`. Call it only
/// once the rows up to `watermark` are durable.
pub async fn publish(
    store: &OnlineStore,
    source: &str,
    watermark: Option<Timestamp>,
    events_applied_total: u64,
) {
    let Some(watermark) = watermark else { return };
    let now = Timestamp::now();
    let record = WatermarkRecord {
        watermark_ms: watermark.min(now).millis(),
        published_at_ms: now.millis(),
        events_applied_total,
        publisher: publisher_id().to_owned(),
    };
    let name = watermark_name(source);
    if let Err(e) = store
        .put_meta(&name, &record.publisher, record.encode(), META_TTL)
        .await
    {
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

/// Removes the records of `name` not republished for [`riffle_store::meta::PRUNE_AFTER`].
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
