//! Resolving sources, aggregations and ingest settings; part of [`crate::resolve`].

use std::collections::HashSet;
use std::time::Duration;

use riffle_core::FeatureType;

use crate::model::{Entity, Feature};
use crate::problems::Problems;
use crate::raw::{RawFeature, RawIngest, RawSource};
use crate::resolve_listener::{resolve_listener, RawListener};
use crate::source::*;

pub(crate) fn resolve_ingest(raw: &RawIngest, p: &mut Problems) -> IngestSettings {
    let d = IngestSettings::default();
    let flush_max_events = raw.flush_max_events.unwrap_or(d.flush_max_events);
    if flush_max_events == 0 {
        p.add("ingest.flush_max_events", "must be at least 1");
    }
    let queue_capacity = raw.queue_capacity.unwrap_or(d.queue_capacity);
    if queue_capacity == 0 {
        p.add("ingest.queue_capacity", "must be at least 1");
    }
    IngestSettings {
        flush_interval: p.duration(
            "ingest.flush_interval",
            &raw.flush_interval,
            d.flush_interval,
        ),
        flush_max_events,
        queue_capacity,
        listen: raw.listen.clone().unwrap_or(d.listen),
        lag_threshold: p.duration("ingest.lag_threshold", &raw.lag_threshold, d.lag_threshold),
        max_stall: p.duration("ingest.max_stall", &raw.max_stall, d.max_stall),
        rejoin_after: p.duration_or_zero("ingest.rejoin_after", &raw.rejoin_after, d.rejoin_after),
        listener: resolve_listener(
            "ingest",
            RawListener {
                tls_cert: &raw.tls_cert,
                tls_key: &raw.tls_key,
                header_read_timeout: &raw.header_read_timeout,
                max_connections: raw.max_connections,
                max_header_bytes: raw.max_header_bytes,
            },
            p,
        ),
    }
}

fn scalar_type(text: &str) -> Option<FeatureType> {
    Some(match text {
        "int64" => FeatureType::Int64,
        "float64" => FeatureType::Float64,
        "bool" => FeatureType::Bool,
        "string" => FeatureType::String,
        _ => return None,
    })
}

pub(crate) fn resolve_sources(
    raw: &[RawSource],
    entities: &[Entity],
    p: &mut Problems,
) -> Vec<Source> {
    let mut seen = HashSet::new();
    raw.iter()
        .enumerate()
        .map(|(i, s)| {
            let path = format!("sources[{i}]");
            p.name(&format!("{path}.name"), &s.name);
            if !seen.insert(s.name.clone()) {
                p.add(format!("{path}.name"), format!("source {:?} is declared twice", s.name));
            }
            let entity = entities.iter().position(|e| e.name == s.entity).unwrap_or_else(|| {
                p.add(format!("{path}.entity"), format!("no entity named {:?} is declared", s.entity));
                0
            });
            let kind = resolve_kind(&path, s, p);
            let mut field_names = HashSet::new();
            let fields = s
                .fields
                .iter()
                .enumerate()
                .map(|(j, f)| {
                    let fpath = format!("{path}.fields[{j}]");
                    p.name(&format!("{fpath}.name"), &f.name);
                    if !field_names.insert(f.name.clone()) {
                        p.add(format!("{fpath}.name"), format!("field {:?} is declared twice", f.name));
                    }
                    let ty = scalar_type(&f.ty).unwrap_or_else(|| {
                        p.add(
                            format!("{fpath}.type"),
                            format!("{:?} is not an event field type: use int64, float64, bool or string", f.ty),
                        );
                        FeatureType::String
                    });
                    SourceField { name: f.name.clone(), ty }
                })
                .collect();
            if let Some(dl) = &s.dead_letter {
                if !(dl.starts_with("file:") || dl.starts_with("kafka:")) {
                    p.add(format!("{path}.dead_letter"), format!("{dl:?} is not a sink: use \"file:PATH\" or \"kafka:TOPIC\""));
                }
            }
            let offline = resolve_offline(&format!("{path}.offline"), &s.offline, p);
            Source {
                name: s.name.clone(),
                entity,
                kind,
                description: s.description.clone().unwrap_or_default(),
                key_field: s
                    .key_field
                    .clone()
                    .unwrap_or_else(|| entities.get(entity).map(|e| e.join_key.clone()).unwrap_or_default()),
                time_field: s.time_field.clone().unwrap_or_else(|| "event_time".into()),
                allowed_lateness: p.duration(
                    &format!("{path}.allowed_lateness"),
                    &s.allowed_lateness,
                    Duration::from_secs(300),
                ),
                max_future: p.duration(&format!("{path}.max_future"), &s.max_future, Duration::from_secs(300)),
                fields,
                dead_letter: s.dead_letter.clone(),
                offline,
            }
        })
        .collect()
}

