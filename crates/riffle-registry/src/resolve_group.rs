//! Resolving feature groups and their features; part of [`crate::resolve`].

use std::collections::HashSet;
use std::time::Duration;

use riffle_core::{FeatureType, FeatureValue};

use crate::model::*;
use crate::problems::Problems;
use crate::raw::*;
use crate::resolve_source::resolve_aggregation;
use crate::source::Source;

pub(crate) fn resolve_groups(
    raw: &[RawGroup],
    entities: &[Entity],
    sources: &[Source],
    p: &mut Problems,
) -> Vec<FeatureGroup> {
    if raw.is_empty() {
        p.add(
            "feature_groups",
            "at least one feature group must be declared",
        );
    }
    let mut seen = HashSet::new();
    let mut push_sources = HashSet::new();
    raw.iter()
        .enumerate()
        .map(|(i, g)| {
            let path = format!("feature_groups[{i}]");
            p.name(&format!("{path}.name"), &g.name);
            if !seen.insert(g.name.clone()) {
                p.add(
                    format!("{path}.name"),
                    format!("group {:?} is declared twice", g.name),
                );
            }
            let entity = match entities.iter().position(|e| e.name == g.entity) {
                Some(idx) => idx,
                None => {
                    p.add(
                        format!("{path}.entity"),
                        format!("no entity named {:?} is declared", g.entity),
                    );
                    0
                }
            };
            let version = g.version.unwrap_or(1);
            if version == 0 {
                p.add(format!("{path}.version"), "must be at least 1");
            }
            let ttl = p.required_duration(&format!("{path}.ttl"), &g.ttl);
            let freshness_slo =
                p.required_duration(&format!("{path}.freshness_slo"), &g.freshness_slo);
            let staleness_limit =
                p.duration(&format!("{path}.staleness_limit"), &g.staleness_limit, ttl);
            if staleness_limit < freshness_slo {
                p.add(
                    format!("{path}.staleness_limit"),
                    "must not be shorter than freshness_slo",
                );
            }
            let p99_slo = p.duration(
                &format!("{path}.p99_slo"),
                &g.p99_slo,
                Duration::from_millis(10),
            );
            let availability_slo =
                resolve_availability(&format!("{path}.availability_slo"), &g.availability_slo, p);
            let on_unsafe = match g.on_unsafe.as_deref().unwrap_or("serve_defaults") {
                "serve_defaults" => UnsafePolicy::ServeDefaults,
                "fail" => UnsafePolicy::Fail,
                other => {
                    p.add(
                        format!("{path}.on_unsafe"),
                        format!("{other:?} is not a policy: use \"serve_defaults\" or \"fail\""),
                    );
                    UnsafePolicy::ServeDefaults
                }
            };
            let cache_ttl = g
                .cache_ttl
                .as_ref()
                .map(|_| p.duration(&format!("{path}.cache_ttl"), &g.cache_ttl, Duration::ZERO));
            if let Some(ps) = &g.push_source {
                p.name(&format!("{path}.push_source"), ps);
                if !push_sources.insert(ps.clone()) {
                    p.add(
                        format!("{path}.push_source"),
                        format!("push source {ps:?} already writes another group"),
                    );
                }
            }
            let source = g.source.as_ref().and_then(|name| {
                match sources.iter().position(|s| &s.name == name) {
                    None => {
                        p.add(
                            format!("{path}.source"),
                            format!("no source named {name:?} is declared"),
                        );
                        None
                    }
                    Some(idx) => {
                        if sources[idx].entity != entity {
                            p.add(
                                format!("{path}.source"),
                                format!(
                                    "source {name:?} carries another entity than group {:?}",
                                    g.name
                                ),
                            );
                        }
                        Some(idx)
                    }
                }
            });
            let features = resolve_features(&path, &g.features, source.map(|i| &sources[i]), p);
            let offline = crate::resolve_source::resolve_offline(&format!("{path}.offline"), &g.offline, p);
            if offline.is_some() && source.is_some() {
                p.add(
                    format!("{path}.offline"),
                    "a group with a source is recomputed from the source's `offline` events: declare the history there",
                );
            }
            FeatureGroup {
                id: i,
                name: g.name.clone(),
                entity,
                version,
                description: g.description.clone().unwrap_or_default(),
                ttl,
                freshness_slo,
                staleness_limit,
                p99_slo,
                availability_slo,
                on_unsafe,
                cache_ttl,
                push_source: g.push_source.clone(),
                source,
                offline,
                features,
            }
        })
        .collect()
}

