//! Feature types and typed feature values.

use std::fmt;

use serde::ser::{Serialize, SerializeSeq, Serializer};

/// The declared type of a feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeatureType {
    Int64,
    Float64,
    Bool,
    String,
    /// A vector of `f32` of exactly `dim` elements (embeddings).
    FloatVector {
        dim: u32,
    },
}

impl fmt::Display for FeatureType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FeatureType::Int64 => f.write_str("int64"),
            FeatureType::Float64 => f.write_str("float64"),
            FeatureType::Bool => f.write_str("bool"),
            FeatureType::String => f.write_str("string"),
            FeatureType::FloatVector { dim } => write!(f, "float_vector[{dim}]"),
        }
    }
}

/// Why a value does not fit a feature type.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValueError {
    #[error("expected {expected}, got {got}")]
    WrongType { expected: FeatureType, got: String },
    #[error("expected a vector of {expected} floats, got {got}")]
    WrongDimension { expected: u32, got: usize },
    #[error("{0} is not a finite number")]
    NotFinite(String),
    #[error("string of {0} bytes is longer than the {MAX_STRING_LEN}-byte limit")]
    StringTooLong(usize),
}

/// Longest string feature value accepted.
pub const MAX_STRING_LEN: usize = 64 * 1024;

/// A typed feature value. `Null` is an explicitly stored null; a value that was never stored
/// is not a `FeatureValue` at all (see [`crate::ValueStatus::Missing`]).
#[derive(Debug, Clone, PartialEq)]
pub enum FeatureValue {
    Null,
    Int64(i64),
    Float64(f64),
    Bool(bool),
    String(String),
    FloatVector(Vec<f32>),
}

fn describe(value: &serde_json::Value) -> String {
    let text = value.to_string();
    if text.len() > 40 {
        format!("{}…", &text[..text.floor_char_boundary_compat(40)])
    } else {
        text
    }
}

/// `str::floor_char_boundary` is unstable; this is the small stable equivalent.
trait FloorCharBoundary {
    fn floor_char_boundary_compat(&self, index: usize) -> usize;
}

impl FloorCharBoundary for str {
    fn floor_char_boundary_compat(&self, mut index: usize) -> usize {
        while index > 0 && !self.is_char_boundary(index) {
            index -= 1;
        }
        index
    }
}

impl FeatureValue {
    /// Reads a JSON value as a value of type `ty`. JSON `null` is [`FeatureValue::Null`].
    /// Integers are accepted for floats; floats with a fraction are not accepted for ints.
    pub fn from_json(ty: FeatureType, value: &serde_json::Value) -> Result<Self, ValueError> {
        use serde_json::Value as J;
        let wrong = || ValueError::WrongType {
            expected: ty,
            got: describe(value),
        };
        match (ty, value) {
            (_, J::Null) => Ok(FeatureValue::Null),
            (FeatureType::Int64, J::Number(n)) => {
                if let Some(i) = n.as_i64() {
                    Ok(FeatureValue::Int64(i))
                } else {
                    // 3.0 is an integer written as a float (pandas does this); 3.5 is not.
                    match n.as_f64() {
                        Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
                            Ok(FeatureValue::Int64(f as i64))
                        }
                        _ => Err(wrong()),
                    }
                }
            }
            (FeatureType::Float64, J::Number(n)) => match n.as_f64() {
                Some(f) if f.is_finite() => Ok(FeatureValue::Float64(f)),
                _ => Err(ValueError::NotFinite(n.to_string())),
            },
            (FeatureType::Bool, J::Bool(b)) => Ok(FeatureValue::Bool(*b)),
            (FeatureType::String, J::String(s)) => {
                if s.len() > MAX_STRING_LEN {
                    Err(ValueError::StringTooLong(s.len()))
                } else {
                    Ok(FeatureValue::String(s.clone()))
                }
            }
            (FeatureType::FloatVector { dim }, J::Array(items)) => {
                if items.len() != dim as usize {
                    return Err(ValueError::WrongDimension {
                        expected: dim,
                        got: items.len(),
                    });
                }
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    match item.as_f64() {
                        Some(f) if f.is_finite() => out.push(f as f32),
                        _ => return Err(wrong()),
                    }
                }
                Ok(FeatureValue::FloatVector(out))
            }
            _ => Err(wrong()),
        }
    }

    /// Reads text (a CSV cell) as a value of type `ty`. An empty cell is `Null`. Vectors are
    /// written as JSON arrays (`[0.1, 0.2]`) or `;`-separated floats.
    pub fn parse_text(ty: FeatureType, text: &str) -> Result<Self, ValueError> {
        let text = text.trim();
        let wrong = || ValueError::WrongType {
            expected: ty,
            got: format!("{text:?}"),
        };
        if text.is_empty() {
            return Ok(FeatureValue::Null);
        }
        match ty {
            FeatureType::Int64 => text.parse().map(FeatureValue::Int64).map_err(|_| wrong()),
            FeatureType::Float64 => match text.parse::<f64>() {
                Ok(f) if f.is_finite() => Ok(FeatureValue::Float64(f)),
                Ok(_) => Err(ValueError::NotFinite(text.to_owned())),
                Err(_) => Err(wrong()),
            },
            FeatureType::Bool => match text.to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(FeatureValue::Bool(true)),
                "false" | "0" => Ok(FeatureValue::Bool(false)),
                _ => Err(wrong()),
            },
            FeatureType::String => {
                if text.len() > MAX_STRING_LEN {
                    Err(ValueError::StringTooLong(text.len()))
                } else {
                    Ok(FeatureValue::String(text.to_owned()))
                }
            }
            FeatureType::FloatVector { .. } => {
                if text.starts_with('[') {
                    let json: serde_json::Value =
                        serde_json::from_str(text).map_err(|_| wrong())?;
                    Self::from_json(ty, &json)
                } else {
                    let json = serde_json::Value::Array(
                        text.split(';')
                            .map(|part| {
                                part.trim()
                                    .parse::<f64>()
                                    .ok()
                                    .and_then(serde_json::Number::from_f64)
                                    .map(serde_json::Value::Number)
                                    .ok_or_else(wrong)
                            })
                            .collect::<Result<_, _>>()?,
                    );
                    Self::from_json(ty, &json)
                }
            }
        }
    }

    /// True when this value may be stored in a feature of type `ty` (`Null` fits any type).
    pub fn fits(&self, ty: FeatureType) -> bool {
        matches!(
            (self, ty),
            (FeatureValue::Null, _)
                | (FeatureValue::Int64(_), FeatureType::Int64)
                | (FeatureValue::Float64(_), FeatureType::Float64)
                | (FeatureValue::Bool(_), FeatureType::Bool)
                | (FeatureValue::String(_), FeatureType::String)
        ) || matches!((self, ty), (FeatureValue::FloatVector(v), FeatureType::FloatVector { dim }) if v.len() == dim as usize)
    }

    pub fn is_null(&self) -> bool {
        matches!(self, FeatureValue::Null)
    }

    /// The value as a float, for distribution metrics (`None` for strings, vectors, null).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            FeatureValue::Int64(i) => Some(*i as f64),
            FeatureValue::Float64(f) => Some(*f),
            FeatureValue::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            _ => None,
        }
    }
}

