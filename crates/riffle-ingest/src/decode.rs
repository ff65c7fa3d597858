//! Event decoding: one NDJSON object (a Kafka message value, a file line, an HTTP-pushed
//! item) into a typed [`Event`] by its source's schema, or a [`Rejection`] saying why not.
//!
//! Rejected events are never dropped silently: the caller sends them to the dead-letter sink
//! with their reason and counts them per reason.

use riffle_core::{EntityId, FeatureType, FeatureValue, Timestamp};
use riffle_registry::{KeyType, Registry, Source};
use serde_json::Value;

/// A decoded event: entity, event time, and one value per source field (declared order;
/// `Null` where the event did not carry the field).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub entity: EntityId,
    pub time: Timestamp,
    pub fields: Vec<FeatureValue>,
}

/// Why an event was not used. `reason()` is a low-cardinality metric label.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejection {
    /// Not JSON, or not a JSON object.
    #[error("undecodable: {0}")]
    Undecodable(String),
    /// JSON, but not of the source's schema (missing key or time, wrong field type).
    #[error("schema mismatch: {0}")]
    SchemaMismatch(String),
    /// Older than the allowed lateness or the longest window.
    #[error("too late: {0}")]
    TooLate(String),
    /// Event time too far ahead of the clock.
    #[error("from the future: {0}")]
    FromFuture(String),
}

impl Rejection {
    pub const REASONS: [&'static str; 4] =
        ["undecodable", "schema_mismatch", "too_late", "from_future"];

    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::Undecodable(_) => "undecodable",
            Rejection::SchemaMismatch(_) => "schema_mismatch",
            Rejection::TooLate(_) => "too_late",
            Rejection::FromFuture(_) => "from_future",
        }
    }
}

/// Decodes events of one source.
pub struct Decoder {
    key_field: String,
    time_field: String,
    int_keys: bool,
    fields: Vec<(String, FeatureType)>,
}

impl Decoder {
    pub fn new(registry: &Registry, source: &Source) -> Self {
        Self {
            key_field: source.key_field.clone(),
            time_field: source.time_field.clone(),
            int_keys: registry.entities[source.entity].key_type == KeyType::Int64,
            fields: source
                .fields
                .iter()
                .map(|f| (f.name.clone(), f.ty))
                .collect(),
        }
    }

    /// Decodes one event. `key` is the message key when the transport carries one (Kafka);
    /// it is used when the payload has no key field.
    ///
    /// Only the fields the schema names are materialised: the object is walked once and
    /// every other member is skipped unparsed (`Slots`), where parsing into a
    /// `serde_json::Value` would build a map with an owned key and value for every member.
    /// Whatever the fast walk cannot take (not an object, bad JSON) is decoded again the
    /// plain way, so rejections read exactly as before.
    pub fn decode(&self, payload: &[u8], key: Option<&[u8]>) -> Result<Event, Rejection> {
        let mut slots = vec![None; 2 + self.fields.len()];
        let mut de = serde_json::Deserializer::from_slice(payload);
        let walked = serde::de::DeserializeSeed::deserialize(
            Slots {
                decoder: self,
                slots: &mut slots,
            },
            &mut de,
        )
        .and_then(|()| de.end());
        if walked.is_err() {
            let value: Value = serde_json::from_slice(payload)
                .map_err(|e| Rejection::Undecodable(format!("not JSON: {e}")))?;
            return self.decode_value(&value, key);
        }
        let mut slots = slots.into_iter();
        let (raw_key, raw_time) = (slots.next().flatten(), slots.next().flatten());
        self.decode_parts(raw_key, raw_time.as_ref(), slots, key)
    }

    /// Decodes an already-parsed JSON value.
    pub fn decode_value(&self, value: &Value, key: Option<&[u8]>) -> Result<Event, Rejection> {
        let Value::Object(map) = value else {
            return Err(Rejection::Undecodable("not a JSON object".into()));
        };
        self.decode_parts(
            map.get(&self.key_field).cloned(),
            map.get(&self.time_field),
            self.fields.iter().map(|(name, _)| map.get(name).cloned()),
            key,
        )
    }

