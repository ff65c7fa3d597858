//! Turning one input row (a CSV record or an NDJSON object) into a validated [`RowWrite`] of
//! one feature group: the entity id is checked (and must be an integer for `int64` keys),
//! every feature is typed against the registry, and `event_timestamp` is RFC 3339 or epoch
//! milliseconds (absent or empty: the load's default time).

use std::collections::HashSet;

use riffle_core::{EntityId, FeatureValue, Timestamp};
use riffle_registry::{FeatureGroup, KeyType, Registry};
use riffle_store::{GroupRow, RowWrite};

/// The optional column holding each row's event time.
pub const EVENT_TIMESTAMP: &str = "event_timestamp";

/// What a row must look like for one group: its join key, key type and features.
#[derive(Debug, Clone)]
pub struct RowSchema {
    pub group: FeatureGroup,
    pub join_key: String,
    pub key_type: KeyType,
}

impl RowSchema {
    pub fn new(registry: &Registry, group: &FeatureGroup) -> Self {
        let entity = registry.entity_of(group);
        Self {
            group: group.clone(),
            join_key: entity.join_key.clone(),
            key_type: entity.key_type,
        }
    }

    fn entity_id(&self, raw: &str) -> Result<EntityId, String> {
        let raw = raw.trim();
        if self.key_type == KeyType::Int64 && raw.parse::<i64>().is_err() {
            return Err(format!(
                "{}: expected an int64 entity id, got {raw:?}",
                self.join_key
            ));
        }
        EntityId::new(raw).map_err(|e| format!("{}: {e}", self.join_key))
    }

    fn row(
        &self,
        id: EntityId,
        event_ts: Timestamp,
        computed_at: Timestamp,
        values: Vec<FeatureValue>,
    ) -> RowWrite {
        RowWrite {
            id,
            group: self.group.id,
            row: GroupRow {
                event_ts,
                computed_at,
                values,
                partition: None,
            },
        }
    }
}

/// Where each CSV column goes, checked once against the header.
#[derive(Debug, Clone)]
pub struct CsvColumns {
    key: usize,
    timestamp: Option<usize>,
    /// (column index, feature index)
    features: Vec<(usize, usize)>,
    names: Vec<String>,
}

impl CsvColumns {
    /// Maps a header onto the group. Every problem is reported: a missing join-key column,
    /// unknown or repeated columns, and features of the group with no column.
    pub fn from_header(schema: &RowSchema, header: &[&str]) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let mut key = None;
        let mut timestamp = None;
        let mut features = Vec::new();
        let mut seen = HashSet::new();
        for (col, name) in header.iter().enumerate() {
            let name = name.trim();
            if !seen.insert(name) {
                problems.push(format!("column {name:?} appears more than once"));
                continue;
            }
            if name == schema.join_key {
                key = Some(col);
            } else if name == EVENT_TIMESTAMP {
                timestamp = Some(col);
            } else if let Some(f) = schema.group.feature_index(name) {
                features.push((col, f));
            } else {
                problems.push(format!(
                    "column {name:?} is not a feature of group {} (features: {}; optional: {EVENT_TIMESTAMP})",
                    schema.group.name,
                    feature_list(&schema.group)
                ));
            }
        }
        if key.is_none() {
            problems.push(format!(
                "no {:?} column: the header must start with the join key of entity {}",
                schema.join_key, schema.join_key
            ));
        }
        let mut missing: Vec<&str> = schema
            .group
            .features
            .iter()
            .enumerate()
            .filter(|(i, _)| !features.iter().any(|&(_, f)| f == *i))
            .map(|(_, f)| f.name.as_str())
            .collect();
        if !missing.is_empty() {
            missing.sort_unstable();
            problems.push(format!(
                "missing feature column(s) {} of group {} (an empty cell stores null; a missing column is not allowed)",
                missing.join(", "),
                schema.group.name
            ));
        }
        match key {
            Some(key) if problems.is_empty() => Ok(Self {
                key,
                timestamp,
                features,
                names: header.iter().map(|s| s.trim().to_owned()).collect(),
            }),
            _ => Err(problems),
        }
    }

    /// Decodes one record; the error says which column is wrong and why.
    pub fn decode(
        &self,
        schema: &RowSchema,
        record: &csv::StringRecord,
        default_ts: Timestamp,
        computed_at: Timestamp,
    ) -> Result<RowWrite, String> {
        let cell = |i: usize| record.get(i).unwrap_or("");
        let id = schema.entity_id(cell(self.key))?;
        let event_ts = match self.timestamp.map(cell).map(str::trim) {
            None | Some("") => default_ts,
            Some(text) => Timestamp::parse(text).map_err(|e| format!("{EVENT_TIMESTAMP}: {e}"))?,
        };
        let mut values = vec![FeatureValue::Null; schema.group.features.len()];
        for &(col, f) in &self.features {
            let feature = &schema.group.features[f];
            values[f] = FeatureValue::parse_text(feature.ty, cell(col))
                .map_err(|e| format!("{}: {e}", self.names[col]))?;
        }
        Ok(schema.row(id, event_ts, computed_at, values))
    }
}