fn resolve_availability(path: &str, raw: &Option<toml::Value>, p: &mut Problems) -> f64 {
    let value = match raw {
        None => return 0.999,
        Some(toml::Value::Float(f)) => Some(*f),
        Some(toml::Value::String(s)) => s
            .trim()
            .strip_suffix('%')
            .and_then(|n| n.trim().parse::<f64>().ok())
            .map(|pct| pct / 100.0),
        Some(_) => None,
    };
    match value {
        Some(v) if v > 0.0 && v < 1.0 => v,
        _ => {
            p.add(
                path,
                "must be a fraction below 1 (0.999) or a percentage (\"99.9%\")",
            );
            0.999
        }
    }
}

fn parse_type(raw: &RawFeature, path: &str, p: &mut Problems) -> FeatureType {
    let ty = match raw.ty.as_str() {
        "int64" => FeatureType::Int64,
        "float64" => FeatureType::Float64,
        "bool" => FeatureType::Bool,
        "string" => FeatureType::String,
        "float_vector" => match raw.dimension {
            Some(dim) if (1..=4096).contains(&dim) => FeatureType::FloatVector { dim },
            Some(_) => {
                p.add(format!("{path}.dimension"), "must be between 1 and 4096");
                FeatureType::FloatVector { dim: 1 }
            }
            None => {
                p.add(
                    format!("{path}.dimension"),
                    "is required for a float_vector",
                );
                FeatureType::FloatVector { dim: 1 }
            }
        },
        other => {
            p.add(
                format!("{path}.type"),
                format!(
                    "{other:?} is not a feature type: use int64, float64, bool, string or float_vector"
                ),
            );
            FeatureType::Int64
        }
    };
    if raw.dimension.is_some() && !matches!(ty, FeatureType::FloatVector { .. }) {
        p.add(
            format!("{path}.dimension"),
            "only a float_vector has a dimension",
        );
    }
    ty
}

fn resolve_features(
    group_path: &str,
    raw: &[RawFeature],
    source: Option<&Source>,
    p: &mut Problems,
) -> Vec<Feature> {
    if raw.is_empty() {
        p.add(
            format!("{group_path}.features"),
            "a group needs at least one feature",
        );
    }
    if raw.len() > 255 {
        p.add(
            format!("{group_path}.features"),
            "a group holds at most 255 features",
        );
    }
    let mut seen = HashSet::new();
    raw.iter()
        .enumerate()
        .map(|(j, f)| {
            let path = format!("{group_path}.features[{j}]");
            p.name(&format!("{path}.name"), &f.name);
            if !seen.insert(f.name.clone()) {
                p.add(
                    format!("{path}.name"),
                    format!("feature {:?} is declared twice", f.name),
                );
            }
            let ty = parse_type(f, &path, p);
            let default = match &f.default {
                None => {
                    p.add(
                        format!("{path}.default"),
                        format!("is required: the training default for this {ty} feature"),
                    );
                    FeatureValue::Null
                }
                Some(raw_default) => {
                    let json = toml_to_json(raw_default);
                    match FeatureValue::from_json(ty, &json) {
                        Ok(v) => v,
                        Err(e) => {
                            p.add(format!("{path}.default"), e.to_string());
                            FeatureValue::Null
                        }
                    }
                }
            };
            let mut feature = Feature {
                name: f.name.clone(),
                ty,
                default,
                description: f.description.clone().unwrap_or_default(),
                aggregation: None,
            };
            feature.aggregation = resolve_aggregation(&path, f, &feature, source, p);
            feature
        })
        .collect()
}

fn toml_to_json(value: &toml::Value) -> serde_json::Value {
    match value {
        toml::Value::String(s) => serde_json::Value::String(s.clone()),
        toml::Value::Integer(i) => serde_json::Value::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .unwrap_or_else(|| serde_json::Value::String(f.to_string())),
        toml::Value::Boolean(b) => serde_json::Value::Bool(*b),
        toml::Value::Array(items) => {
            serde_json::Value::Array(items.iter().map(toml_to_json).collect())
        }
        other => serde_json::Value::String(other.to_string()),
    }
}