fn resolve_kind(path: &str, s: &RawSource, p: &mut Problems) -> SourceKind {
    let mut only = |key: &str, present: bool, kinds: &str| {
        if present && !kinds.split(',').any(|k| k == s.kind) {
            p.add(
                format!("{path}.{key}"),
                format!("only a {kinds} source takes {key}"),
            );
        }
    };
    only("brokers", s.brokers.is_some(), "kafka");
    only("topic", s.topic.is_some(), "kafka");
    only("group_id", s.group_id.is_some(), "kafka");
    only("path", s.path.is_some(), "file");
    only("rate", s.rate.is_some(), "generator");
    only("entities", s.entities.is_some(), "generator");
    let mut required = |key: &str, value: &Option<String>| -> String {
        value.clone().unwrap_or_else(|| {
            p.add(
                format!("{path}.{key}"),
                format!("is required for a {} source", s.kind),
            );
            String::new()
        })
    };
    match s.kind.as_str() {
        "kafka" => SourceKind::Kafka {
            brokers: required("brokers", &s.brokers),
            topic: required("topic", &s.topic),
            group_id: s
                .group_id
                .clone()
                .unwrap_or_else(|| format!("riffle-{}", s.name)),
        },
        "file" => SourceKind::File {
            path: required("path", &s.path),
        },
        "http" => SourceKind::Http,
        "generator" => {
            let rate = s.rate.unwrap_or(1000.0);
            if !(rate > 0.0 && rate.is_finite()) {
                p.add(
                    format!("{path}.rate"),
                    "must be a positive number of events per second",
                );
            }
            SourceKind::Generator {
                rate,
                entities: s.entities.unwrap_or(100_000).max(1),
            }
        }
        other => {
            p.add(
                format!("{path}.kind"),
                format!("{other:?} is not a source kind: use kafka, file, http or generator"),
            );
            SourceKind::Http
        }
    }
}

/// Checks a stream group's feature against its source, returning its aggregation.
pub(crate) fn resolve_aggregation(
    path: &str,
    raw: &RawFeature,
    feature: &Feature,
    source: Option<&Source>,
    p: &mut Problems,
) -> Option<Aggregation> {
    let Some(source) = source else {
        for (key, present) in [
            ("aggregation", raw.aggregation.is_some()),
            ("field", raw.field.is_some()),
            ("window", raw.window.is_some()),
        ] {
            if present {
                p.add(
                    format!("{path}.{key}"),
                    "only features of a group with a `source` are aggregations",
                );
            }
        }
        return None;
    };
    let Some(kind_text) = &raw.aggregation else {
        p.add(
            format!("{path}.aggregation"),
            format!(
                "is required: group reads source {:?}, so every feature is an aggregation",
                source.name
            ),
        );
        return None;
    };
    let Some(kind) = AggregationKind::parse(kind_text) else {
        p.add(
            format!("{path}.aggregation"),
            format!("{kind_text:?} is not an aggregation: use count, sum, mean, min, max, last or distinct_count"),
        );
        return None;
    };
    let window = match &raw.window {
        None => {
            p.add(
                format!("{path}.window"),
                "is required (a duration such as \"1h\")",
            );
            Duration::from_secs(3600)
        }
        Some(_) => p.duration(
            &format!("{path}.window"),
            &raw.window,
            Duration::from_secs(3600),
        ),
    };
    let field = match (&raw.field, kind) {
        (None, AggregationKind::Count) => None,
        (Some(_), AggregationKind::Count) => {
            p.add(format!("{path}.field"), "count reads no field");
            None
        }
        (None, _) => {
            p.add(
                format!("{path}.field"),
                format!("is required for {}", kind.as_str()),
            );
            None
        }
        (Some(name), _) => match source.field(name) {
            None => {
                p.add(
                    format!("{path}.field"),
                    format!("source {:?} has no field {name:?}", source.name),
                );
                None
            }
            Some(f) => {
                check_types(path, kind, f, feature.ty, p);
                Some(name.clone())
            }
        },
    };
    let expected_out = match kind {
        AggregationKind::Count | AggregationKind::DistinctCount => Some(FeatureType::Int64),
        AggregationKind::Sum
        | AggregationKind::Mean
        | AggregationKind::Min
        | AggregationKind::Max => Some(FeatureType::Float64),
        AggregationKind::Last => None,
    };
    if let Some(ty) = expected_out {
        if feature.ty != ty {
            p.add(
                format!("{path}.type"),
                format!(
                    "{} produces {ty}, the feature is declared {}",
                    kind.as_str(),
                    feature.ty
                ),
            );
        }
    }
    Some(Aggregation {
        kind,
        field,
        window,
    })
}

