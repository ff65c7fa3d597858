//! An archive as `riffle ingest --from`'s input: a Parquet file, or any history location
//! ([`crate::location`]: a folder, a glob, a `file://`, `s3://` or `gs://` URL of Parquet,
//! NDJSON or CSV), handed to ingest as NDJSON objects in archive order (files by name, then
//! rows or lines), so ingest's own decoder and pipeline apply them exactly as the same
//! events from a file.
//!
//! The files are listed when the archive is opened; they are read one at a time, a record
//! batch at a time, on ingest's reader thread with a runtime of its own, so memory holds one
//! batch (or one NDJSON object file), not the archive.

use std::collections::VecDeque;
use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::object_store::{ObjectStore, ObjectStoreExt};

use datafusion::prelude::SessionContext;
use futures::StreamExt;
use riffle_ingest::feed::archive_stream_id;
use riffle_ingest::process::ArchiveInput;
use serde_json::Value;

use crate::cells;
use crate::error::OfflineError;
use crate::location::{self, Format, HistoryFile};
use crate::read;

/// Whether `--from` names an archive rather than a plain NDJSON file or stdin: a URL, a
/// Parquet file, a folder or a glob.
pub fn is_archive(from: &str) -> bool {
    from.contains("://")
        || Format::of(from) == Some(Format::Parquet)
        || from.contains(['*', '?', '['])
        || std::path::Path::new(from).is_dir()
}

/// Lists the archive at `location` and returns it as ingest's input. Its stream id hashes
/// the location and every file's name, size and change tag.
pub async fn open(location: &str) -> Result<ArchiveInput, OfflineError> {
    let ctx = read::ordered_context();
    let (store, files) = location::list(&ctx, location).await?;
    let mut tags = Vec::with_capacity(files.len());
    for file in &files {
        let meta = store
            .head(&file.path)
            .await
            .map_err(|e| OfflineError::read(&file.url, e))?;
        let tag = meta
            .e_tag
            .unwrap_or_else(|| meta.last_modified.timestamp_millis().to_string());
        tags.push(tag);
    }
    let stream_id = archive_stream_id(
        location,
        files
            .iter()
            .zip(&tags)
            .map(|(f, t)| (f.url.as_str(), f.size, t.as_str())),
    );
    let described = format!("{location} ({} file(s))", files.len());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| OfflineError::read(location, e))?;
    let reader = Reader {
        ctx,
        store,
        files: files.into(),
        runtime: Some(runtime),
        stream: None,
        pending: VecDeque::new(),
    };
    Ok(ArchiveInput {
        described,
        stream_id,
        records: Box::new(reader),
    })
}

/// Reads the files in order, one batch ahead of ingest.
struct Reader {
    ctx: SessionContext,
    store: Arc<dyn ObjectStore>,
    files: VecDeque<HistoryFile>,
    /// Taken out when the reader is dropped (a runtime must not be dropped on a runtime).
    runtime: Option<tokio::runtime::Runtime>,
    /// The file being read batch by batch, and its URL.
    stream: Option<(SendableRecordBatchStream, String)>,
    pending: VecDeque<Vec<u8>>,
}

impl Iterator for Reader {
    type Item = std::io::Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(record) = self.pending.pop_front() {
                return Some(Ok(record));
            }
            if let Err(e) = self.refill()? {
                self.files.clear();
                self.stream = None;
                return Some(Err(std::io::Error::other(e.to_string())));
            }
        }
    }
}

impl Reader {
    /// Fills `pending` with the next batch's records: `None` at the archive's end.
    fn refill(&mut self) -> Option<Result<(), OfflineError>> {
        let runtime = self.runtime.as_ref()?;
        if let Some((stream, url)) = &mut self.stream {
            match runtime.block_on(stream.next()) {
                Some(Ok(batch)) => {
                    rows_to_json(&batch, &mut self.pending);
                    return Some(Ok(()));
                }
                Some(Err(e)) => return Some(Err(OfflineError::read(url.clone(), e))),
                None => self.stream = None,
            }
        }
        let file = self.files.pop_front()?;
        let ctx = &self.ctx;
        let store = &self.store;
        let opened = runtime.block_on(async {
            if file.format == Format::Ndjson {
                let text = read::bytes(store.as_ref(), &file).await?;
                let lines = read::lines(&text).map(|(_, l)| l.to_vec()).collect();
                return Ok((None, lines));
            }
            let stream = read::frame(ctx, &file)
                .await?
                .execute_stream()
                .await
                .map_err(|e| OfflineError::read(&file.url, e))?;
            Ok((Some(stream), Vec::new()))
        });
        match opened {
            Ok((stream, lines)) => {
                self.pending.extend(lines);
                self.stream = stream.map(|s| (s, file.url));
                Some(Ok(()))
            }
            Err(e) => Some(Err(e)),
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.stream = None;
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Each row of `batch` as the NDJSON object of its non-null columns. A column of a type no
/// event field can hold is left out: if the source needs it, ingest's decoder dead-letters
/// the event for the missing field, with its reason.
fn rows_to_json(batch: &RecordBatch, out: &mut VecDeque<Vec<u8>>) {
    let all: Vec<usize> = (0..batch.num_columns()).collect();
    for row in 0..batch.num_rows() {
        let (object, _) = cells::row_object(batch, row, &all);
        out.push_back(serde_json::to_vec(&Value::Object(object)).unwrap_or_default());
    }
}
