//! The feature log's files: batches appended to one open Parquet file at a time, written
//! under a hidden temporary name (`.NAME.parquet.partial`) and renamed to `NAME.parquet`
//! once complete, so a reader of `*.parquet` never sees half a file. A file is completed
//! when it holds `rotate_rows` rows (a batch is split to keep that exact), when it has been
//! open `rotate_after`, and on [`LogFiles::finish`] (graceful shutdown).
//!
//! Names sort by time: `served-<UTC open time, ms>-<pid>-<sequence>.parquet`, fixed width.
//! A `.partial` file left behind (the process was killed) is incomplete and never renamed.
//!
//! Synchronous and clock-free: time comes in as an argument, so the writer task calls it
//! on a blocking thread and tests drive rotation without sleeping.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use arrow_array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use tokio::time::Instant;

use super::schema::schema;

/// Rows per Parquet row group: bounds what an open file holds in memory.
const ROW_GROUP_ROWS: usize = 65_536;

/// Why a write to the feature log failed. None is retried: the rows involved are dropped
/// and counted, and the next batch starts a new file.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing Parquet to {}: {source}", path.display())]
    Parquet { path: PathBuf, source: ParquetError },
    #[error("building the log's batch: {0}")]
    Batch(#[from] arrow_schema::ArrowError),
}

/// What a failed call lost.
#[derive(Debug)]
pub struct Failure {
    pub error: LogError,
    /// Rows that will never reach a completed file (the open file's and the batch's).
    pub rows_lost: u64,
}

/// A file completed and renamed into place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed {
    pub path: PathBuf,
    pub rows: u64,
}

struct OpenFile {
    writer: ArrowWriter<File>,
    partial: PathBuf,
    path: PathBuf,
    rows: u64,
    opened: Instant,
}

/// The rotating writer of one log folder.
pub struct LogFiles {
    dir: PathBuf,
    rotate_rows: u64,
    rotate_after: Duration,
    open: Option<OpenFile>,
    sequence: u64,
}

impl LogFiles {
    pub fn new(dir: PathBuf, rotate_rows: u64, rotate_after: Duration) -> Self {
        Self {
            dir,
            rotate_rows: rotate_rows.max(1),
            rotate_after,
            open: None,
            sequence: 0,
        }
    }

    /// Rows in the open file, not yet in a completed one.
    pub fn open_rows(&self) -> u64 {
        self.open.as_ref().map_or(0, |f| f.rows)
    }

    /// Appends `batch`, completing files as they fill; the files completed are added to
    /// `completed` (also those completed before a failure).
    pub fn write(
        &mut self,
        batch: &RecordBatch,
        now: Instant,
        completed: &mut Vec<Completed>,
    ) -> Result<(), Failure> {
        let mut offset = 0;
        while offset < batch.num_rows() {
            let open = match self.open.take() {
                Some(open) => open,
                None => self.create(now).map_err(|error| Failure {
                    error,
                    rows_lost: (batch.num_rows() - offset) as u64,
                })?,
            };
            let room = (self.rotate_rows - open.rows) as usize;
            let take = room.min(batch.num_rows() - offset);
            let mut open = open;
            if let Err(source) = open.writer.write(&batch.slice(offset, take)) {
                let lost = open.rows + (batch.num_rows() - offset) as u64;
                let path = open.path.clone();
                discard(open);
                return Err(Failure {
                    error: LogError::Parquet { path, source },
                    rows_lost: lost,
                });
            }
            open.rows += take as u64;
            offset += take;
            if open.rows >= self.rotate_rows {
                let remaining = (batch.num_rows() - offset) as u64;
                completed.push(complete(open).map_err(|mut f| {
                    f.rows_lost += remaining;
                    f
                })?);
            } else {
                self.open = Some(open);
            }
        }
        Ok(())
    }

    /// Completes the open file if it has been open `rotate_after` by `now`.
    pub fn rotate_if_due(&mut self, now: Instant) -> Result<Option<Completed>, Failure> {
        match &self.open {
            Some(f) if now.saturating_duration_since(f.opened) >= self.rotate_after => {
                self.finish()
            }
            _ => Ok(None),
        }
    }

    /// Completes the open file, if any (graceful shutdown).
    pub fn finish(&mut self) -> Result<Option<Completed>, Failure> {
        match self.open.take() {
            Some(open) => complete(open).map(Some),
            None => Ok(None),
        }
    }

    fn create(&mut self, now: Instant) -> Result<OpenFile, LogError> {
        std::fs::create_dir_all(&self.dir).map_err(|source| LogError::Io {
            op: "creating the log folder",
            path: self.dir.clone(),
            source,
        })?;
        self.sequence += 1;
        let name = format!(
            "served-{}-{:010}-{:06}.parquet",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"),
            std::process::id(),
            self.sequence
        );
        let path = self.dir.join(&name);
        let partial = self.dir.join(format!(".{name}.partial"));
        let file = File::create(&partial).map_err(|source| LogError::Io {
            op: "creating",
            path: partial.clone(),
            source,
        })?;
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .build();
        let writer = ArrowWriter::try_new(file, schema(), Some(props)).map_err(|source| {
            remove(&partial);
            LogError::Parquet {
                path: partial.clone(),
                source,
            }
        })?;
        Ok(OpenFile {
            writer,
            partial,
            path,
            rows: 0,
            opened: now,
        })
    }
}

/// Writes the footer, syncs and renames `open` into place.
fn complete(open: OpenFile) -> Result<Completed, Failure> {
    let OpenFile {
        writer,
        partial,
        path,
        rows,
        ..
    } = open;
    let fail = |error: LogError| {
        remove(&partial);
        Failure {
            error,
            rows_lost: rows,
        }
    };
    let file = writer.into_inner().map_err(|source| {
        fail(LogError::Parquet {
            path: partial.clone(),
            source,
        })
    })?;
    file.sync_all().map_err(|source| {
        fail(LogError::Io {
            op: "syncing",
            path: partial.clone(),
            source,
        })
    })?;
    drop(file);
    std::fs::rename(&partial, &path).map_err(|source| {
        fail(LogError::Io {
            op: "renaming into place",
            path: partial.clone(),
            source,
        })
    })?;
    Ok(Completed { path, rows })
}

/// Drops a file that cannot be completed, and its temporary name.
fn discard(open: OpenFile) {
    let partial = open.partial.clone();
    drop(open);
    remove(&partial);
}

fn remove(partial: &Path) {
    if let Err(e) = std::fs::remove_file(partial) {
        tracing::debug!(path = %partial.display(), error = %e, "could not remove a partial log file");
    }
}
