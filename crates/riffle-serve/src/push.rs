//! The write path shared by `POST /push`, `POST /write-to-online-store` and `POST /v1/push`:
//! typed rows from JSON, checked against the group's schema, written in one store call,
//! and the written (group, id) entries dropped from the hot cache so the next read sees
//! them (a cached "missing" would otherwise hide a cold-start entity's first push).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::NaiveDateTime;
use riffle_auth::Caller;
use riffle_core::{EntityId, FeatureValue, Timestamp};
use riffle_registry::{FeatureGroup, Registry};
use riffle_store::{GroupRow, RowWrite};
use serde_json::Value;

use crate::error::ApiError;
use crate::ids;
use crate::metrics::OpLabels;
use crate::state::AppState;

/// Columns Feast sends that are not features: the event time and the created time.
const EVENT_TS_COLUMNS: [&str; 2] = ["event_timestamp", "event_time"];
const IGNORED_COLUMNS: [&str; 2] = ["created", "created_timestamp"];

/// Reads an event timestamp: RFC 3339, pandas' `2026-11-26 13:43:23+00:00`, a naive
/// ISO time (`2026-11-26T13:43:23`, as Feast's remote store sends it, taken as UTC), or
/// epoch milliseconds.
pub fn parse_event_ts(value: &Value) -> Result<Timestamp, ApiError> {
    if let Ok(ts) = Timestamp::from_json(value) {
        return Ok(ts);
    }
    if let Value::String(text) = value {
        for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
            if let Ok(naive) = NaiveDateTime::parse_from_str(text.trim(), format) {
                if let Ok(ts) = Timestamp::from_millis(naive.and_utc().timestamp_millis()) {
                    return Ok(ts);
                }
            }
        }
    }
    Err(ApiError::BadValue(format!(
        "event timestamp {value} is neither RFC 3339 nor epoch milliseconds"
    )))
}

fn value_of(
    group: &FeatureGroup,
    feature: usize,
    row: usize,
    v: &Value,
) -> Result<FeatureValue, ApiError> {
    let f = &group.features[feature];
    FeatureValue::from_json(f.ty, v)
        .map_err(|e| ApiError::BadValue(format!("{}:{} row {row}: {e}", group.name, f.name)))
}

