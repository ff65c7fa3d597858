//! JSON output of the read responses, written straight into one byte buffer.
//!
//! Written by hand rather than through `serde_json`'s serializer because profiling the
//! hot-cache path (perf, `wrk -c32` on one entity × four groups) showed a quarter of the
//! server's user time in serialising: every map key (group, feature and status names, all
//! fixed by the registry) was escaped again on every request, and the output buffer grew by
//! doubling. Here every name the registry fixes is quoted and escaped once, at start-up
//! ([`JsonNames`]); a response is then mostly copies of those fragments. Anything a client
//! controls (entity ids) and every value still goes through `serde_json`, so escaping and
//! number formatting are exactly `serde_json`'s.

use riffle_core::{Degradation, FeatureValue, Timestamp, ValueStatus};
use riffle_registry::Registry;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

/// Every name the registry fixes, quoted and escaped as JSON strings, computed once.
#[derive(Debug, Clone)]
pub struct JsonNames {
    /// `"<entity>"` per entity.
    pub entities: Vec<Box<[u8]>>,
    /// `"<group>"` per group.
    pub groups: Vec<Box<[u8]>>,
    /// `"<feature>":{"value":` per group, per feature: the key and the value's prefix.
    pub feature_keys: Vec<Vec<Box<[u8]>>>,
}

fn quoted(name: &str) -> Box<[u8]> {
    // Serialising a `&str` into a `Vec` cannot fail.
    serde_json::to_vec(name).unwrap_or_default().into()
}

impl JsonNames {
    pub fn new(registry: &Registry) -> Self {
        Self {
            entities: registry.entities.iter().map(|e| quoted(&e.name)).collect(),
            groups: registry.groups.iter().map(|g| quoted(&g.name)).collect(),
            feature_keys: registry
                .groups
                .iter()
                .map(|g| {
                    g.features
                        .iter()
                        .map(|f| {
                            let mut key = quoted(&f.name).into_vec();
                            key.extend_from_slice(b":{\"value\":");
                            key.into()
                        })
                        .collect()
                })
                .collect(),
        }
    }
}

/// A JSON document being written.
pub struct JsonBuf(pub Vec<u8>);

impl JsonBuf {
    pub fn with_capacity(bytes: usize) -> Self {
        Self(Vec::with_capacity(bytes))
    }

    #[inline]
    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.extend_from_slice(bytes);
        self
    }

    /// A string from outside (an entity id): escaped by `serde_json`.
    pub fn string(&mut self, s: &str) -> &mut Self {
        // Writing into a `Vec` cannot fail.
        let _ = serde_json::to_writer(&mut self.0, s);
        self
    }

    /// A status or level name: plain lower-case ASCII, never needing escapes.
    #[inline]
    pub fn name(&mut self, s: &'static str) -> &mut Self {
        self.0.push(b'"');
        self.0.extend_from_slice(s.as_bytes());
        self.0.push(b'"');
        self
    }

    pub fn status(&mut self, status: ValueStatus) -> &mut Self {
        self.name(status.as_str())
    }

    pub fn level(&mut self, level: Degradation) -> &mut Self {
        self.name(level.as_str())
    }

    pub fn value(&mut self, value: &FeatureValue) -> &mut Self {
        match value {
            FeatureValue::Int64(i) => {
                let mut b = itoa::Buffer::new();
                self.0.extend_from_slice(b.format(*i).as_bytes());
            }
            FeatureValue::Bool(true) => self.0.extend_from_slice(b"true"),
            FeatureValue::Bool(false) => self.0.extend_from_slice(b"false"),
            FeatureValue::Null => self.0.extend_from_slice(b"null"),
            // Floats (with serde_json's non-finite → null), strings and vectors exactly as
            // serde_json writes them.
            other => {
                let _ = serde_json::to_writer(&mut self.0, other);
            }
        }
        self
    }

    pub fn u64(&mut self, v: u64) -> &mut Self {
        let mut b = itoa::Buffer::new();
        self.0.extend_from_slice(b.format(v).as_bytes());
        self
    }

    pub fn timestamp(&mut self, t: Timestamp) -> &mut Self {
        self.0.push(b'"');
        t.write_rfc3339(&mut self.0);
        self.0.push(b'"');
        self
    }

    /// The finished document as an `application/json` response.
    pub fn into_response(self) -> Response {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            self.0,
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a client controls and every value come out exactly as `serde_json` writes them.
    #[test]
    fn ids_and_values_are_written_as_serde_json_writes_them() {
        let values = [
            FeatureValue::Int64(i64::MIN),
            FeatureValue::Float64(0.1),
            FeatureValue::Float64(-1e300),
            FeatureValue::Float64(f64::NAN),
            FeatureValue::Bool(false),
            FeatureValue::Null,
            FeatureValue::String("tab\t\"quote\" é \u{1}".into()),
            FeatureValue::FloatVector(vec![0.25, -1.5]),
        ];
        for v in &values {
            let mut buf = JsonBuf::with_capacity(8);
            buf.value(v);
            assert_eq!(buf.0, serde_json::to_vec(v).unwrap(), "{v:?}");
        }
        let id = "u\"42\\\n\u{7f}";
        let mut buf = JsonBuf::with_capacity(8);
        buf.string(id)
            .raw(b",")
            .u64(u64::MAX)
            .raw(b",")
            .status(ValueStatus::Fresh);
        let text = format!("[{}]", String::from_utf8(buf.0).unwrap());
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, serde_json::json!([id, u64::MAX, "fresh"]));
    }
}
