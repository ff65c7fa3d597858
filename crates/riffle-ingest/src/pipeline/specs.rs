//! From the registry to the window engine: every aggregated feature of every group fed by
//! one source becomes an [`AggregationSpec`] named `group.feature`, and [`SpecMap`] says how
//! the engine's values (one per spec) become one row per group.

use std::sync::Arc;

use riffle_core::{FeatureType, FeatureValue};
use riffle_registry::{GroupId, Registry, Source};

use crate::decode;
use riffle_window::{AggregationSpec, EngineConfig};

/// The engine configuration for one source, and where each value goes.
#[derive(Debug, Clone)]
pub struct SpecMap {
    pub config: EngineConfig,
    /// For each stream group of the source: its id, and per declared feature the index of
    /// its spec (`None`: a feature with no aggregation, always its default).
    pub groups: Vec<(GroupId, Vec<Option<usize>>)>,
}

impl SpecMap {
    /// Maps the groups whose `source` is `source` (an index into `registry.sources`).
    pub fn new(registry: &Registry, source: usize) -> Self {
        let src = &registry.sources[source];
        let mut specs = Vec::new();
        let mut groups = Vec::new();
        for group in registry.groups_of_source(source) {
            let targets = group
                .features
                .iter()
                .map(|f| {
                    f.aggregation.as_ref().map(|a| {
                        specs.push(AggregationSpec::new(
                            format!("{}.{}", group.name, f.name),
                            a.kind,
                            a.field.as_deref(),
                            a.window,
                        ));
                        specs.len() - 1
                    })
                })
                .collect();
            groups.push((group.id, targets));
        }
        let mut config = EngineConfig::new(specs);
        config.allowed_lateness = Some(src.allowed_lateness);
        config.max_future = src.max_future;
        Self { config, groups }
    }

    /// One group's row values from the engine's values: declared order, a `Null` aggregate
    /// (e.g. the mean of an empty window) as the feature's training default, an integer
    /// aggregate of a `float64` feature as a float.
    pub fn row_values(
        &self,
        registry: &Registry,
        group: usize,
        values: &[FeatureValue],
    ) -> Vec<FeatureValue> {
        let (gid, targets) = &self.groups[group];
        registry.groups[*gid]
            .features
            .iter()
            .zip(targets)
            .map(
                |(f, target)| match target.and_then(|i| values.get(i)).cloned() {
                    None | Some(FeatureValue::Null) => f.default.clone(),
                    Some(FeatureValue::Int64(n)) if f.ty == FeatureType::Float64 => {
                        FeatureValue::Float64(n as f64)
                    }
                    Some(v) => v,
                },
            )
            .collect()
    }
}

/// A decoded event in the engine's form: named fields, absent ones left out.
pub fn to_window_event(source: &Source, event: decode::Event) -> riffle_window::Event {
    let names: Vec<Arc<str>> = source
        .fields
        .iter()
        .map(|f| f.name.as_str().into())
        .collect();
    named_event(&names, event)
}

/// [`to_window_event`] with the source's field names already shared (the pipeline makes
/// them once per run, so an event costs no name copies).
pub fn named_event(names: &[Arc<str>], event: decode::Event) -> riffle_window::Event {
    let fields = names
        .iter()
        .zip(event.fields)
        .filter(|(_, v)| *v != FeatureValue::Null)
        .map(|(n, v)| (n.clone(), v))
        .collect();
    riffle_window::Event {
        entity: event.entity,
        time: event.time,
        fields,
    }
}
