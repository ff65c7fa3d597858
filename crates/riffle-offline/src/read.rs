//! Reading one file of history: as Arrow record batches through DataFusion's readers
//! (Parquet, CSV with a header, NDJSON), each file by the format its name tells; or, for
//! NDJSON events, as numbered lines, so each is decoded exactly as ingest decodes a line.

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::dataframe::DataFrame;
use datafusion::datasource::file_format::options::JsonReadOptions;
use datafusion::object_store::{ObjectStore, ObjectStoreExt};
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionContext};

use crate::error::OfflineError;
use crate::location::{Format, HistoryFile};

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
