//! The feature log's file layout: one row per value served to a sampled entity, with typed
//! columns ([`schema`]), and the Arrow batch built from [`Record`]s ([`batch`]).
//!
//! | column | type | null | meaning |
//! |---|---|---|---|
//! | `request_time` | timestamp(ms, UTC) | no | the instant the values were judged at |
//! | `endpoint` | utf8 | no | route template that answered (`/v1/features`, `/get-online-features`, …) |
//! | `feature_service` | utf8 | yes | the feature service the request named |
//! | `entity` | utf8 | no | entity name |
//! | `join_key` | utf8 | no | the entity's join key |
//! | `entity_id` | utf8 | no | the id served |
//! | `group` | utf8 | no | feature group |
//! | `group_version` | int64 | no | the group's version |
//! | `group_status` | utf8 | no | the group's status (`fresh`, `stale`, `expired`, `missing`, `unavailable`) |
//! | `event_timestamp` | timestamp(ms, UTC) | yes | event time of the stored row served (null: no row) |
//! | `age_ms` | int64 | yes | the row's age as served, from its basis (plus a replica's lag) |
//! | `freshness_basis` | utf8 | yes | what the age was measured from: `watermark`, `partition_watermark`, `last_watermark` or `event_ts` |
//! | `watermark` | timestamp(ms, UTC) | yes | the watermark the group was served at, a row read from the cache at the one it was read at (null when aged by event time); for a group served `missing`, the watermark its answer was read at |
//! | `feature` | utf8 | no | feature name |
//! | `feature_type` | utf8 | no | its declared type (`int64`, `float64`, `bool`, `string`, `float_vector[N]`) |
//! | `value` | utf8 | no | the value served, as JSON text, exactly as the HTTP answer wrote it |
//! | `status` | utf8 | no | the value's status (`fresh`, `stale`, `expired`, `missing`, `null`, `unavailable`) |
//!
//! **Why the value is JSON text.** Rows are long (one per value), so one column holds
//! values of every feature type; typed columns would need one sparse column per type (or
//! per feature, changing the schema with the registry). JSON text is the value exactly as
//! the client read it, its type is in `feature_type`, and `FeatureValue::from_json` types
//! it back. Repeated strings cost little: Parquet dictionary-encodes them.

use std::sync::{Arc, LazyLock};

use arrow_array::builder::{Int64Builder, StringBuilder, TimestampMillisecondBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};
use riffle_registry::Registry;

use super::record::Record;
use crate::watermarks::Basis;

fn time() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let utf8 = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
    Arc::new(Schema::new(vec![
        Field::new("request_time", time(), false),
        utf8("endpoint", false),
        utf8("feature_service", true),
        utf8("entity", false),
        utf8("join_key", false),
        utf8("entity_id", false),
        utf8("group", false),
        Field::new("group_version", DataType::Int64, false),
        utf8("group_status", false),
        Field::new("event_timestamp", time(), true),
        Field::new("age_ms", DataType::Int64, true),
        utf8("freshness_basis", true),
        Field::new("watermark", time(), true),
        utf8("feature", false),
        utf8("feature_type", false),
        utf8("value", false),
        utf8("status", false),
    ]))
});

/// The schema of every feature-log file.
pub fn schema() -> SchemaRef {
    SCHEMA.clone()
}

/// The rows of `records`, in order, as one batch.
pub fn batch(registry: &Registry, records: &[Record]) -> Result<RecordBatch, ArrowError> {
    let rows: usize = records.iter().map(|r| r.rows() as usize).sum();
    let times = || TimestampMillisecondBuilder::with_capacity(rows).with_timezone("UTC");
    let strings = || StringBuilder::with_capacity(rows, rows * 8);
    let mut request_time = times();
    let mut endpoint = strings();
    let mut service = strings();
    let mut entity = strings();
    let mut join_key = strings();
    let mut entity_id = strings();
    let mut group = strings();
    let mut group_version = Int64Builder::with_capacity(rows);
    let mut group_status = strings();
    let mut event_ts = times();
    let mut age_ms = Int64Builder::with_capacity(rows);
    let mut basis = strings();
    let mut watermark = times();
    let mut feature = strings();
    let mut feature_type = strings();
    let mut value = strings();
    let mut status = strings();
    let mut json = Vec::with_capacity(64);
    for r in records {
        let e = &registry.entities[r.entity];
        for g in &r.groups {
            let fg = &registry.groups[g.group];
            for f in &g.features {
                request_time.append_value(r.at.millis());
                endpoint.append_value(r.endpoint);
                service.append_option(r.service.as_deref());
                entity.append_value(&e.name);
                join_key.append_value(&e.join_key);
                entity_id.append_value(r.id.as_str());
                group.append_value(&fg.name);
                group_version.append_value(i64::from(fg.version));
                group_status.append_value(g.status.as_str());
                event_ts.append_option(g.event_ts.map(|t| t.millis()));
                age_ms.append_option(g.age_ms.map(|a| i64::try_from(a).unwrap_or(i64::MAX)));
                // A basis without a row aged nothing: only its watermark is kept.
                basis.append_option(g.event_ts.and(g.basis).map(Basis::as_str));
                watermark.append_option(g.basis.and_then(Basis::watermark).map(|t| t.millis()));
                let declared = &fg.features[f.feature];
                feature.append_value(&declared.name);
                feature_type.append_value(declared.ty.to_string());
                json.clear();
                // A value always serialises (non-finite floats as null, as the API writes).
                serde_json::to_writer(&mut json, &f.value)
                    .map_err(|e| ArrowError::ExternalError(Box::new(e)))?;
                value.append_value(String::from_utf8_lossy(&json));
                status.append_value(f.status.as_str());
            }
        }
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(request_time.finish()),
        Arc::new(endpoint.finish()),
        Arc::new(service.finish()),
        Arc::new(entity.finish()),
        Arc::new(join_key.finish()),
        Arc::new(entity_id.finish()),
        Arc::new(group.finish()),
        Arc::new(group_version.finish()),
        Arc::new(group_status.finish()),
        Arc::new(event_ts.finish()),
        Arc::new(age_ms.finish()),
        Arc::new(basis.finish()),
        Arc::new(watermark.finish()),
        Arc::new(feature.finish()),
        Arc::new(feature_type.finish()),
        Arc::new(value.finish()),
        Arc::new(status.finish()),
    ];
    RecordBatch::try_new(schema(), columns)
}