fn check_types(
    path: &str,
    kind: AggregationKind,
    field: &SourceField,
    out: FeatureType,
    p: &mut Problems,
) {
    let numeric = matches!(field.ty, FeatureType::Int64 | FeatureType::Float64);
    match kind {
        AggregationKind::Sum
        | AggregationKind::Mean
        | AggregationKind::Min
        | AggregationKind::Max
            if !numeric =>
        {
            p.add(
                format!("{path}.field"),
                format!(
                    "{} needs a numeric field, {:?} is {}",
                    kind.as_str(),
                    field.name,
                    field.ty
                ),
            );
        }
        AggregationKind::Last if field.ty != out => {
            p.add(
                format!("{path}.type"),
                format!(
                    "last of {:?} is {}, the feature is declared {out}",
                    field.name, field.ty
                ),
            );
        }
        _ => {}
    }
}

/// Schemes a history URL may use: what `object_store` reads here.
const OFFLINE_SCHEMES: [&str; 3] = ["file", "s3", "gs"];

/// An `offline` history location: a path, or a URL of a scheme in [`OFFLINE_SCHEMES`].
pub(crate) fn resolve_offline(
    path: &str,
    raw: &Option<String>,
    p: &mut Problems,
) -> Option<String> {
    let url = raw.as_ref()?;
    if url.trim().is_empty() {
        p.add(
            path,
            "must not be empty: a path, or a file://, s3:// or gs:// URL",
        );
        return None;
    }
    if let Some((scheme, _)) = url.split_once("://") {
        if !OFFLINE_SCHEMES.contains(&scheme) {
            p.add(
                path,
                format!("{url:?}: scheme {scheme:?} is not read here: use a path, or a file://, s3:// or gs:// URL"),
            );
            return None;
        }
    }
    Some(url.clone())
}

#[cfg(test)]
mod tests {
    use crate::{AggregationKind, Registry, SourceKind};

    const STREAM: &str = r#"
[[entities]]
name = "user"
join_key = "user_id"

[[sources]]
name = "tx"
entity = "user"
kind = "kafka"
brokers = "127.0.0.1:9092"
topic = "transactions"
fields = [{ name = "amount", type = "float64" }, { name = "merchant_id", type = "string" }]

[[feature_groups]]
name = "velocity"
entity = "user"
source = "tx"
ttl = "2h"
freshness_slo = "30s"
features = [
  { name = "n", type = "int64", default = 0, aggregation = "count", window = "1h" },
  { name = "total", type = "float64", default = 0.0, aggregation = "sum", field = "amount", window = "1h" },
  { name = "merchants", type = "int64", default = 0, aggregation = "distinct_count", field = "merchant_id", window = "7d" },
]
"#;

