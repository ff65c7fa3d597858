//! Row encoding version 1: the first encoding, read forever and written only while
//! `[store] encoding = 1` (a rolling upgrade). Layout (all integers little-endian):
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

use riffle_core::{FeatureValue, Timestamp};
use riffle_registry::FeatureGroup;

use super::{
    computed_at, put_bytes_value, put_varint, unzigzag, zigzag, DecodeError, GroupRow, Reader,
};

/// The version byte of this encoding.
pub const VERSION: u8 = 1;

/// Appends `row` (already checked against its group) to `out`.
pub(super) fn encode(row: &GroupRow, out: &mut Vec<u8>) {
    let n = row.values.len();
    out.push(VERSION);
    put_varint(out, row.event_ts.millis() as u64);
    put_varint(
        out,
        zigzag(row.computed_at.millis() - row.event_ts.millis()),
    );
    put_varint(out, n as u64);
    let bitmap_at = out.len();
    out.resize(bitmap_at + n.div_ceil(8), 0);
    for (i, value) in row.values.iter().enumerate() {
        match value {
            FeatureValue::Null => out[bitmap_at + i / 8] |= 1 << (i % 8),
            FeatureValue::Int64(v) => put_varint(out, zigzag(*v)),
            FeatureValue::Float64(v) => out.extend_from_slice(&v.to_le_bytes()),
            FeatureValue::Bool(v) => out.push(u8::from(*v)),
            FeatureValue::String(_) | FeatureValue::FloatVector(_) => put_bytes_value(out, value),
        }
    }
}

/// Decodes a version-1 row (`bytes[0]` is the version byte).
pub(super) fn decode(group: &FeatureGroup, bytes: &[u8]) -> Result<GroupRow, DecodeError> {
    let mut r = Reader { bytes, at: 1 };
    let event_ms = r.varint()?;
    let delta = unzigzag(r.varint()?);
    let event_ts = i64::try_from(event_ms)
        .ok()
        .and_then(|ms| Timestamp::from_millis(ms).ok())
        .ok_or(DecodeError::BadTimestamp)?;
    let computed_at = computed_at(event_ts, delta)?;
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
        r.value(i, feature.ty, &mut values, |r| {
            Ok(f64::from_le_bytes(r.array()?))
        })?;
    }
    r.finish()?;
    Ok(GroupRow {
        event_ts,
        computed_at,
        values,
        partition: None,
    })
}
