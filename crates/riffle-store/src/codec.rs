//! The binary encoding of one feature group's row (encoding version 1).
//!
//! Written by hand rather than with a general serialiser because the layout is a public
//! contract for external writers and must stay byte-for-byte stable and tag-free: types come
//! from the registry, not from the bytes. Layout (all integers little-endian):
//!
//! ```text
//! u8      encoding version (1)
//! varint  event time, ms since epoch (unsigned LEB128)
//! varint  computed-at minus event time, ms (zigzag LEB128)
//! varint  number of features n (must equal the group's declared count)
//! bytes   null bitmap, ceil(n/8) bytes: bit i (LSB first) set = feature i is null
//! then each non-null feature in declared order:
//!   int64         zigzag LEB128 varint
//!   float64       8 bytes IEEE-754
//!   bool          1 byte, 0 or 1
//!   string        varint byte length, then UTF-8 bytes
//!   float_vector  dim × 4 bytes IEEE-754 f32
//! ```

use riffle_core::{FeatureType, FeatureValue, Timestamp};
use riffle_registry::FeatureGroup;

/// Encoding version written by this build.
pub const ENCODING_VERSION: u8 = 1;

/// One group's values for one entity, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupRow {
    /// The time the values are true as of (the event time of the data behind them).
    pub event_ts: Timestamp,
    /// When the row was computed and written.
    pub computed_at: Timestamp,
    /// One value per declared feature, in declared order.
    pub values: Vec<FeatureValue>,
}

/// Why stored bytes are not a row of the group.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("empty row")]
    Empty,
    #[error("unknown encoding version {0}")]
    UnknownVersion(u8),
    #[error("row ends early")]
    Truncated,
    #[error("row holds {stored} features, the group declares {declared}")]
    FeatureCount { stored: u64, declared: usize },
    #[error("{0} bytes left over after the last feature")]
    TrailingBytes(usize),
    #[error("feature {0} is not valid UTF-8")]
    BadUtf8(usize),
    #[error("feature {0} holds an invalid bool")]
    BadBool(usize),
    #[error("timestamp out of range")]
    BadTimestamp,
}

/// Why a row cannot be encoded for a group.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("row has {got} values, the group declares {declared}")]
    FeatureCount { got: usize, declared: usize },
    #[error("value for feature {feature:?} does not fit its type {ty}")]
    WrongType { feature: String, ty: FeatureType },
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Encodes `row` for `group`, checking every value against its declared type.
pub fn encode(group: &FeatureGroup, row: &GroupRow) -> Result<Vec<u8>, EncodeError> {
    let n = group.features.len();
    if row.values.len() != n {
        return Err(EncodeError::FeatureCount {
            got: row.values.len(),
            declared: n,
        });
    }
    let mut out = Vec::with_capacity(16 + n * 9);
    out.push(ENCODING_VERSION);
    put_varint(&mut out, row.event_ts.millis() as u64);
    put_varint(
        &mut out,
        zigzag(row.computed_at.millis() - row.event_ts.millis()),
    );
    put_varint(&mut out, n as u64);
    let bitmap_at = out.len();
    out.resize(bitmap_at + n.div_ceil(8), 0);
    for (i, (feature, value)) in group.features.iter().zip(&row.values).enumerate() {
        if !value.fits(feature.ty) {
            return Err(EncodeError::WrongType {
                feature: feature.name.clone(),
                ty: feature.ty,
            });
        }
        match value {
            FeatureValue::Null => out[bitmap_at + i / 8] |= 1 << (i % 8),
            FeatureValue::Int64(v) => put_varint(&mut out, zigzag(*v)),
            FeatureValue::Float64(v) => out.extend_from_slice(&v.to_le_bytes()),
            FeatureValue::Bool(v) => out.push(u8::from(*v)),
            FeatureValue::String(s) => {
                put_varint(&mut out, s.len() as u64);
                out.extend_from_slice(s.as_bytes());
            }
            FeatureValue::FloatVector(v) => {
                for x in v {
                    out.extend_from_slice(&x.to_le_bytes());
                }
            }
        }
    }
    Ok(out)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.at.checked_add(n).ok_or(DecodeError::Truncated)?;
        let slice = self.bytes.get(self.at..end).ok_or(DecodeError::Truncated)?;
        self.at = end;
        Ok(slice)
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = *self.bytes.get(self.at).ok_or(DecodeError::Truncated)?;
            self.at += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError::Truncated)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
}

