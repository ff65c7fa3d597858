//! Bulk loading of precomputed feature rows (`riffle load`): one file, one feature group.
//!
//! - CSV: a header of the join key, then feature names of the group (all of them, any
//!   order), plus an optional `event_timestamp` column (RFC 3339 or epoch ms). An empty cell
//!   stores null. Vectors are JSON arrays or `;`-separated floats.
//! - NDJSON: one object per line with the join key, every feature (`null` for none) and an
//!   optional `event_timestamp`.
//!
//! The header is checked before anything is written (every problem at once, as
//! [`LoadError::Header`]). Then a reading thread decodes rows while the writing side sends
//! batches through the [`PipelinedWriter`], a few in flight. An invalid row is
//! skipped and reported with its line number; with `strict` the load stops at it (rows
//! before it are written, nothing after). A failed store write stops the load and the
//! [`LoadSummary`] names the lines that were not written. Progress goes to a
//! [`LoadProgress`].

mod error;
mod format;
mod reader;
mod rows;
mod summary;

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use riffle_core::Timestamp;
use riffle_store::OnlineStore;
use tokio::sync::mpsc;

use crate::writer::{BatchOutcome, PipelinedWriter};
pub use error::LoadError;
pub use format::Format;
use reader::{CsvSource, DecodeContext, Event, JsonSource, RowSource};
pub use rows::{CsvColumns, RowSchema, EVENT_TIMESTAMP};
pub use summary::{FailedBatch, LoadSummary, RowError};

/// How to load.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub group: String,
    /// `None`: from the file extension.
    pub format: Option<Format>,
    /// Stop at the first invalid row instead of skipping it.
    pub strict: bool,
    /// Rows per store write.
    pub batch_size: usize,
    /// Store writes in flight at once.
    pub max_in_flight: usize,
    /// Invalid rows kept in the summary (all are counted).
    pub max_errors: usize,
    /// Event time of rows without one (default: the time the load starts).
    pub default_event_ts: Option<Timestamp>,
}

impl LoadOptions {
    pub fn new(group: impl Into<String>) -> Self {
        Self {
            group: group.into(),
            format: None,
            strict: false,
            batch_size: 1000,
            max_in_flight: 4,
            max_errors: 20,
            default_event_ts: None,
        }
    }
}

/// Where a load is, for a progress bar.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProgressUpdate {
    pub bytes_read: u64,
    pub rows_read: u64,
    pub rows_written: u64,
    pub rows_skipped: u64,
}

/// Receives a load's progress. Every method has a do-nothing default.
pub trait LoadProgress: Send + Sync {
    /// The load starts on a file of `total_bytes`.
    fn start(&self, _total_bytes: u64) {}
    fn update(&self, _update: &ProgressUpdate) {}
    fn finish(&self, _summary: &LoadSummary) {}
}

/// Reports nothing.
pub struct NoProgress;

impl LoadProgress for NoProgress {}

