//! Feast's data-source calls: `validate_data_source` (sent by `feast apply`) and the column
//! listing its schema inference asks for. Riffle answers feature views from its registry's
//! groups, so a Feast data source is looked up by name among Riffle's sources, push sources
//! and groups.

use std::sync::Arc;

use datafusion::arrow::array::StringArray;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use riffle_core::FeatureType;
use riffle_registry::{FeatureGroup, KeyType, Registry};

use crate::error::Refusal;

/// `validate_data_source`: every data source is accepted. Riffle does not read Feast's data
/// sources; it answers from its own registry's history, which `riffle check` validates.
pub fn validate(registry: &Registry, name: &str) -> Result<(), Refusal> {
    match groups_of(registry, name).is_empty() {
        true => tracing::info!(
            source = name,
            "feast apply: data source not in Riffle's registry; its feature views are answered \
             from the groups of their names"
        ),
        false => tracing::info!(source = name, "feast apply: data source known"),
    }
    Ok(())
}

/// The columns of data source `name`, as Feast's file offline store would list them: the
/// join key, `event_timestamp`, and the features of the groups it feeds, each with the
/// Arrow type name Feast maps to its own types.
pub fn columns(registry: &Registry, name: &str) -> Result<RecordBatch, Refusal> {
    let groups = groups_of(registry, name);
    let Some(first) = groups.first() else {
        return Err(Refusal::Request(format!(
            "Riffle has no source, push source or group named {name:?}: declare the feature \
             view's schema (its entities and fields) in the Feast repo"
        )));
    };
    let entity = registry.entity_of(first);
    let key_type = match entity.key_type {
        KeyType::Int64 => "int64",
        KeyType::String => "string",
    };
    let mut names = vec![entity.join_key.clone(), "event_timestamp".to_string()];
    let mut types = vec![key_type.to_string(), "timestamp[us, tz=UTC]".to_string()];
    for group in groups {
        for feature in &group.features {
            if !names.contains(&feature.name) {
                names.push(feature.name.clone());
                types.push(arrow_type_name(feature.ty).to_string());
            }
        }
    }
    let schema = Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("type", DataType::Utf8, false),
    ]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(StringArray::from(names)),
            Arc::new(StringArray::from(types)),
        ],
    )
    .map_err(|e| Refusal::Internal(e.to_string()))
}

/// The groups a Feast data source named `name` stands for: those a Riffle source or push
/// source of that name feeds, else the group of that name.
fn groups_of<'r>(registry: &'r Registry, name: &str) -> Vec<&'r FeatureGroup> {
    if let Some(id) = registry.sources.iter().position(|s| s.name == name) {
        return registry.groups_of_source(id).collect();
    }
    let pushed: Vec<_> = registry
        .groups
        .iter()
        .filter(|g| g.push_source.as_deref() == Some(name))
        .collect();
    if !pushed.is_empty() {
        return pushed;
    }
    registry.group(name).into_iter().collect()
}

/// How pyarrow prints a feature type's Arrow type: what Feast's type mapping reads.
fn arrow_type_name(ty: FeatureType) -> &'static str {
    match ty {
        FeatureType::Int64 => "int64",
        FeatureType::Float64 => "double",
        FeatureType::Bool => "bool",
        FeatureType::String => "string",
        FeatureType::FloatVector { .. } => "list<item: float>",
    }
}
