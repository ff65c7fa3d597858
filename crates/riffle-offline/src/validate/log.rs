//! Reading serve's feature log (`[serve.logging]`): every value served to a sampled entity,
//! one Parquet row each, into [`Logged`] values. Only the columns the validator needs are
//! read; a row that cannot be used is counted, never guessed at.

use std::path::Path;

use datafusion::arrow::array::Array;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::SessionContext;
use riffle_core::Timestamp;
use serde_json::Value;

use crate::cells;
use crate::error::OfflineError;
use crate::location;
use crate::read;

/// One value as serve answered it.
#[derive(Debug, Clone)]
pub struct Logged {
    /// The instant the value was judged at.
    pub at: Timestamp,
    pub entity_id: String,
    pub group: String,
    pub feature: String,
    /// The served value, as the client read it.
    pub value: Value,
    /// Its served status (`fresh`, `stale`, `expired`, `missing`, `null`, `unavailable`).
    pub status: String,
    /// The instant the served row was true as of: the later of the watermark the group
    /// was aged from (as it stood when the row was read from the store) and the row's event
    /// time (for a group fed by a source, the watermark of the flush that wrote it, which
    /// may be ahead of the one the server had read); `None` when no row was served.
    pub basis: Option<Timestamp>,
}

/// What was read of a log.
#[derive(Debug, Default)]
pub struct LogRead {
    pub files: usize,
    pub values: Vec<Logged>,
    /// Rows without a needed cell, with the first reason seen.
    pub unusable: usize,
    pub first_unusable: Option<String>,
}

/// Reads every `*.parquet` file of the log at `location` (a folder, glob or URL).
pub async fn read(ctx: &SessionContext, location: &str) -> Result<LogRead, OfflineError> {
    // A local folder is read as its completed files: files still being written are hidden
    // and named `.partial`.
    let location = if Path::new(location).is_dir() {
        format!("{}/*.parquet", location.trim_end_matches('/'))
    } else {
        location.to_string()
    };
    let (_, files) = location::list(ctx, &location).await?;
    let mut out = LogRead {
        files: files.len(),
        ..LogRead::default()
    };
    for file in &files {
        for batch in read::batches(ctx, file).await? {
            rows(&batch, &file.url, &mut out)?;
        }
    }
    Ok(out)
}

fn rows(batch: &RecordBatch, file: &str, out: &mut LogRead) -> Result<(), OfflineError> {
    let column = |name: &str| {
        batch.column_by_name(name).cloned().ok_or_else(|| {
            OfflineError::read(
                file,
                format!("no column {name:?}: not a Riffle feature log"),
            )
        })
    };
    let at = column("request_time")?;
    let entity_id = column("entity_id")?;
    let group = column("group")?;
    let feature = column("feature")?;
    let value = column("value")?;
    let status = column("status")?;
    let watermark = column("watermark")?;
    let event_time = column("event_timestamp")?;
    for row in 0..batch.num_rows() {
        let text = |array: &dyn Array| match cells::to_json(array, row) {
            Ok(Value::String(s)) => Ok(s),
            Ok(other) => Err(format!("{other} is not text")),
            Err(e) => Err(e),
        };
        let time = |array: &dyn Array| -> Result<Option<Timestamp>, String> {
            match cells::to_json(array, row)? {
                Value::Null => Ok(None),
                v => Timestamp::from_json(&v)
                    .map(Some)
                    .map_err(|e| e.to_string()),
            }
        };
        let parsed = (|| -> Result<Logged, String> {
            let value_text = text(value.as_ref())?;
            Ok(Logged {
                at: time(at.as_ref())?.ok_or("no request_time")?,
                entity_id: text(entity_id.as_ref())?,
                group: text(group.as_ref())?,
                feature: text(feature.as_ref())?,
                value: serde_json::from_str(&value_text)
                    .map_err(|e| format!("value {value_text:?} is not JSON: {e}"))?,
                status: text(status.as_ref())?,
                basis: match (time(watermark.as_ref())?, time(event_time.as_ref())?) {
                    (Some(w), Some(e)) => Some(w.max(e)),
                    (w, e) => w.or(e),
                },
            })
        })();
        match parsed {
            Ok(logged) => out.values.push(logged),
            Err(why) => {
                out.unusable += 1;
                out.first_unusable
                    .get_or_insert_with(|| format!("{file}: row {}: {why}", row + 1));
            }
        }
    }
    Ok(())
}
