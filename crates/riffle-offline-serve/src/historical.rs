//! `get_historical_features`: Feast's entity frame is a spine, answered by the training-set
//! code (`riffle_offline::answer`), so a Feast user gets exactly the values `riffle
//! training-set` writes, and `riffle serve` would have served, at every row's instant.

use std::collections::HashMap;

use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use riffle_core::Timestamp;
use riffle_offline::{FeatureRequest, OfflineError, Quiet, Selection, Spine};
use riffle_registry::Registry;

use crate::command::HistoricalFeatures;
use crate::error::Refusal;

/// What errors call the uploaded table.
const ENTITY_FRAME: &str = "the entity DataFrame";

/// Answers `request` for every row of `entities` (the client's entity frame), at `now`.
pub async fn answer(
    registry: &Registry,
    request: &HistoricalFeatures,
    entities: RecordBatch,
    now: Timestamp,
) -> Result<RecordBatch, Refusal> {
    if let Some(project) = &request.project {
        if *project != registry.project {
            return Err(Refusal::Request(format!(
                "the Feast project is {project:?} but this server answers Riffle project {:?}: \
                 name the project the same in feature_store.yaml",
                registry.project
            )));
        }
    }
    if request.entity_df_sql.is_some() {
        return Err(Refusal::Request(
            "the entity frame is a SQL query: Riffle takes a DataFrame of join keys and \
             event_timestamp"
                .into(),
        ));
    }
    if is_placeholder(&entities) {
        return Err(Refusal::Request(
            "no entity DataFrame: pass entity_df with join keys and event_timestamp".into(),
        ));
    }
    let time_column = timestamp_column(&entities)?;
    let spine = Spine::from_batch(ENTITY_FRAME, entities, &time_column, now)?;
    let features = FeatureRequest {
        selection: Selection::Features(request.feature_refs.clone()),
        with_status: false,
        full_feature_names: request.full_feature_names,
        events: HashMap::new(),
        history: HashMap::new(),
    };
    let (batch, summary) = riffle_offline::answer(registry, &features, spine, &Quiet).await?;
    tracing::info!(
        rows = summary.rows,
        features = summary.features,
        elapsed_ms = summary.elapsed_ms,
        "answered get_historical_features"
    );
    Ok(batch)
}

/// The table a Feast client uploads when it has no entity frame: one column `key`.
fn is_placeholder(entities: &RecordBatch) -> bool {
    let schema = entities.schema();
    schema.fields().len() == 1 && schema.field(0).name() == "key"
}

/// The entity frame's time column, found as Feast finds it: `event_timestamp` when there is
/// one, else the one column of a timestamp type.
fn timestamp_column(entities: &RecordBatch) -> Result<String, Refusal> {
    let schema = entities.schema();
    if schema.column_with_name("event_timestamp").is_some() {
        return Ok("event_timestamp".into());
    }
    let times: Vec<&String> = schema
        .fields()
        .iter()
        .filter(|f| matches!(f.data_type(), DataType::Timestamp(_, _)))
        .map(|f| f.name())
        .collect();
    match times.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(Refusal::Request(format!(
            "{ENTITY_FRAME} has no event_timestamp column and no column of a timestamp type"
        ))),
        many => Err(Refusal::Request(format!(
            "{ENTITY_FRAME} has no event_timestamp column and several timestamp columns ({}): \
             name one event_timestamp",
            many.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

impl From<OfflineError> for Refusal {
    fn from(e: OfflineError) -> Self {
        if e.is_usage() {
            Refusal::Request(e.to_string())
        } else {
            Refusal::Internal(e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray, TimestampNanosecondArray};
    use datafusion::arrow::datatypes::{Field, Schema};

    use super::*;

    fn frame(columns: &[(&str, ArrayRef)]) -> RecordBatch {
        let fields: Vec<Field> = columns
            .iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect();
        RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            columns.iter().map(|(_, a)| a.clone()).collect(),
        )
        .unwrap()
    }

    fn times() -> ArrayRef {
        Arc::new(TimestampNanosecondArray::from(vec![1_000_000_000]).with_timezone("UTC"))
    }

    #[test]
    fn the_time_column_is_found_as_feast_finds_it() {
        let ids: ArrayRef = Arc::new(StringArray::from(vec!["u1"]));
        let named = frame(&[("user_id", ids.clone()), ("event_timestamp", times())]);
        assert_eq!(timestamp_column(&named).unwrap(), "event_timestamp");
        let only = frame(&[("user_id", ids.clone()), ("asked_at", times())]);
        assert_eq!(timestamp_column(&only).unwrap(), "asked_at");
        let two = frame(&[("a", times()), ("b", times())]);
        assert!(timestamp_column(&two)
            .unwrap_err()
            .to_string()
            .contains("a, b"));
        let none = frame(&[("user_id", ids)]);
        assert!(timestamp_column(&none)
            .unwrap_err()
            .to_string()
            .contains("no event_timestamp"));
    }

    #[test]
    fn the_placeholder_of_no_entity_frame_is_recognised() {
        let key: ArrayRef = Arc::new(StringArray::from(vec!["mock_key"]));
        assert!(is_placeholder(&frame(&[("key", key.clone())])));
        let n: ArrayRef = Arc::new(Int64Array::from(vec![1]));
        assert!(!is_placeholder(&frame(&[("key", key), ("n", n)])));
    }
}
