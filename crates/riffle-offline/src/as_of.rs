//! Groups without a source at past instants: an as-of join against the group's row history
//! (`[[feature_groups]] offline`: the join key, `event_timestamp` and the group's features,
//! what `riffle load` takes plus the time each row became true).
//!
//! At spine time `t` the answer is the newest row with `event_timestamp` ≤ `t` (of rows at
//! one time, the last read, as a later load overwrites an earlier one), as if every row had
//! been loaded at its own time: older than the group's `ttl` → gone (`missing`); else aged
//! from its event time by the group's SLOs (`fresh`, `stale`, `expired`), as serve ages a
//! group without a source.

use datafusion::arrow::array::ArrayRef;
use datafusion::prelude::SessionContext;
use riffle_core::{EntityId, FeatureValue, Timestamp};
use riffle_ingest::bulk_load::EVENT_TIMESTAMP;
use riffle_ingest::decode::Rejection;
use riffle_registry::{Entity, FeatureGroup, KeyType, Registry};

use crate::cores;
use crate::error::OfflineError;
use crate::events::BadRows;
use crate::location;
use crate::point::Point;
use crate::read;
use crate::typed_cells;

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
    /// row whose values do not fit is counted and listed, never used. A file's rows are
    /// typed on every core ([`typed_cells`]), then kept in the order read.
    pub async fn read(
        ctx: &SessionContext,
        registry: &Registry,
        group: &FeatureGroup,
        location: &str,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<GroupHistory, OfflineError> {
        let entity = registry.entity_of(group);
        let (_, files) = location::list(ctx, location).await?;
        let threads = cores::count();
        let mut rows = Vec::new();
        let mut bad = BadRows::default();
        for file in &files {
            let batches = read::batches(ctx, file).await?;
            let mut columns = Vec::with_capacity(batches.len());
            for batch in &batches {
                let column = |name: &str| {
                    batch.column_by_name(name).cloned().ok_or_else(|| {
                        OfflineError::read(
                            &file.url,
                            format!("no column {name:?}: the history of group {:?} has the join key, {EVENT_TIMESTAMP} and every feature", group.name),
                        )
                    })
                };
                columns.push(Columns {
                    keys: column(&entity.join_key)?,
                    times: column(EVENT_TIMESTAMP)?,
                    features: group
                        .features
                        .iter()
                        .map(|f| column(&f.name))
                        .collect::<Result<Vec<_>, _>>()?,
                });
            }
            let reader = RowReader { entity, group };
            let read = on_threads(&columns, threads, |c, i| reader.row(c, i));
            for (row_number, read) in (1usize..).zip(read) {
                match read {
                    Ok(row) => rows.push(row),
                    Err(message) => bad.add(
                        || format!("{} row {row_number}", file.url),
                        Rejection::SchemaMismatch(message),
                    ),
                }
            }
            progress(file.size);
        }
        // Stable: of rows of one entity at one time, the last read stays last.
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

/// One record batch's columns of a group's history.
struct Columns {
    keys: ArrayRef,
    times: ArrayRef,
    features: Vec<ArrayRef>,
}

/// How a row of a group's history is read.
struct RowReader<'a> {
    entity: &'a Entity,
    group: &'a FeatureGroup,
}

impl RowReader<'_> {
    /// Row `i` of `c`, or why it cannot be used.
    fn row(&self, c: &Columns, i: usize) -> Result<HistoryRow, String> {
        let (entity, group) = (self.entity, self.group);
        let id = typed_cells::id(c.keys.as_ref(), i).map_err(|cell| match cell {
            Ok(other) => format!("{:?}: {other} is not an entity id", entity.join_key),
            Err(unreadable) => unreadable,
        })?;
        if entity.key_type == KeyType::Int64 && id.parse::<i64>().is_err() {
            return Err(format!("{:?}: {id:?} is not an int64", entity.join_key));
        }
        let entity_id = EntityId::new(&id).map_err(|e| format!("{:?}: {e}", entity.join_key))?;
        let time = typed_cells::time(c.times.as_ref(), i)?
            .map_err(|e| format!("{EVENT_TIMESTAMP:?}: {e}"))?;
        let values = group
            .features
            .iter()
            .zip(&c.features)
            .map(|(f, column)| {
                typed_cells::value(column.as_ref(), i, f.ty)?
                    .map_err(|e| format!("{:?}: {e}", f.name))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(HistoryRow {
            entity: entity_id,
            time,
            values,
        })
    }
}

/// `read(batch, row)` of every row of `batches`, in order, the rows split among up to
/// `threads` threads in runs of whole batches.
fn on_threads<T: Send>(
    batches: &[Columns],
    threads: usize,
    read: impl Fn(&Columns, usize) -> T + Sync,
) -> Vec<T> {
    let len = |c: &Columns| c.keys.len();
    let total: usize = batches.iter().map(len).sum();
    // Cut into runs of about total / threads rows each.
    let mut runs = Vec::with_capacity(threads);
    let (mut start, mut rows) = (0, 0);
    for (b, c) in batches.iter().enumerate() {
        rows += len(c);
        if rows * threads >= total * (runs.len() + 1) || b + 1 == batches.len() {
            runs.push(&batches[start..=b]);
            start = b + 1;
        }
    }
    cores::in_order(runs, |run: &[Columns]| -> Vec<T> {
        run.iter()
            .flat_map(|c| (0..len(c)).map(|i| read(c, i)))
            .collect()
    })
    .into_iter()
    .flatten()
    .collect()
}