    /// The event from the members the schema names (`None`: absent), in declared order.
    fn decode_parts(
        &self,
        raw_key: Option<Value>,
        raw_time: Option<&Value>,
        fields: impl Iterator<Item = Option<Value>>,
        key: Option<&[u8]>,
    ) -> Result<Event, Rejection> {
        let raw_id = match raw_key {
            Some(Value::String(s)) => s,
            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => n.to_string(),
            Some(other) => {
                return Err(Rejection::SchemaMismatch(format!(
                    "{:?} must be a string or an integer, got {other}",
                    self.key_field
                )))
            }
            None => match key.map(std::str::from_utf8) {
                Some(Ok(k)) => k.to_owned(),
                _ => {
                    return Err(Rejection::SchemaMismatch(format!(
                        "no {:?} field and no message key",
                        self.key_field
                    )))
                }
            },
        };
        if self.int_keys && raw_id.parse::<i64>().is_err() {
            return Err(Rejection::SchemaMismatch(format!(
                "{:?} must be an int64, got {raw_id:?}",
                self.key_field
            )));
        }
        let entity = EntityId::new(raw_id)
            .map_err(|e| Rejection::SchemaMismatch(format!("{:?}: {e}", self.key_field)))?;
        let time = match raw_time {
            Some(v) => Timestamp::from_json(v)
                .map_err(|e| Rejection::SchemaMismatch(format!("{:?}: {e}", self.time_field)))?,
            None => {
                return Err(Rejection::SchemaMismatch(format!(
                    "no {:?} field",
                    self.time_field
                )))
            }
        };
        let fields = self
            .fields
            .iter()
            .zip(fields)
            .map(|((name, ty), v)| match v {
                None => Ok(FeatureValue::Null),
                // The string moves into the value (no copy); the checks are from_json's.
                Some(Value::String(s))
                    if *ty == FeatureType::String && s.len() <= riffle_core::MAX_STRING_LEN =>
                {
                    Ok(FeatureValue::String(s))
                }
                Some(v) => FeatureValue::from_json(*ty, &v)
                    .map_err(|e| Rejection::SchemaMismatch(format!("{name:?}: {e}"))),
            })
            .collect::<Result<_, _>>()?;
        Ok(Event {
            entity,
            time,
            fields,
        })
    }
}

/// One walk over an event object keeping only the members the schema names: slot 0 the
/// key field, 1 the time field, then the source's fields in declared order. A repeated
/// member keeps its last value, as `serde_json::Value` does.
struct Slots<'d, 's> {
    decoder: &'d Decoder,
    slots: &'s mut [Option<Value>],
}

impl<'de> serde::de::DeserializeSeed<'de> for Slots<'_, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Slots<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let d = self.decoder;
        while let Some(name) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            // Usually one slot; a name the schema uses twice (a field named like the key)
            // fills each, as lookups in a parsed map would.
            let names = [&d.key_field, &d.time_field]
                .into_iter()
                .chain(d.fields.iter().map(|(f, _)| f));
            let mut hits = names
                .enumerate()
                .filter(|(_, n)| **n == *name)
                .map(|(i, _)| i);
            match hits.next() {
                Some(first) => {
                    let value: Value = map.next_value()?;
                    for i in hits {
                        self.slots[i] = Some(value.clone());
                    }
                    self.slots[first] = Some(value);
                }
                None => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoder(key_type: &str) -> Decoder {
        let reg = Registry::from_toml(&format!(
            r#"
[[entities]]
name = "user"
join_key = "user_id"
key_type = "{key_type}"
[[sources]]
name = "tx"
entity = "user"
kind = "http"
fields = [{{ name = "amount", type = "float64" }}, {{ name = "merchant_id", type = "string" }}]
[[feature_groups]]
name = "g"
entity = "user"
source = "tx"
ttl = "1h"
freshness_slo = "1m"
features = [{{ name = "n", type = "int64", default = 0, aggregation = "count", window = "1h" }}]
"#
        ))
        .unwrap();
        Decoder::new(&reg, &reg.sources[0])
    }

    #[test]
    fn decodes_the_reference_event_shapes() {
        let d = decoder("string");
        let e = d
            .decode(
                br#"{"user_id": "u42", "amount": 12.5, "merchant_id": "m7", "event_time": "2026-11-26T12:00:00Z"}"#,
                None,
            )
            .unwrap();
        assert_eq!(e.entity.as_str(), "u42");
        assert_eq!(e.time, Timestamp::parse("2026-11-26T12:00:00Z").unwrap());
        assert_eq!(
            e.fields,
            vec![
                FeatureValue::Float64(12.5),
                FeatureValue::String("m7".into())
            ]
        );
        let e = d
            .decode(
                br#"{"amount": 1, "event_time": 1795694400000}"#,
                Some(b"u7"),
            )
            .unwrap();
        assert_eq!(e.entity.as_str(), "u7");
        assert_eq!(e.fields[1], FeatureValue::Null);
    }

    #[test]
    fn bad_events_are_rejected_with_a_reason() {
        let d = decoder("int64");
        let cases: [(&[u8], &str); 6] = [
            (b"{nope", "undecodable"),
            (b"[1,2]", "undecodable"),
            (br#"{"user_id": "abc", "event_time": 0}"#, "schema_mismatch"),
            (br#"{"user_id": 1}"#, "schema_mismatch"),
            (
                br#"{"user_id": 1, "event_time": "yesterday"}"#,
                "schema_mismatch",
            ),
            (
                br#"{"user_id": 1, "event_time": 0, "amount": "x"}"#,
                "schema_mismatch",
            ),
        ];
        for (payload, reason) in cases {
            let err = d.decode(payload, None).unwrap_err();
            assert_eq!(
                err.reason(),
                reason,
                "{}: {err}",
                String::from_utf8_lossy(payload)
            );
        }
    }
}
