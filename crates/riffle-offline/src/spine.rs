//! The spine: the rows a training set is built for. Each has an entity's join key and a
//! timestamp; every other column (labels, ids) is passed through untouched, in order.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::Array;
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::SessionContext;
use riffle_core::{EntityId, Timestamp};
use riffle_registry::KeyType;
use serde_json::Value;

use crate::cells;
use crate::error::OfflineError;
use crate::location;
use crate::read;

/// A spine read whole: its columns, and its timestamps parsed.
pub struct Spine {
    /// Where it was read from (named in errors).
    pub file: String,
    pub batch: RecordBatch,
    pub times: Vec<Timestamp>,
    /// Per row, when set and not after its time: the answer is what a pipeline *behind*
    /// would have served at the row's time, one whose watermark was this instant: a
    /// source's events its stream had delivered before its largest event time reached the
    /// instant ([`crate::packed::EntityEvents::settled_at`]; the ones that arrived while it stood
    /// there give the alternatives, [`crate::replay::replay_behind`]), a group's rows up to
    /// the instant; its clock still at the row's time, as ingest's wall clock moves windows
    /// while it lags. Empty: every row caught up.
    pub history_until: Vec<Option<Timestamp>>,
    keys: HashMap<String, Arc<[EntityId]>>,
}

impl Spine {
    /// Reads the spine at `location` (one file, or a folder or glob of files of one schema)
    /// and parses `time_column`: RFC 3339 text, epoch milliseconds or an Arrow timestamp,
    /// never null, never after `now`.
    pub async fn read(
        ctx: &SessionContext,
        location: &str,
        time_column: &str,
        now: Timestamp,
    ) -> Result<Spine, OfflineError> {
        let (_, files) = location::list(ctx, location).await?;
        let mut batches = Vec::new();
        for file in &files {
            batches.extend(read::batches(ctx, file).await?);
        }
        let schema = match batches.first() {
            Some(b) => b.schema(),
            None => return Err(OfflineError::read(location, "the spine has no rows")),
        };
        let batch =
            concat_batches(&schema, &batches).map_err(|e| OfflineError::read(location, e))?;
        Spine::from_batch(location, batch, time_column, now)
    }

    /// A spine already in memory (`name` is what errors call it), checked as [`Spine::read`]
    /// checks a file.
    pub fn from_batch(
        name: &str,
        batch: RecordBatch,
        time_column: &str,
        now: Timestamp,
    ) -> Result<Spine, OfflineError> {
        let mut spine = Spine {
            file: name.to_string(),
            batch,
            times: Vec::new(),
            history_until: Vec::new(),
            keys: HashMap::new(),
        };
        let column = spine.column(time_column, "the timestamp column (--timestamp-column)")?;
        let mut times = Vec::with_capacity(column.len());
        for row in 0..column.len() {
            let cell = spine.cell(column.as_ref(), row, time_column)?;
            let time = Timestamp::from_json(&cell)
                .map_err(|e| spine.bad(row, time_column, e.to_string()))?;
            if time > now {
                return Err(spine.bad(
                    row,
                    time_column,
                    format!(
                        "{} is in the future: no feature can be known there yet",
                        time.to_rfc3339()
                    ),
                ));
            }
            times.push(time);
        }
        spine.times = times;
        Ok(spine)
    }

    /// Row `row`'s history cut-off, when it has one not after its time.
    pub fn cut_off(&self, row: usize) -> Option<Timestamp> {
        self.history_until
            .get(row)
            .copied()
            .flatten()
            .filter(|until| *until <= self.times[row])
    }

    pub fn len(&self) -> usize {
        self.batch.num_rows()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entity ids in column `join_key` (read once, then kept), typed by `key_type`: text
    /// or integers, never null, integers only for an `int64` key.
    pub fn keys(
        &mut self,
        join_key: &str,
        key_type: KeyType,
    ) -> Result<Arc<[EntityId]>, OfflineError> {
        if !self.keys.contains_key(join_key) {
            let column = self.column(join_key, "the join key of a requested group")?;
            let mut ids = Vec::with_capacity(column.len());
            for row in 0..column.len() {
                let raw = match self.cell(column.as_ref(), row, join_key)? {
                    Value::String(s) => s,
                    Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
                    other => {
                        return Err(self.bad(
                            row,
                            join_key,
                            format!("{other} is not an entity id: use text or integers"),
                        ))
                    }
                };
                if key_type == KeyType::Int64 && raw.parse::<i64>().is_err() {
                    return Err(self.bad(
                        row,
                        join_key,
                        format!("{raw:?} is not an int64, the entity's key type"),
                    ));
                }
                ids.push(EntityId::new(&raw).map_err(|e| self.bad(row, join_key, e.to_string()))?);
            }
            self.keys.insert(join_key.to_string(), ids.into());
        }
        Ok(self.keys[join_key].clone())
    }

    fn column(&self, name: &str, what: &str) -> Result<Arc<dyn Array>, OfflineError> {
        self.batch.column_by_name(name).cloned().ok_or_else(|| {
            let names: Vec<_> = self
                .batch
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            OfflineError::Request(format!(
                "{}: no column {name:?} ({what}); its columns are {}",
                self.file,
                names.join(", ")
            ))
        })
    }

    fn cell(&self, column: &dyn Array, row: usize, name: &str) -> Result<Value, OfflineError> {
        match cells::to_json(column, row) {
            Ok(Value::Null) => Err(self.bad(row, name, "is empty".into())),
            Ok(v) => Ok(v),
            Err(e) => Err(self.bad(row, name, e)),
        }
    }

    fn bad(&self, row: usize, column: &str, message: String) -> OfflineError {
        OfflineError::SpineValue {
            file: self.file.clone(),
            row: row + 1,
            column: column.to_string(),
            message,
        }
    }
}
