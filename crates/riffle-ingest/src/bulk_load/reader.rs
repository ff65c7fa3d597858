//! The reading side of a load: a blocking thread that walks the file, decodes rows and
//! sends batches of valid rows and the invalid rows (with their line numbers) to the writing
//! side, through a bounded channel so reading never runs far ahead of the store.

use std::fs::File;
use std::io::{BufRead, BufReader};

use riffle_core::Timestamp;
use tokio::sync::mpsc;

use super::rows::{decode_json, CsvColumns, RowSchema};
use super::summary::RowError;
use crate::writer::Batch;

/// What the reading thread reports.
pub(super) enum Event {
    Batch {
        batch: Batch,
        bytes_read: u64,
    },
    Invalid(RowError),
    End {
        /// Strict mode: the invalid line the load stopped at.
        stopped_at: Option<u64>,
        /// The file could not be read further.
        error: Option<String>,
    },
}

/// One decoded input row, or the reason it is invalid.
pub(super) type Decoded = (u64, Result<riffle_store::RowWrite, String>);

/// A file being read row by row.
pub(super) trait RowSource: Send {
    /// The next row; `Err` when the file cannot be read further.
    fn next_row(&mut self) -> Option<Result<Decoded, String>>;
    fn bytes_read(&self) -> u64;
}

/// How rows are decoded: the schema and the times given to every row.
pub(super) struct DecodeContext {
    pub schema: RowSchema,
    pub default_ts: Timestamp,
    pub computed_at: Timestamp,
}

pub(super) struct CsvSource {
    pub reader: csv::Reader<BufReader<File>>,
    pub columns: CsvColumns,
    pub ctx: DecodeContext,
    pub record: csv::StringRecord,
}

impl RowSource for CsvSource {
    fn next_row(&mut self) -> Option<Result<Decoded, String>> {
        match self.reader.read_record(&mut self.record) {
            Ok(false) => None,
            Ok(true) => {
                let line = self.record.position().map_or(0, |p| p.line());
                Some(Ok((
                    line,
                    self.columns.decode(
                        &self.ctx.schema,
                        &self.record,
                        self.ctx.default_ts,
                        self.ctx.computed_at,
                    ),
                )))
            }
            Err(e) => {
                let line = e.position().map(|p| p.line());
                match (e.kind(), line) {
                    (
                        csv::ErrorKind::UnequalLengths {
                            expected_len, len, ..
                        },
                        Some(line),
                    ) => Some(Ok((
                        line,
                        Err(format!(
                            "{len} field(s) where the header has {expected_len}"
                        )),
                    ))),
                    (csv::ErrorKind::Utf8 { .. }, Some(line)) => {
                        Some(Ok((line, Err("not valid UTF-8".into()))))
                    }
                    _ => Some(Err(e.to_string())),
                }
            }
        }
    }

    fn bytes_read(&self) -> u64 {
        self.reader.position().byte()
    }
}

pub(super) struct JsonSource {
    pub reader: BufReader<File>,
    pub ctx: DecodeContext,
    pub line: u64,
    pub bytes: u64,
    pub buf: Vec<u8>,
}

impl RowSource for JsonSource {
    fn next_row(&mut self) -> Option<Result<Decoded, String>> {
        loop {
            self.buf.clear();
            match self.reader.read_until(b'\n', &mut self.buf) {
                Ok(0) => return None,
                Ok(n) => {
                    self.line += 1;
                    self.bytes += n as u64;
                    let text = match std::str::from_utf8(&self.buf) {
                        Ok(text) => text.trim(),
                        Err(_) => return Some(Ok((self.line, Err("not valid UTF-8".into())))),
                    };
                    if text.is_empty() {
                        continue;
                    }
                    let ctx = &self.ctx;
                    return Some(Ok((
                        self.line,
                        decode_json(&ctx.schema, text, ctx.default_ts, ctx.computed_at),
                    )));
                }
                Err(e) => return Some(Err(e.to_string())),
            }
        }
    }

    fn bytes_read(&self) -> u64 {
        self.bytes
    }
}

/// Reads `source` to its end (or, when strict, to its first invalid row), sending batches
/// of `batch_size` valid rows. Stops quietly when the receiver is gone.
pub(super) fn read_all(
    mut source: Box<dyn RowSource>,
    batch_size: usize,
    strict: bool,
    tx: mpsc::Sender<Event>,
) {
    let mut batch = new_batch(0, batch_size);
    let mut stopped_at = None;
    let mut error = None;
    while let Some(item) = source.next_row() {
        match item {
            Err(e) => {
                error = Some(e);
                break;
            }
            Ok((line, Ok(row))) => {
                if batch.rows.is_empty() {
                    batch.first_line = line;
                }
                batch.last_line = line;
                batch.rows.push(row);
                if batch.rows.len() >= batch_size {
                    let next = new_batch(batch.index + 1, batch_size);
                    let full = std::mem::replace(&mut batch, next);
                    let bytes_read = source.bytes_read();
                    if tx
                        .blocking_send(Event::Batch {
                            batch: full,
                            bytes_read,
                        })
                        .is_err()
                    {
                        return;
                    }
                }
            }
            Ok((line, Err(reason))) => {
                if tx
                    .blocking_send(Event::Invalid(RowError { line, reason }))
                    .is_err()
                {
                    return;
                }
                if strict {
                    stopped_at = Some(line);
                    break;
                }
            }
        }
    }
    if !batch.rows.is_empty() {
        let bytes_read = source.bytes_read();
        if tx
            .blocking_send(Event::Batch { batch, bytes_read })
            .is_err()
        {
            return;
        }
    }
    let _ = tx.blocking_send(Event::End { stopped_at, error });
}

fn new_batch(index: u64, capacity: usize) -> Batch {
    Batch {
        index,
        first_line: 0,
        last_line: 0,
        rows: Vec::with_capacity(capacity),
    }
}
