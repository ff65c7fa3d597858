//! Groups without a source at past instants: an as-of join against the group's row history
//! (`[[feature_groups]] offline`: the join key, `event_timestamp` and the group's features,
//! what `riffle load` takes plus the time each row became true).
//!
//! At spine time `t` the answer is the newest row with `event_timestamp` ≤ `t` (of rows at
//! one time, the last read, as a later load overwrites an earlier one), as if every row had
//! been loaded at its own time: older than the group's `ttl` → gone (`missing`); else aged
//! from its event time by the group's SLOs (`fresh`, `stale`, `expired`), as serve ages a
//! group without a source.

use datafusion::prelude::SessionContext;
use riffle_core::{EntityId, FeatureValue, Timestamp};
use riffle_ingest::bulk_load::EVENT_TIMESTAMP;
use riffle_ingest::decode::Rejection;
use riffle_registry::{FeatureGroup, KeyType, Registry};
use serde_json::Value;

use crate::cells;
use crate::error::OfflineError;
use crate::events::BadRows;
use crate::location;
use crate::point::Point;
use crate::read;

/// One row of a group's history.
#[derive(Debug, Clone)]
pub struct HistoryRow {
    pub entity: EntityId,
    pub time: Timestamp,
    pub values: Vec<FeatureValue>,
}

/// A group's row history, sorted by entity then time (then the order read).
pub struct GroupHistory {
    pub rows: Vec<HistoryRow>,
    pub files: usize,
    pub bad: BadRows,
}

impl GroupHistory {
    /// Reads every file at `location` as rows of `group`. A file without the join key,
    /// `event_timestamp` or one of the group's features is an error naming what it lacks; a
    /// row whose values do not fit is counted and listed, never used.
    pub async fn read(
        ctx: &SessionContext,
        registry: &Registry,
        group: &FeatureGroup,
        location: &str,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<GroupHistory, OfflineError> {
        let entity = registry.entity_of(group);
        let (_, files) = location::list(ctx, location).await?;
        let mut rows = Vec::new();
        let mut bad = BadRows::default();
        for file in &files {
            let mut row_number = 0usize;
            for batch in read::batches(ctx, file).await? {
                let column = |name: &str| {
                    batch.column_by_name(name).cloned().ok_or_else(|| {
                        OfflineError::read(
                            &file.url,
                            format!("no column {name:?}: the history of group {:?} has the join key, {EVENT_TIMESTAMP} and every feature", group.name),
                        )
                    })
                };
                let keys = column(&entity.join_key)?;
                let times = column(EVENT_TIMESTAMP)?;
                let features = group
                    .features
                    .iter()
                    .map(|f| column(&f.name))
                    .collect::<Result<Vec<_>, _>>()?;
                for i in 0..batch.num_rows() {
                    row_number += 1;
                    let read_row = || -> Result<HistoryRow, String> {
                        let id = match cells::to_json(keys.as_ref(), i)? {
                            Value::String(s) => s,
                            Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
                            other => {
                                return Err(format!(
                                    "{:?}: {other} is not an entity id",
                                    entity.join_key
                                ))
                            }
                        };
                        if entity.key_type == KeyType::Int64 && id.parse::<i64>().is_err() {
                            return Err(format!("{:?}: {id:?} is not an int64", entity.join_key));
                        }
                        let entity_id = EntityId::new(&id)
                            .map_err(|e| format!("{:?}: {e}", entity.join_key))?;
                        let time = Timestamp::from_json(&cells::to_json(times.as_ref(), i)?)
                            .map_err(|e| format!("{EVENT_TIMESTAMP:?}: {e}"))?;
                        let values = group
                            .features
                            .iter()
                            .zip(&features)
                            .map(|(f, c)| {
                                FeatureValue::from_json(f.ty, &cells::to_json(c.as_ref(), i)?)
                                    .map_err(|e| format!("{:?}: {e}", f.name))
                            })
                            .collect::<Result<Vec<_>, _>>()?;
                        Ok(HistoryRow {
                            entity: entity_id,
                            time,
                            values,
                        })
                    };
                    match read_row() {
                        Ok(row) => rows.push(row),
                        Err(message) => bad.add(
                            || format!("{} row {row_number}", file.url),
                            Rejection::SchemaMismatch(message),
                        ),
                    }
                }
            }
            progress(file.size);
        }
        rows.sort_by(|a, b| a.entity.cmp(&b.entity).then(a.time.cmp(&b.time)));
        Ok(GroupHistory {
            rows,
            files: files.len(),
            bad,
        })
    }

    /// The rows of `entity`, sorted by time.
    pub fn of(&self, entity: &EntityId) -> &[HistoryRow] {
        let start = self.rows.partition_point(|r| r.entity < *entity);
        let end = start + self.rows[start..].partition_point(|r| r.entity == *entity);
        &self.rows[start..end]
    }
}

/// What serve would have read for `group` at `t` from one entity's `rows` (sorted by time).
pub fn as_of(group: &FeatureGroup, rows: &[HistoryRow], t: Timestamp) -> Point {
    let newest = rows.partition_point(|r| r.time <= t);
    let Some(row) = newest.checked_sub(1).map(|i| &rows[i]) else {
        return Point::MISSING;
    };
    let age = row.time.age_at(t);
    if !group.row_alive(age) {
        return Point::MISSING;
    }
    Point::row(group.status_at_age(age), row.values.clone())
}
