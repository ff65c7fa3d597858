//! Reading a whole file or location into Arrow record batches through DataFusion's readers
//! (Parquet, CSV with a header, NDJSON), each file by the format its name tells.

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::file_format::options::JsonReadOptions;
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionContext};

use crate::error::OfflineError;
use crate::location::{Format, HistoryFile};

/// Every record batch of one file.
pub async fn batches(
    ctx: &SessionContext,
    file: &HistoryFile,
) -> Result<Vec<RecordBatch>, OfflineError> {
    let ext = file.format.extension(&file.url);
    let frame = match file.format {
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
    .map_err(|e| OfflineError::read(&file.url, e))?;
    frame
        .collect()
        .await
        .map_err(|e| OfflineError::read(&file.url, e))
}
