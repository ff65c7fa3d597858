//! The feature log's metrics (named in [`crate::metrics`]' table with the others):
//! `riffle_feature_log_rows_total` (rows in completed files),
//! `riffle_feature_log_dropped_rows_total{reason}` (`queue_full`, `write_failed`,
//! `stopped`), `riffle_feature_log_files_total` and `riffle_feature_log_write_errors_total`.
//! Registered whether or not `[serve.logging]` is set, so dashboards see zeros, not gaps.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry as PromRegistry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// The counters, resolved once: the request path never builds a label set.
#[derive(Clone, Debug, Default)]
pub struct LogCounters {
    /// Rows in files completed and renamed into place.
    pub rows: Counter,
    /// Rows dropped because the queue to the writer was full.
    pub dropped_queue_full: Counter,
    /// Rows lost with a write that failed (their file is discarded).
    pub dropped_write_failed: Counter,
    /// Rows offered after the writer stopped (shutdown).
    pub dropped_stopped: Counter,
    /// Files completed.
    pub files: Counter,
    /// Failed writes (folder, file, Parquet, sync or rename).
    pub write_errors: Counter,
}

impl LogCounters {
    /// Creates the counters and registers them in `registry` (prefixed `riffle_`).
    pub fn register(registry: &mut PromRegistry) -> Self {
        let dropped = Family::<ReasonLabels, Counter>::default();
        let reason = |reason| dropped.get_or_create(&ReasonLabels { reason }).clone();
        let counters = LogCounters {
            rows: Counter::default(),
            dropped_queue_full: reason("queue_full"),
            dropped_write_failed: reason("write_failed"),
            dropped_stopped: reason("stopped"),
            files: Counter::default(),
            write_errors: Counter::default(),
        };
        registry.register(
            "feature_log_rows",
            "Feature-log rows written to completed files",
            counters.rows.clone(),
        );
        registry.register(
            "feature_log_dropped_rows",
            "Feature-log rows dropped, by reason (queue_full, write_failed, stopped)",
            dropped,
        );
        registry.register(
            "feature_log_files",
            "Feature-log files completed and renamed into place",
            counters.files.clone(),
        );
        registry.register(
            "feature_log_write_errors",
            "Feature-log writes that failed (the rows involved are dropped)",
            counters.write_errors.clone(),
        );
        counters
    }
}