/// Loads `path` into `store`. Returns an error only when the load could not start (nothing
/// written); once it starts, the outcome, good or bad, is in the [`LoadSummary`].
pub async fn load_file(
    store: Arc<OnlineStore>,
    path: &Path,
    options: &LoadOptions,
    progress: &dyn LoadProgress,
) -> Result<LoadSummary, LoadError> {
    let started = Instant::now();
    let registry = store.registry().clone();
    let group = registry
        .group(&options.group)
        .ok_or_else(|| LoadError::UnknownGroup {
            name: options.group.clone(),
            known: registry
                .groups
                .iter()
                .map(|g| g.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    let format = match options.format {
        Some(f) => f,
        None => Format::detect(path).ok_or_else(|| LoadError::UndetectedFormat(path.into()))?,
    };
    let now = Timestamp::now();
    let open = || -> Result<(Box<dyn RowSource>, u64), LoadError> {
        let file = File::open(path).map_err(|source| LoadError::Open {
            path: path.into(),
            source,
        })?;
        let total_bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
        let ctx = DecodeContext {
            schema: RowSchema::new(&registry, group),
            default_ts: options.default_event_ts.unwrap_or(now),
            computed_at: now,
        };
        let source: Box<dyn RowSource> = match format {
            Format::Csv => Box::new(open_csv(path, file, ctx)?),
            Format::Ndjson => Box::new(JsonSource {
                reader: BufReader::with_capacity(1 << 16, file),
                ctx,
                line: 0,
                bytes: 0,
                buf: Vec::new(),
            }),
        };
        Ok((source, total_bytes))
    };
    let (mut source, total_bytes) = open()?;
    let (batch_size, strict) = (options.batch_size.max(1), options.strict);
    let mut summary = LoadSummary::new(&group.name, format, strict);

    if strict {
        // All or nothing: read the whole file once without writing; any invalid row and
        // nothing is written at all.
        progress.start(total_bytes);
        validate(source, batch_size, options, progress, &mut summary).await;
        if summary.rows_skipped > 0 || summary.read_error.is_some() {
            summary.finish(started.elapsed());
            progress.finish(&summary);
            return Ok(summary);
        }
        summary = LoadSummary::new(&group.name, format, strict);
        source = open()?.0;
    }

    progress.start(total_bytes);
    let (tx, rx) = mpsc::channel(options.max_in_flight.max(1) * 2);
    let reading =
        tokio::task::spawn_blocking(move || reader::read_all(source, batch_size, strict, tx));
    drive(store, rx, options, progress, &mut summary).await;
    // The reader has stopped or will stop at its next send; it holds no store resources.
    let _ = reading.await;
    summary.finish(started.elapsed());
    progress.finish(&summary);
    Ok(summary)
}

fn open_csv(path: &Path, file: File, ctx: DecodeContext) -> Result<CsvSource, LoadError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(BufReader::with_capacity(1 << 16, file));
    let header_problem = |problems| LoadError::Header {
        path: path.into(),
        group: ctx.schema.group.name.clone(),
        problems,
    };
    let header = reader
        .headers()
        .map_err(|e| header_problem(vec![format!("cannot read the header: {e}")]))?
        .clone();
    if header.is_empty() || header.iter().all(|h| h.trim().is_empty()) {
        return Err(header_problem(vec![
            "the file is empty: expected a header line".into(),
        ]));
    }
    let names: Vec<&str> = header.iter().collect();
    let columns = CsvColumns::from_header(&ctx.schema, &names).map_err(header_problem)?;
    Ok(CsvSource {
        reader,
        columns,
        ctx,
        record: csv::StringRecord::new(),
    })
}

/// The strict pre-pass: reads every row, writes none, and records every invalid row (and a
/// read error) in `summary`.
async fn validate(
    source: Box<dyn RowSource>,
    batch_size: usize,
    options: &LoadOptions,
    progress: &dyn LoadProgress,
    summary: &mut LoadSummary,
) {
    let (tx, mut rx) = mpsc::channel(4);
    let reading =
        tokio::task::spawn_blocking(move || reader::read_all(source, batch_size, false, tx));
    let mut update = ProgressUpdate::default();
    while let Some(event) = rx.recv().await {
        match event {
            Event::Batch { batch, bytes_read } => {
                summary.rows_read += batch.rows.len() as u64;
                update.bytes_read = bytes_read;
            }
            Event::Invalid(error) => {
                summary.rows_read += 1;
                summary.add_error(error, options.max_errors);
            }
            Event::End { error, .. } => summary.read_error = error,
        }
        update.rows_read = summary.rows_read;
        update.rows_skipped = summary.rows_skipped;
        progress.update(&update);
    }
    let _ = reading.await;
}

/// The writing side: submits batches as they arrive, stops sending at the first store
/// failure, and accounts for every row.
async fn drive(
    store: Arc<OnlineStore>,
    mut rx: mpsc::Receiver<Event>,
    options: &LoadOptions,
    progress: &dyn LoadProgress,
    summary: &mut LoadSummary,
) {
    let mut writer = PipelinedWriter::new(store, options.max_in_flight);
    let mut update = ProgressUpdate::default();
    let mut last_line_seen = 0;
    let mut ended = false;
    while let Some(event) = rx.recv().await {
        match event {
            Event::Batch { batch, bytes_read } => {
                summary.rows_read += batch.rows.len() as u64;
                last_line_seen = batch.last_line;
                update.bytes_read = bytes_read;
                writer.submit(batch).await;
            }
            Event::Invalid(error) => {
                summary.rows_read += 1;
                last_line_seen = last_line_seen.max(error.line);
                summary.add_error(error, options.max_errors);
            }
            Event::End { stopped_at, error } => {
                summary.stopped_at_line = stopped_at;
                summary.read_error = error;
                ended = true;
            }
        }
        absorb(writer.take_completed(), summary);
        update.rows_read = summary.rows_read;
        update.rows_written = summary.rows_written;
        update.rows_skipped = summary.rows_skipped;
        progress.update(&update);
        if ended || !summary.failed_batches.is_empty() {
            break;
        }
    }
    if !ended {
        // A write failed: account for what the reader already sent, then stop it.
        rx.close();
        while let Ok(event) = rx.try_recv() {
            match event {
                Event::Batch { batch, .. } => {
                    summary.rows_read += batch.rows.len() as u64;
                    last_line_seen = batch.last_line;
                    summary.add_failed(FailedBatch {
                        batch: batch.index,
                        first_line: batch.first_line,
                        last_line: batch.last_line,
                        rows: batch.rows.len() as u64,
                        reason: "not sent: an earlier batch failed".into(),
                    });
                }
                Event::Invalid(error) => {
                    summary.rows_read += 1;
                    last_line_seen = last_line_seen.max(error.line);
                    summary.add_error(error, options.max_errors);
                }
                Event::End { stopped_at, error } => {
                    summary.stopped_at_line = stopped_at;
                    summary.read_error = error;
                    ended = true;
                }
            }
        }
        if !ended {
            summary.unread_after_line = Some(last_line_seen);
        }
    }
    absorb(writer.finish().await, summary);
    update.rows_written = summary.rows_written;
    progress.update(&update);
}

fn absorb(outcomes: Vec<BatchOutcome>, summary: &mut LoadSummary) {
    for outcome in outcomes {
        match outcome.result {
            Ok(()) => {
                summary.rows_written += outcome.rows as u64;
                summary.batches_written += 1;
            }
            Err(e) => summary.add_failed(FailedBatch {
                batch: outcome.index,
                first_line: outcome.first_line,
                last_line: outcome.last_line,
                rows: outcome.rows as u64,
                reason: e.to_string(),
            }),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