    #[test]
    fn the_kafka_membership_settings_resolve_and_zero_turns_the_rejoin_off() {
        let with = |ingest: &str| {
            Registry::from_toml(&format!("[ingest]\n{ingest}\n{STREAM}")).map(|r| r.ingest)
        };
        let d = with("").unwrap();
        assert_eq!((d.max_stall.as_secs(), d.rejoin_after.as_secs()), (60, 15));
        let set = with("max_stall = \"2m\"\nrejoin_after = \"0s\"").unwrap();
        assert_eq!(
            (set.max_stall.as_secs(), set.rejoin_after.as_secs()),
            (120, 0)
        );
        let err = with("max_stall = \"0s\"").unwrap_err().to_string();
        assert!(err.contains("ingest.max_stall"), "{err}");
        let err = with("rejoin_after = \"soon\"").unwrap_err().to_string();
        assert!(err.contains("ingest.rejoin_after"), "{err}");
    }

    #[test]
    fn stream_groups_resolve() {
        let r = Registry::from_toml(STREAM).unwrap_or_else(|e| panic!("{e}"));
        let src = r.source("tx").unwrap();
        assert_eq!(src.key_field, "user_id");
        assert!(matches!(&src.kind, SourceKind::Kafka { group_id, .. } if group_id == "riffle-tx"));
        let g = r.group("velocity").unwrap();
        assert_eq!(g.source, Some(0));
        let agg = g.features[2].aggregation.as_ref().unwrap();
        assert_eq!(agg.kind, AggregationKind::DistinctCount);
        assert_eq!(agg.window.as_secs(), 7 * 86400);
        assert_eq!(r.groups_of_source(0).count(), 1);
    }

    #[test]
    fn aggregation_mistakes_are_all_reported() {
        let bad = STREAM
            .replace("kind = \"kafka\"", "kind = \"kafka\"\npath = \"x\"")
            .replace("aggregation = \"sum\", field = \"amount\"", "aggregation = \"sum\", field = \"merchant_id\"")
            .replace("aggregation = \"count\", window = \"1h\"", "aggregation = \"median\", window = \"1h\"")
            .replace("type = \"int64\", default = 0, aggregation = \"distinct_count\", field = \"merchant_id\"", "type = \"float64\", default = 0.0, aggregation = \"distinct_count\", field = \"nope\"");
        let text: Vec<String> = Registry::from_toml(&bad)
            .unwrap_err()
            .problems()
            .iter()
            .map(|p| p.to_string())
            .collect();
        for want in [
            "sources[0].path: only a file source takes path",
            "feature_groups[0].features[0].aggregation: \"median\" is not an aggregation",
            "feature_groups[0].features[1].field: sum needs a numeric field",
            "feature_groups[0].features[2].field: source \"tx\" has no field \"nope\"",
            "feature_groups[0].features[2].type: distinct_count produces int64",
        ] {
            assert!(
                text.iter().any(|t| t.starts_with(want)),
                "missing {want:?} in {text:#?}"
            );
        }
    }

    #[test]
    fn history_locations_are_paths_or_urls_read_here_and_only_where_they_mean_something() {
        let with_source = STREAM.replace(
            "topic = \"transactions\"",
            "topic = \"transactions\"\noffline = \"s3://lake/tx/*.parquet\"",
        );
        let r = Registry::from_toml(&with_source).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            r.sources[0].offline.as_deref(),
            Some("s3://lake/tx/*.parquet")
        );
        let bad = STREAM
            .replace(
                "topic = \"transactions\"",
                "topic = \"transactions\"\noffline = \"hdfs://x/y\"",
            )
            .replace("source = \"tx\"", "source = \"tx\"\noffline = \"rows/\"");
        let text = Registry::from_toml(&bad).unwrap_err().to_string();
        for want in [
            "sources[0].offline: \"hdfs://x/y\": scheme \"hdfs\" is not read here",
            "feature_groups[0].offline: a group with a source is recomputed",
        ] {
            assert!(text.contains(want), "missing {want:?} in {text}");
        }
    }
}
