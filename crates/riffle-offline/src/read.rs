//! Reading one file of history: as Arrow record batches through DataFusion's readers
//! (Parquet, CSV with a header, NDJSON), each file by the format its name tells; or, for
//! NDJSON events, as numbered lines, so each is decoded exactly as ingest decodes a line.
//!
//! **Order is kept.** A spine's row i is the training set's row i, and a history's order is
//! its arrival order, so every read goes through [`ordered_context`]: one partition per
//! scan. DataFusion otherwise splits a file into byte ranges read in parallel, and
//! collecting them interleaves their batches in whatever order they finish.

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::dataframe::DataFrame;
use datafusion::datasource::file_format::options::JsonReadOptions;
use datafusion::object_store::{ObjectStore, ObjectStoreExt};
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionConfig, SessionContext};

use crate::error::OfflineError;
use crate::location::{Format, HistoryFile};

/// A DataFusion context whose scans keep the order of the file: one partition, no file
/// split into ranges.
pub fn ordered_context() -> SessionContext {
    SessionContext::new_with_config(
        SessionConfig::new()
            .with_target_partitions(1)
            .with_repartition_file_scans(false),
    )
}

/// One file as a DataFusion frame (nothing is read until it is collected or streamed).
pub async fn frame(ctx: &SessionContext, file: &HistoryFile) -> Result<DataFrame, OfflineError> {
    let ext = file.format.extension(&file.url);
    match file.format {
        Format::Parquet => {
            ctx.read_parquet(
                &file.url,
                ParquetReadOptions::default().file_extension(&ext),
            )
            .await
        }
        Format::Csv => {
            ctx.read_csv(
                &file.url,
                CsvReadOptions::new().has_header(true).file_extension(&ext),
            )
            .await
        }
        Format::Ndjson => {
            ctx.read_json(&file.url, JsonReadOptions::default().file_extension(&ext))
                .await
        }
    }
    .map_err(|e| OfflineError::read(&file.url, e))
}

/// Every record batch of one file.
pub async fn batches(
    ctx: &SessionContext,
    file: &HistoryFile,
) -> Result<Vec<RecordBatch>, OfflineError> {
    frame(ctx, file)
        .await?
        .collect()
        .await
        .map_err(|e| OfflineError::read(&file.url, e))
}

/// The bytes of one file.
pub async fn bytes(
    store: &dyn ObjectStore,
    file: &HistoryFile,
) -> Result<bytes::Bytes, OfflineError> {
    store
        .get(&file.path)
        .await
        .map_err(|e| OfflineError::read(&file.url, e))?
        .bytes()
        .await
        .map_err(|e| OfflineError::read(&file.url, e))
}

/// The lines of NDJSON text with their numbers (from 1), as ingest's file input reads
/// them: a trailing `\r` removed, blank lines skipped.
pub fn lines(text: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    text.split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix(b"\r").unwrap_or(l)))
        .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace))
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::Int64Type;

    use super::*;
    use crate::location;

    #[tokio::test]
    async fn a_large_file_is_read_in_its_own_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::from("n,pad\n");
        for n in 0..300_000 {
            writeln!(text, "{n},abcdefghijklmnopqrstuvwxyz").unwrap();
        }
        let path = dir.path().join("big.csv");
        std::fs::write(&path, text).unwrap();
        let ctx = ordered_context();
        let (_, files) = location::list(&ctx, &path.display().to_string())
            .await
            .unwrap();
        let mut seen = Vec::new();
        for batch in batches(&ctx, &files[0]).await.unwrap() {
            let column = batch
                .column_by_name("n")
                .unwrap()
                .as_primitive::<Int64Type>();
            seen.extend(column.values().iter().copied());
        }
        assert_eq!(seen.len(), 300_000);
        assert!(
            seen.iter().enumerate().all(|(i, &n)| n == i as i64),
            "rows out of order"
        );
    }
}