/// Serialised as plain JSON (`3`, `42.5`, `true`, `"gold"`, `[0.25, -1.5]`, `null`) straight
/// to the writer, with no intermediate `serde_json::Value`.
impl Serialize for FeatureValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            FeatureValue::Null => serializer.serialize_none(),
            FeatureValue::Int64(i) => serializer.serialize_i64(*i),
            FeatureValue::Float64(f) => serializer.serialize_f64(*f),
            FeatureValue::Bool(b) => serializer.serialize_bool(*b),
            FeatureValue::String(s) => serializer.serialize_str(s),
            FeatureValue::FloatVector(v) => {
                let mut seq = serializer.serialize_seq(Some(v.len()))?;
                for x in v {
                    seq.serialize_element(x)?;
                }
                seq.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_is_checked_against_the_type() {
        assert_eq!(
            FeatureValue::from_json(FeatureType::Int64, &json!(3)),
            Ok(FeatureValue::Int64(3))
        );
        assert_eq!(
            FeatureValue::from_json(FeatureType::Int64, &json!(3.0)),
            Ok(FeatureValue::Int64(3))
        );
        assert!(FeatureValue::from_json(FeatureType::Int64, &json!(3.5)).is_err());
        assert!(FeatureValue::from_json(FeatureType::Int64, &json!("abc")).is_err());
        assert_eq!(
            FeatureValue::from_json(FeatureType::Float64, &json!(2)),
            Ok(FeatureValue::Float64(2.0))
        );
        let vec = FeatureType::FloatVector { dim: 2 };
        assert_eq!(
            FeatureValue::from_json(vec, &json!([0.25, -1.5])),
            Ok(FeatureValue::FloatVector(vec![0.25, -1.5]))
        );
        assert_eq!(
            FeatureValue::from_json(vec, &json!([1.0])),
            Err(ValueError::WrongDimension {
                expected: 2,
                got: 1
            })
        );
        assert_eq!(
            FeatureValue::from_json(FeatureType::Bool, &json!(null)),
            Ok(FeatureValue::Null)
        );
    }

    #[test]
    fn text_cells_parse() {
        assert_eq!(
            FeatureValue::parse_text(FeatureType::Bool, "true"),
            Ok(FeatureValue::Bool(true))
        );
        assert_eq!(
            FeatureValue::parse_text(FeatureType::FloatVector { dim: 2 }, "0.5;1"),
            Ok(FeatureValue::FloatVector(vec![0.5, 1.0]))
        );
        assert_eq!(
            FeatureValue::parse_text(FeatureType::Int64, ""),
            Ok(FeatureValue::Null)
        );
        assert!(FeatureValue::parse_text(FeatureType::Float64, "nan").is_err());
    }

    #[test]
    fn serialises_plain_json() {
        let v = vec![
            FeatureValue::Int64(3),
            FeatureValue::Float64(42.5),
            FeatureValue::Bool(true),
            FeatureValue::String("gold".into()),
            FeatureValue::FloatVector(vec![0.25, -1.5]),
            FeatureValue::Null,
        ];
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"[3,42.5,true,"gold",[0.25,-1.5],null]"#
        );
    }
}
