//! The feature log's background task: takes [`Record`]s off the bounded queue, gathers them
//! into batches of up to [`BATCH_ROWS`] rows (or whatever arrived within [`FLUSH_EVERY`]),
//! and writes each on a blocking thread through [`LogFiles`], which rotates files. On stop
//! it closes the queue, writes what is still in it and completes the open file.
//!
//! Failures never leave this task: each is logged with `tracing`, counted
//! (`write_errors`, and the rows lost as `dropped{reason="write_failed"}`), and the next
//! batch starts a new file.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use riffle_registry::Registry;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};

use super::counters::LogCounters;
use super::files::{Completed, Failure, LogFiles};
use super::record::Record;
use super::schema;

/// Rows gathered before a batch is written without waiting for the tick.
pub const BATCH_ROWS: u64 = 8192;
/// How often what has arrived is written and the open file's age is checked.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// The writer's state: what waits to be written, and the files.
pub struct Writer {
    registry: Arc<Registry>,
    /// Behind a mutex only to move it onto a blocking thread; never contended (one write
    /// at a time, awaited).
    files: Arc<Mutex<LogFiles>>,
    counters: LogCounters,
    pending: Vec<Record>,
    pending_rows: u64,
    tick: Duration,
}

/// What one trip to the blocking thread did.
type Outcomes = Vec<Result<Vec<Completed>, Failure>>;

impl Writer {
    pub fn new(registry: Arc<Registry>, files: LogFiles, counters: LogCounters) -> Self {
        let tick = registry
            .serve
            .logging
            .as_ref()
            .map_or(FLUSH_EVERY, |l| l.rotate_after.min(FLUSH_EVERY));
        Self {
            registry,
            files: Arc::new(Mutex::new(files)),
            counters,
            pending: Vec::new(),
            pending_rows: 0,
            tick: tick.max(Duration::from_millis(10)),
        }
    }

    /// Runs until `stop` fires (or every sender is gone), then writes what is queued and
    /// completes the open file.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Record>, mut stop: oneshot::Receiver<()>) {
        let mut tick = tokio::time::interval(self.tick);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                record = rx.recv() => match record {
                    Some(record) => {
                        self.push(record);
                        if self.pending_rows >= BATCH_ROWS {
                            self.write(false).await;
                        }
                    }
                    None => break,
                },
                _ = tick.tick() => self.write(false).await,
                _ = &mut stop => break,
            }
        }
        // Later offers fail as `stopped`; what is already queued is still written.
        rx.close();
        while let Ok(record) = rx.try_recv() {
            self.push(record);
        }
        self.write(true).await;
    }

    fn push(&mut self, record: Record) {
        self.pending_rows += record.rows();
        self.pending.push(record);
    }

    /// Writes what is pending, then completes the open file if it is due (or `finish`).
    async fn write(&mut self, finish: bool) {
        let now = Instant::now();
        let records = std::mem::take(&mut self.pending);
        let rows = std::mem::take(&mut self.pending_rows);
        let files = self.files.clone();
        let registry = self.registry.clone();
        let outcomes = tokio::task::spawn_blocking(move || -> Outcomes {
            let mut files = files.lock().unwrap_or_else(PoisonError::into_inner);
            let mut outcomes = Outcomes::new();
            if !records.is_empty() {
                let mut completed = Vec::new();
                let written = match schema::batch(&registry, &records) {
                    Ok(batch) => files.write(&batch, now, &mut completed),
                    Err(e) => Err(Failure {
                        error: e.into(),
                        rows_lost: rows,
                    }),
                };
                outcomes.push(Ok(completed));
                outcomes.push(written.map(|()| Vec::new()));
            }
            let end = if finish {
                files.finish()
            } else {
                files.rotate_if_due(now)
            };
            outcomes.push(end.map(|c| c.into_iter().collect()));
            outcomes
        })
        .await;
        match outcomes {
            Ok(outcomes) => outcomes.into_iter().for_each(|o| self.count(o)),
            Err(e) => {
                // Only a panic gets here, and nothing in the blocking part panics on input.
                tracing::error!(error = %e, rows, "feature log writer failed; rows dropped");
                self.counters.write_errors.inc();
                self.counters.dropped_write_failed.inc_by(rows);
            }
        }
    }

    fn count(&self, outcome: Result<Vec<Completed>, Failure>) {
        match outcome {
            Ok(completed) => {
                for c in completed {
                    self.counters.files.inc();
                    self.counters.rows.inc_by(c.rows);
                    tracing::debug!(path = %c.path.display(), rows = c.rows, "feature log file completed");
                }
            }
            Err(f) => {
                self.counters.write_errors.inc();
                self.counters.dropped_write_failed.inc_by(f.rows_lost);
                tracing::warn!(error = %f.error, rows_lost = f.rows_lost, "feature log write failed; its rows are dropped, serving goes on");
            }
        }
    }
}
