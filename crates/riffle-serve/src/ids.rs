//! Entity ids from requests: JSON or path text checked against the entity's key type and
//! [`EntityId`]'s rules (non-empty, ≤ 256 bytes, no control characters).

use riffle_core::EntityId;
use riffle_registry::{Entity, KeyType};
use serde_json::Value;

use crate::error::ApiError;

/// Reads one id from JSON: a string for `string` keys; an integer (or a string of digits)
/// for `int64` keys.
pub fn from_json(entity: &Entity, index: usize, value: &Value) -> Result<EntityId, ApiError> {
    let bad = |reason: String| ApiError::BadEntityId { index, reason };
    match (entity.key_type, value) {
        (KeyType::String, Value::String(s)) => from_text(entity, index, s),
        (KeyType::Int64, Value::Number(n)) => match n.as_i64() {
            Some(i) => EntityId::new(i.to_string()).map_err(|e| bad(e.to_string())),
            None => Err(bad(format!("{} is not an int64 {}", n, entity.join_key))),
        },
        (KeyType::Int64, Value::String(s)) => from_text(entity, index, s),
        (KeyType::String, other) => Err(bad(format!(
            "{} is a string key; got {}",
            entity.join_key,
            kind(other)
        ))),
        (KeyType::Int64, other) => Err(bad(format!(
            "{} is an int64 key; got {}",
            entity.join_key,
            kind(other)
        ))),
    }
}

/// Reads one id from text (a URL path segment, or a JSON string).
pub fn from_text(entity: &Entity, index: usize, text: &str) -> Result<EntityId, ApiError> {
    let bad = |reason: String| ApiError::BadEntityId { index, reason };
    if entity.key_type == KeyType::Int64 && text.trim().parse::<i64>().is_err() {
        let shown: String = text.chars().take(40).collect();
        return Err(bad(format!(
            "{:?} is not an integer, and {} is an int64 key",
            shown, entity.join_key
        )));
    }
    let text = if entity.key_type == KeyType::Int64 {
        text.trim()
    } else {
        text
    };
    EntityId::new(text).map_err(|e| bad(e.to_string()))
}

/// Reads a batch of ids, checking its size against `max_batch`.
pub fn batch(
    entity: &Entity,
    values: &[Value],
    max_batch: usize,
) -> Result<Vec<EntityId>, ApiError> {
    if values.is_empty() {
        return Err(ApiError::EmptyBatch);
    }
    if values.len() > max_batch {
        return Err(ApiError::BatchTooLarge {
            got: values.len(),
            max: max_batch,
        });
    }
    values
        .iter()
        .enumerate()
        .map(|(i, v)| from_json(entity, i, v))
        .collect()
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entity(key_type: KeyType) -> Entity {
        Entity {
            name: "user".into(),
            join_key: "user_id".into(),
            key_type,
            expected_count: None,
            description: String::new(),
        }
    }

    #[test]
    fn key_types_are_checked() {
        let s = entity(KeyType::String);
        let i = entity(KeyType::Int64);
        assert_eq!(from_json(&s, 0, &json!("u1")).unwrap().as_str(), "u1");
        assert!(from_json(&s, 0, &json!(1)).is_err());
        assert_eq!(from_json(&i, 0, &json!(42)).unwrap().as_str(), "42");
        assert_eq!(from_json(&i, 0, &json!("42")).unwrap().as_str(), "42");
        assert!(from_json(&i, 0, &json!("abc")).is_err());
        assert!(from_json(&i, 0, &json!(1.5)).is_err());
        assert!(from_json(&s, 0, &json!("")).is_err());
        assert!(from_json(&s, 0, &json!("x".repeat(300))).is_err());
        assert!(from_json(&s, 0, &json!("a\u{0}b")).is_err());
    }

    #[test]
    fn batches_are_bounded() {
        let s = entity(KeyType::String);
        assert!(matches!(batch(&s, &[], 2), Err(ApiError::EmptyBatch)));
        let three = [json!("a"), json!("b"), json!("c")];
        assert!(matches!(
            batch(&s, &three, 2),
            Err(ApiError::BatchTooLarge { got: 3, max: 2 })
        ));
        assert_eq!(batch(&s, &three, 3).unwrap().len(), 3);
    }
}
