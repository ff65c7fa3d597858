//! Groups without a source at past instants: an as-of join against the group's row history
//! (`[[feature_groups]] offline`: the join key, `event_timestamp` and the group's features,
//! what `riffle load` takes plus the time each row became true).
//!
//! At spine time `t` the answer is the newest row with `event_timestamp` ≤ `t` (of rows at
//! one time, the last read, as a later load overwrites an earlier one), as if every row had
//! been loaded at its own time: older than the group's `ttl` → gone (`missing`); else aged
//! from its event time by the group's SLOs (`fresh`, `stale`, `expired`), as serve ages a
//! group without a source.
//!
//! The history is kept flat, not as a row object per row: each entity id is numbered once,
//! the rows' times and values lie in two arrays sorted by (entity, time, order read), and an
//! answer is the index of a history row ([`Joined`]), its values read from here when the
//! training set is written rather than copied per spine row.

use std::collections::HashMap;
use std::ops::Range;

use datafusion::arrow::array::ArrayRef;
use datafusion::prelude::SessionContext;
use riffle_core::{EntityId, FeatureValue, Timestamp, ValueStatus};
use riffle_ingest::bulk_load::EVENT_TIMESTAMP;
use riffle_ingest::decode::Rejection;
use riffle_registry::{Entity, FeatureGroup, KeyType, Registry};

use crate::cores;
use crate::error::OfflineError;
use crate::events::BadRows;
use crate::location;
use crate::read;
use crate::typed_cells;

/// Rows read but not yet sorted: row `i` is `ids[i]` at `times[i]`, its values
/// `values[i * width..][..width]`.
#[derive(Debug, Default)]
pub struct Rows {
    pub ids: Vec<EntityId>,
    pub times: Vec<Timestamp>,
    pub values: Vec<FeatureValue>,
}

impl Rows {
    /// Appends one row (its values as many as the group has features).
    pub fn push(
        &mut self,
        id: EntityId,
        time: Timestamp,
        values: impl IntoIterator<Item = FeatureValue>,
    ) {
        self.ids.push(id);
        self.times.push(time);
        self.values.extend(values);
    }

    fn append(&mut self, other: Rows) {
        self.ids.extend(other.ids);
        self.times.extend(other.times);
        self.values.extend(other.values);
    }
}