/// Rows from a column-oriented frame (`{"user_id": [...], "event_timestamp": [...],
/// "tx_count_1h": [...]}`), as Feast's `/push` and `/write-to-online-store` send them.
/// Every feature of the group must be present; unknown columns are errors.
pub fn rows_from_columns(
    registry: &Registry,
    group: &FeatureGroup,
    df: &HashMap<String, Vec<Value>>,
) -> Result<Vec<RowWrite>, ApiError> {
    let entity = registry.entity_of(group);
    let keys = df.get(&entity.join_key).ok_or_else(|| {
        ApiError::BadValue(format!(
            "column {:?} (the join key) is missing",
            entity.join_key
        ))
    })?;
    let n = keys.len();
    for (name, column) in df {
        if column.len() != n {
            return Err(ApiError::BadValue(format!(
                "column {name:?} has {} values, the join key column has {n}",
                column.len()
            )));
        }
        let known = name == &entity.join_key
            || EVENT_TS_COLUMNS.contains(&name.as_str())
            || IGNORED_COLUMNS.contains(&name.as_str())
            || group.feature_index(name).is_some();
        if !known {
            return Err(ApiError::UnknownFeature {
                group: group.name.clone(),
                feature: name.clone(),
            });
        }
    }
    let columns: Vec<&Vec<Value>> = group
        .features
        .iter()
        .map(|f| {
            df.get(&f.name).ok_or_else(|| {
                ApiError::BadValue(format!(
                    "column {:?} of group {} is missing",
                    f.name, group.name
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    let times = EVENT_TS_COLUMNS.iter().find_map(|c| df.get(*c));
    let now = Timestamp::now();
    (0..n)
        .map(|row| {
            let id = ids::from_json(entity, row, &keys[row])?;
            let values = columns
                .iter()
                .enumerate()
                .map(|(f, col)| value_of(group, f, row, &col[row]))
                .collect::<Result<_, _>>()?;
            stamped_row(id, group, times.map(|t| &t[row]), now, values)
        })
        .collect()
}

/// One row of a `/v1/push` body.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct V1Row {
    pub id: Value,
    #[serde(default)]
    pub event_timestamp: Option<Value>,
    pub features: HashMap<String, Value>,
}

/// Rows from `/v1/push`: every feature of the group must be given.
pub fn rows_from_v1(
    registry: &Registry,
    group: &FeatureGroup,
    rows: &[V1Row],
) -> Result<Vec<RowWrite>, ApiError> {
    let entity = registry.entity_of(group);
    let now = Timestamp::now();
    rows.iter()
        .enumerate()
        .map(|(i, r)| {
            let id = ids::from_json(entity, i, &r.id)?;
            if let Some(unknown) = r.features.keys().find(|k| group.feature_index(k).is_none()) {
                return Err(ApiError::UnknownFeature {
                    group: group.name.clone(),
                    feature: unknown.clone(),
                });
            }
            let values = group
                .features
                .iter()
                .enumerate()
                .map(|(f, feat)| match r.features.get(&feat.name) {
                    Some(v) => value_of(group, f, i, v),
                    None => Err(ApiError::BadValue(format!(
                        "row {i}: feature {:?} of group {} is missing",
                        feat.name, group.name
                    ))),
                })
                .collect::<Result<_, _>>()?;
            stamped_row(id, group, r.event_timestamp.as_ref(), now, values)
        })
        .collect()
}

/// One row written now, true as of its `event_timestamp` (now when absent or null).
fn stamped_row(
    id: EntityId,
    group: &FeatureGroup,
    event_timestamp: Option<&Value>,
    now: Timestamp,
    values: Vec<FeatureValue>,
) -> Result<RowWrite, ApiError> {
    let event_ts = match event_timestamp {
        None | Some(Value::Null) => now,
        Some(v) => parse_event_ts(v)?,
    };
    Ok(RowWrite {
        id,
        group: group.id,
        row: GroupRow {
            event_ts,
            computed_at: now,
            values,
            partition: None,
        },
    })
}

/// Writes rows in one store call and drops them from the hot cache. Returns rows written.
/// The caller may write rows of `group`, or the request is refused (403) before its rows
/// are read.
pub fn may_write(state: &AppState, caller: Caller, group: &FeatureGroup) -> Result<(), ApiError> {
    state
        .gate
        .may_write(caller, group.id)
        .map_err(ApiError::Denied)
}

/// Writes `rows` of `group` for `caller` (already allowed by [`may_write`]) in one store
/// call, drops them from the hot cache, and audits the write.
pub async fn write(
    state: &AppState,
    caller: Caller,
    group: &FeatureGroup,
    rows: Vec<RowWrite>,
) -> Result<usize, ApiError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let store = state.reader.store();
    let started = tokio::time::Instant::now();
    let result = store.write(&rows).await;
    state
        .metrics
        .store_duration
        .get_or_create(&OpLabels { op: "write" })
        .observe(started.elapsed().as_secs_f64());
    if let Err(e) = result {
        state.metrics.store_error("write", &e);
        tracing::warn!(kind = e.kind(), error = %e, "store write failed");
        return Err(ApiError::WriteFailed(e.to_string()));
    }
    for r in &rows {
        state
            .reader
            .cache
            .invalidate(&(r.group, Arc::from(r.id.as_str())));
        state.metrics.groups[r.group].written.inc();
    }
    state
        .gate
        .audit_done(caller, "write", &group.name, rows.len() as u64);
    Ok(rows.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn event_times_in_every_form_feast_sends() {
        let want = Timestamp::parse("2026-11-26T13:43:23Z").unwrap();
        for v in [
            json!("2026-11-26T13:43:23Z"),
            json!("2026-11-26 13:43:23+00:00"),
            json!("2026-11-26T13:43:23"),
            json!("2026-11-26T13:43:23.000000"),
            json!(want.millis()),
        ] {
            assert_eq!(parse_event_ts(&v).unwrap(), want, "{v}");
        }
        assert!(parse_event_ts(&json!("yesterday")).is_err());
    }
}
