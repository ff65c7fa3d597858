//! The feature log (`[serve.logging]`): the values `riffle serve` answered to a sample of
//! entities, as Parquet files, so the consistency validator can recompute each value
//! offline at its served instant and compare.
//!
//! - [`sample`]: which entities — a pinned hash of the entity id below the sample rate, so
//!   an entity is logged in every request or in none, by every process.
//! - [`record`]: what is kept of an answered read per sampled entity — the values, statuses,
//!   ages and watermarks the response was written from, not a recomputation.
//! - [`schema`]: the files' columns (one row per value) and the batch built from records.
//! - [`files`]: Parquet files under a temporary name, renamed when complete, rotated by
//!   rows and age.
//! - [`writer`]: the background task between the queue and the files.
//! - [`counters`]: its metrics.
//!
//! The request path only hashes ids and, for a sampled entity, copies its answer into a
//! bounded queue with `try_send`: a request never waits on the log and never fails because
//! of it; a full queue drops the record and counts its rows. Without `[serve.logging]`
//! there is no [`FeatureLog`] and the handlers skip it with one branch.

pub mod counters;
pub mod files;
pub mod record;
pub mod sample;
pub mod schema;
pub mod writer;

use std::sync::{Arc, Mutex, PoisonError};

use riffle_core::EntityId;
use riffle_registry::Registry;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::lookup::Lookup;
use crate::selection::Selection;
use counters::LogCounters;
use files::LogFiles;
use record::Record;
use sample::Sampler;
use writer::Writer;

/// The request path's handle on the feature log.
pub struct FeatureLog {
    registry: Arc<Registry>,
    sampler: Sampler,
    queue: mpsc::Sender<Record>,
    counters: LogCounters,
    /// Taken once, by [`FeatureLog::close`].
    stop: Mutex<Option<(oneshot::Sender<()>, JoinHandle<()>)>>,
}

impl FeatureLog {
    /// Starts the writer task when the registry has `[serve.logging]` (and a Tokio runtime
    /// runs); `None` otherwise.
    pub fn start(registry: Arc<Registry>, counters: LogCounters) -> Option<Self> {
        let settings = registry.serve.logging.clone()?;
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("no Tokio runtime: [serve.logging] is ignored");
            return None;
        };
        // Created again before every file; failing now only warns early.
        if let Err(e) = std::fs::create_dir_all(&settings.path) {
            tracing::warn!(path = %settings.path.display(), error = %e, "cannot create the feature log folder; its writes will fail and be counted");
        }
        let (queue, rx) = mpsc::channel(settings.queue);
        let (stop, stopped) = oneshot::channel();
        let files = LogFiles::new(
            settings.path.clone(),
            settings.rotate_rows,
            settings.rotate_after,
        );
        let writer = Writer::new(registry.clone(), files, counters.clone());
        let task = runtime.spawn(writer.run(rx, stopped));
        tracing::info!(
            path = %settings.path.display(),
            sample_rate = settings.sample_rate,
            "feature log on"
        );
        Some(Self {
            registry,
            sampler: Sampler::new(settings.sample_rate),
            queue,
            counters,
            stop: Mutex::new(Some((stop, task))),
        })
    }

    /// Offers what `lookup` answered for the sampled ones of `ids` to the writer; never
    /// waits. `service`: the feature service the request named.
    pub fn record(
        &self,
        sel: &Selection,
        ids: &[EntityId],
        lookup: &Lookup,
        endpoint: &'static str,
        service: Option<&str>,
    ) {
        let mut service_name: Option<Arc<str>> = None;
        for (e, id) in ids.iter().enumerate() {
            if !self.sampler.keeps(id.as_str()) {
                continue;
            }
            if service_name.is_none() {
                service_name = service.map(Arc::from);
            }
            let record = Record::of(
                &self.registry,
                sel,
                lookup,
                e,
                id,
                endpoint,
                service_name.clone(),
            );
            let rows = record.rows();
            match self.queue.try_send(record) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    self.counters.dropped_queue_full.inc_by(rows);
                }
                Err(TrySendError::Closed(_)) => {
                    self.counters.dropped_stopped.inc_by(rows);
                }
            }
        }
    }

    /// Stops the writer after it has written what is queued and completed the open file.
    /// Later calls return at once.
    pub async fn close(&self) {
        let taken = self
            .stop
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some((stop, task)) = taken else { return };
        let _ = stop.send(());
        if let Err(e) = task.await {
            tracing::error!(error = %e, "the feature log writer ended abnormally");
        }
    }
}

#[cfg(test)]
mod tests;