fn feature_list(group: &FeatureGroup) -> String {
    group
        .features
        .iter()
        .map(|f| f.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Decodes one NDJSON line: an object with the join key, every feature of the group (`null`
/// for no value) and optionally `event_timestamp`.
pub fn decode_json(
    schema: &RowSchema,
    line: &str,
    default_ts: Timestamp,
    computed_at: Timestamp,
) -> Result<RowWrite, String> {
    use serde_json::Value as J;
    let value: J = serde_json::from_str(line).map_err(|e| format!("not valid JSON: {e}"))?;
    let J::Object(object) = value else {
        return Err("expected a JSON object".into());
    };
    let mut id = None;
    let mut event_ts = default_ts;
    let mut values: Vec<Option<FeatureValue>> = vec![None; schema.group.features.len()];
    for (name, v) in &object {
        if *name == schema.join_key {
            let raw = match v {
                J::String(s) => s.clone(),
                J::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
                other => {
                    return Err(format!(
                        "{name}: expected a string or integer id, got {other}"
                    ))
                }
            };
            id = Some(schema.entity_id(&raw)?);
        } else if name == EVENT_TIMESTAMP {
            if !v.is_null() {
                event_ts = Timestamp::from_json(v).map_err(|e| format!("{name}: {e}"))?;
            }
        } else if let Some(f) = schema.group.feature_index(name) {
            let ty = schema.group.features[f].ty;
            values[f] = Some(FeatureValue::from_json(ty, v).map_err(|e| format!("{name}: {e}"))?);
        } else {
            return Err(format!(
                "{name:?} is not a feature of group {} (features: {})",
                schema.group.name,
                feature_list(&schema.group)
            ));
        }
    }
    let Some(id) = id else {
        return Err(format!("no {:?} field", schema.join_key));
    };
    let missing: Vec<&str> = values
        .iter()
        .zip(&schema.group.features)
        .filter(|(v, _)| v.is_none())
        .map(|(_, f)| f.name.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "missing feature(s) {} (write null for no value)",
            missing.join(", ")
        ));
    }
    let values = values
        .into_iter()
        .map(|v| v.unwrap_or(FeatureValue::Null))
        .collect();
    Ok(schema.row(id, event_ts, computed_at, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> RowSchema {
        let registry = riffle_testkit::fixtures::fraud_registry();
        let group = registry.group("user_profile").cloned().unwrap();
        RowSchema::new(&registry, &group)
    }

    #[test]
    fn header_problems_are_all_listed() {
        let schema = schema();
        let problems =
            CsvColumns::from_header(&schema, &["account_age_days", "bogus", "bogus"]).unwrap_err();
        let text = problems.join("\n");
        assert!(text.contains("\"bogus\" is not a feature"), "{text}");
        assert!(text.contains("more than once"), "{text}");
        assert!(text.contains("no \"user_id\" column"), "{text}");
        assert!(text.contains("credit_score_bucket, is_premium"), "{text}");
    }

    #[test]
    fn json_rows_are_typed() {
        let schema = schema();
        let now = Timestamp::from_millis(1_000).unwrap();
        let ok = decode_json(
            &schema,
            r#"{"user_id": 7, "account_age_days": 3, "credit_score_bucket": null, "is_premium": true, "event_timestamp": "2026-11-26T12:00:00Z"}"#,
            now,
            now,
        )
        .unwrap();
        assert_eq!(ok.id.as_str(), "7");
        assert_eq!(ok.row.event_ts.millis(), 1_795_694_400_000);
        assert_eq!(ok.row.values[1], FeatureValue::Null);
        let err = decode_json(&schema, r#"{"user_id": "u1", "account_age_days": 1.5, "credit_score_bucket": 1, "is_premium": true}"#, now, now).unwrap_err();
        assert!(err.starts_with("account_age_days: expected int64"), "{err}");
        let err = decode_json(&schema, r#"{"user_id": "u1"}"#, now, now).unwrap_err();
        assert!(err.contains("missing feature(s) account_age_days"), "{err}");
        let err = decode_json(&schema, "[1]", now, now).unwrap_err();
        assert_eq!(err, "expected a JSON object");
    }
}