/// Decodes a row of `group`. Fails rather than guess when the bytes do not match the
/// group's declared features exactly.
pub fn decode(group: &FeatureGroup, bytes: &[u8]) -> Result<GroupRow, DecodeError> {
    let (&version, _) = bytes.split_first().ok_or(DecodeError::Empty)?;
    if version != ENCODING_VERSION {
        return Err(DecodeError::UnknownVersion(version));
    }
    let mut r = Reader { bytes, at: 1 };
    let event_ms = r.varint()?;
    let delta = unzigzag(r.varint()?);
    let event_ts = i64::try_from(event_ms)
        .ok()
        .and_then(|ms| Timestamp::from_millis(ms).ok())
        .ok_or(DecodeError::BadTimestamp)?;
    let computed_at = event_ts
        .millis()
        .checked_add(delta)
        .and_then(|ms| Timestamp::from_millis(ms).ok())
        .ok_or(DecodeError::BadTimestamp)?;
    let n = group.features.len();
    let stored = r.varint()?;
    if stored != n as u64 {
        return Err(DecodeError::FeatureCount {
            stored,
            declared: n,
        });
    }
    let bitmap = r.take(n.div_ceil(8))?;
    let mut values = Vec::with_capacity(n);
    for (i, feature) in group.features.iter().enumerate() {
        if bitmap[i / 8] & (1 << (i % 8)) != 0 {
            values.push(FeatureValue::Null);
            continue;
        }
        let value = match feature.ty {
            FeatureType::Int64 => FeatureValue::Int64(unzigzag(r.varint()?)),
            FeatureType::Float64 => FeatureValue::Float64(f64::from_le_bytes(r.array()?)),
            FeatureType::Bool => match r.take(1)?[0] {
                0 => FeatureValue::Bool(false),
                1 => FeatureValue::Bool(true),
                _ => return Err(DecodeError::BadBool(i)),
            },
            FeatureType::String => {
                let len = usize::try_from(r.varint()?).map_err(|_| DecodeError::Truncated)?;
                let raw = r.take(len)?;
                FeatureValue::String(
                    std::str::from_utf8(raw)
                        .map_err(|_| DecodeError::BadUtf8(i))?
                        .to_owned(),
                )
            }
            FeatureType::FloatVector { dim } => {
                let mut v = Vec::with_capacity(dim as usize);
                for _ in 0..dim {
                    v.push(f32::from_le_bytes(r.array()?));
                }
                FeatureValue::FloatVector(v)
            }
        };
        values.push(value);
    }
    if r.at != bytes.len() {
        return Err(DecodeError::TrailingBytes(bytes.len() - r.at));
    }
    Ok(GroupRow {
        event_ts,
        computed_at,
        values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use riffle_registry::Registry;

    fn group() -> FeatureGroup {
        let reg = Registry::from_toml(
            r#"
[[entities]]
name = "user"
[[feature_groups]]
name = "g"
entity = "user"
ttl = "1h"
freshness_slo = "1m"
features = [
  { name = "i", type = "int64", default = 0 },
  { name = "f", type = "float64", default = 0.0 },
  { name = "b", type = "bool", default = false },
  { name = "s", type = "string", default = "" },
  { name = "v", type = "float_vector", dimension = 2, default = [0.0, 0.0] },
]
"#,
        )
        .unwrap();
        reg.groups[0].clone()
    }

    fn ts(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms).unwrap()
    }

    #[test]
    fn round_trips_and_rejects_mismatches() {
        let g = group();
        let row = GroupRow {
            event_ts: ts(1_795_694_400_000),
            computed_at: ts(1_795_694_400_250),
            values: vec![
                FeatureValue::Int64(-3),
                FeatureValue::Float64(42.5),
                FeatureValue::Bool(true),
                FeatureValue::Null,
                FeatureValue::FloatVector(vec![0.25, -1.5]),
            ],
        };
        let bytes = encode(&g, &row).unwrap();
        assert_eq!(decode(&g, &bytes).unwrap(), row);
        assert_eq!(
            decode(&g, &bytes[..bytes.len() - 1]),
            Err(DecodeError::Truncated)
        );
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode(&g, &longer), Err(DecodeError::TrailingBytes(1)));
        assert_eq!(decode(&g, &[9]), Err(DecodeError::UnknownVersion(9)));
        let mut wrong = row.clone();
        wrong.values[0] = FeatureValue::Bool(true);
        assert!(encode(&g, &wrong).is_err());
    }

    /// The worked example in docs/storage-layout.md, byte for byte.
    #[test]
    fn the_documented_example_encodes_exactly() {
        let reg = Registry::from_toml(
            r#"
[[entities]]
name = "user"
[[feature_groups]]
name = "user_velocity"
entity = "user"
ttl = "2h"
freshness_slo = "30s"
features = [
  { name = "tx_count_1h", type = "int64", default = 0 },
  { name = "tx_sum_1h", type = "float64", default = 0.0 },
]
"#,
        )
        .unwrap();
        let event = Timestamp::parse("2026-11-26T13:43:23Z").unwrap();
        let row = GroupRow {
            event_ts: event,
            computed_at: Timestamp::from_millis(event.millis() + 250).unwrap(),
            values: vec![FeatureValue::Int64(3), FeatureValue::Float64(42.5)],
        };
        let hex: Vec<String> = encode(&reg.groups[0], &row)
            .unwrap()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex.join(" "),
            "01 f8 f0 e2 c0 a1 34 f4 03 02 00 06 00 00 00 00 00 40 45 40"
        );
    }

    proptest! {
        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&group(), &bytes);
        }

        #[test]
        fn any_row_round_trips(i in any::<i64>(), f in -1e300f64..1e300, b in any::<bool>(),
                               s in ".{0,20}", ev in 0i64..4_000_000_000_000, lag in 0i64..100_000) {
            let g = group();
            let row = GroupRow {
                event_ts: ts(ev),
                computed_at: ts(ev + lag),
                values: vec![FeatureValue::Int64(i), FeatureValue::Float64(f), FeatureValue::Bool(b),
                             FeatureValue::String(s), FeatureValue::FloatVector(vec![1.0, 2.0])],
            };
            prop_assert_eq!(decode(&g, &encode(&g, &row).unwrap()).unwrap(), row);
        }
    }
}