/// A group's row history, sorted by entity then time (then the order read).
pub struct GroupHistory {
    /// Entity id → the range of its rows.
    entities: HashMap<EntityId, Range<usize>>,
    times: Vec<Timestamp>,
    values: Vec<FeatureValue>,
    /// Values per row: the group's features.
    width: usize,
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
        let mut rows = Rows::default();
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
            for run in read_runs(&columns, threads, &reader) {
                for (row, message) in run.bad {
                    bad.add(
                        || format!("{} row {}", file.url, row + 1),
                        Rejection::SchemaMismatch(message),
                    );
                }
                rows.append(run.rows);
            }
            progress(file.size);
        }
        let mut history = GroupHistory::sorted(rows, group.features.len());
        history.files = files.len();
        history.bad = bad;
        Ok(history)
    }

    /// `rows` (in the order read, `width` values each) sorted by entity, then time, then
    /// the order read: of rows of one entity at one time, the last read stays last.
    pub fn sorted(rows: Rows, width: usize) -> GroupHistory {
        let Rows {
            ids,
            times,
            mut values,
        } = rows;
        // Each entity numbered once, in the order first met.
        let mut numbers: HashMap<EntityId, usize> = HashMap::new();
        let mut counts: Vec<usize> = Vec::new();
        let entity_of: Vec<usize> = ids
            .into_iter()
            .map(|id| {
                let next = numbers.len();
                let n = *numbers.entry(id).or_insert(next);
                if n == counts.len() {
                    counts.push(0);
                }
                counts[n] += 1;
                n
            })
            .collect();
        // A counting sort by entity keeps the order read; then each entity's rows by time
        // (stable, so the order read breaks ties).
        let mut starts = Vec::with_capacity(counts.len() + 1);
        let mut at = 0;
        for count in &counts {
            starts.push(at);
            at += count;
        }
        starts.push(at);
        let mut order = vec![0usize; entity_of.len()];
        let mut next = starts.clone();
        for (row, &n) in entity_of.iter().enumerate() {
            order[next[n]] = row;
            next[n] += 1;
        }
        for n in 0..counts.len() {
            order[starts[n]..starts[n + 1]].sort_by_key(|&row| times[row]);
        }
        let sorted_times = order.iter().map(|&row| times[row]).collect();
        let mut sorted_values = Vec::with_capacity(values.len());
        for &row in &order {
            let cells = &mut values[row * width..(row + 1) * width];
            sorted_values.extend(
                cells
                    .iter_mut()
                    .map(|v| std::mem::replace(v, FeatureValue::Null)),
            );
        }
        GroupHistory {
            entities: numbers
                .into_iter()
                .map(|(id, n)| (id, starts[n]..starts[n + 1]))
                .collect(),
            times: sorted_times,
            values: sorted_values,
            width,
            files: 0,
            bad: BadRows::default(),
        }
    }

    /// How many rows the history has.
    pub fn len(&self) -> usize {
        self.times.len()
    }

    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }

    /// The values of history row `row`.
    pub fn values(&self, row: usize) -> &[FeatureValue] {
        &self.values[row * self.width..(row + 1) * self.width]
    }

    /// What serve would have read for `group` at `t` for `entity`, from the rows a pipeline
    /// had loaded by `until` (every row, without one): the newest with time ≤ `t`, aged from
    /// its time.
    pub fn as_of(
        &self,
        group: &FeatureGroup,
        entity: &EntityId,
        t: Timestamp,
        until: Option<Timestamp>,
    ) -> Joined {
        let Some(rows) = self.entities.get(entity) else {
            return Joined::MISSING;
        };
        let times = &self.times[rows.clone()];
        let applied = until.map_or(times.len(), |until| {
            times.partition_point(|&time| time <= until)
        });
        let newest = times[..applied].partition_point(|&time| time <= t);
        let Some(i) = newest.checked_sub(1) else {
            return Joined::MISSING;
        };
        let age = times[i].age_at(t);
        if !group.row_alive(age) {
            return Joined::MISSING;
        }
        Joined {
            status: group.status_at_age(age),
            row: Some(rows.start + i),
        }
    }
}

/// What one spine row found in a group's history: a history row and its status, or none.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Joined {
    /// `fresh`, `stale` or `expired` for a row; `missing` for none.
    pub status: ValueStatus,
    /// The history row ([`GroupHistory::values`]).
    pub row: Option<usize>,
}

impl Joined {
    pub const MISSING: Joined = Joined {
        status: ValueStatus::Missing,
        row: None,
    };
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
    /// Row `i` of `c` appended to `rows`, or why it cannot be used.
    fn read(&self, c: &Columns, i: usize, rows: &mut Rows) -> Result<(), String> {
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
        let before = rows.values.len();
        for (f, column) in group.features.iter().zip(&c.features) {
            let why = match typed_cells::value(column.as_ref(), i, f.ty) {
                Ok(Ok(v)) => {
                    rows.values.push(v);
                    continue;
                }
                Ok(Err(e)) => format!("{:?}: {e}", f.name),
                Err(unreadable) => unreadable,
            };
            rows.values.truncate(before);
            return Err(why);
        }
        rows.ids.push(entity_id);
        rows.times.push(time);
        Ok(())
    }
}

/// A run of a file's rows read on one thread: the rows that could be used, and those that
/// could not (row index in the file, why).
struct Run {
    rows: Rows,
    bad: Vec<(usize, String)>,
}

/// Every row of `batches` read by `reader`, in order, the rows split among up to `threads`
/// threads in runs of whole batches.
fn read_runs(batches: &[Columns], threads: usize, reader: &RowReader<'_>) -> Vec<Run> {
    let len = |c: &Columns| c.keys.len();
    let total: usize = batches.iter().map(len).sum();
    // Cut into runs of about total / threads rows each, each with its first row's index.
    let mut runs = Vec::with_capacity(threads);
    let (mut start, mut rows, mut first_row) = (0, 0, 0);
    for (b, c) in batches.iter().enumerate() {
        rows += len(c);
        if rows * threads >= total * (runs.len() + 1) || b + 1 == batches.len() {
            runs.push((first_row, &batches[start..=b]));
            start = b + 1;
            first_row = rows;
        }
    }
    cores::in_order(runs, |(first_row, run): (usize, &[Columns])| {
        let mut out = Run {
            rows: Rows::default(),
            bad: Vec::new(),
        };
        let mut row = first_row;
        for c in run {
            for i in 0..len(c) {
                if let Err(message) = reader.read(c, i, &mut out.rows) {
                    out.bad.push((row, message));
                }
                row += 1;
            }
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Registry {
        Registry::from_toml(
            r#"
[[entities]]
name = "user"

[[feature_groups]]
name = "profile"
entity = "user"
ttl = "1h"
freshness_slo = "10m"
staleness_limit = "30m"
[[feature_groups.features]]
name = "tier"
type = "int64"
default = 0
"#,
        )
        .unwrap()
    }

    fn id(s: &str) -> EntityId {
        EntityId::new(s).unwrap()
    }

    const MIN: i64 = 60_000;

    #[test]
    fn the_newest_row_at_or_before_the_instant_answers_and_ties_go_to_the_last_read() {
        let registry = registry();
        let group = registry.group("profile").unwrap();
        let mut rows = Rows::default();
        // Minutes after an hour into the epoch.
        let at = |minutes: i64| Timestamp::from_millis((60 + minutes) * MIN).unwrap();
        rows.push(id("u1"), at(20), [FeatureValue::Int64(2)]);
        rows.push(id("u2"), at(0), [FeatureValue::Int64(9)]);
        rows.push(id("u1"), at(0), [FeatureValue::Int64(1)]);
        rows.push(id("u1"), at(20), [FeatureValue::Int64(3)]);
        let history = GroupHistory::sorted(rows, 1);
        assert_eq!(history.len(), 4);
        let value = |j: Joined| j.row.map(|r| history.values(r)[0].clone());
        let u1 = id("u1");
        // Before any row: missing.
        let before = history.as_of(group, &u1, at(-1), None);
        assert_eq!(before, Joined::MISSING);
        // Within the freshness SLO of the first row.
        let early = history.as_of(group, &u1, at(5), None);
        assert_eq!(
            (early.status, value(early)),
            (ValueStatus::Fresh, Some(FeatureValue::Int64(1)))
        );
        // Stale, then the two rows at 20 min: the one read last.
        let stale = history.as_of(group, &u1, at(15), None);
        assert_eq!(stale.status, ValueStatus::Stale);
        let tie = history.as_of(group, &u1, at(20), None);
        assert_eq!(
            (tie.status, value(tie)),
            (ValueStatus::Fresh, Some(FeatureValue::Int64(3)))
        );
        // A pipeline that had loaded rows only until 10 min still serves the first row.
        let behind = history.as_of(group, &u1, at(25), Some(at(10)));
        assert_eq!(value(behind), Some(FeatureValue::Int64(1)));
        // Past the ttl: gone. An unknown entity: missing.
        let gone = history.as_of(group, &u1, at(90), None);
        assert_eq!(gone, Joined::MISSING);
        assert_eq!(
            history.as_of(group, &id("u3"), at(0), None),
            Joined::MISSING
        );
        let u2 = history.as_of(group, &id("u2"), at(1), None);
        assert_eq!(value(u2), Some(FeatureValue::Int64(9)));
    }
}
