//! Row encoding version 2 (written by default): version 1's values made smaller where it
//! costs nothing exact. Layout (the contract is `docs/storage-layout.md`):
//!
//! ```text
//! u8      encoding version (2)
//! u8      flags: bit 0 = a null bitmap follows; bit 1 = event time in whole seconds;
//!         bits 2..7 = feature count mod 64 (a check: the registry knows the count)
//! varint  event time minus EPOCH (2025-01-01T00:00:00Z), zigzag, in ms (or s if bit 1)
//! varint  computed-at minus event time, ms, zigzag
//! bytes   null bitmap, ceil(n/8) bytes, only if flags bit 0 (as in version 1)
//! bytes   float tags, ceil(f/2) bytes, f = non-null float64 values: 4 bits each, the k-th
//!         float's in the low half of byte k/2 when k is even, the high half when odd;
//!         an unused high half is 0
//! then each non-null feature in declared order:
//!   int64         zigzag varint
//!   float64       tag 0: 8 bytes IEEE-754 LE;
//!                 tag t in 1..=15: zigzag varint m, |m| <= 2^53; value = m / 10^(t-1)
//!   bool, string, float_vector: as in version 1
//! ```
//!
//! A short float decodes with one conversion and one division, both exact or correctly
//! rounded in IEEE-754 (Clinger's fast path: m and 10^(t-1) <= 10^14 are exact binary64
//! values, and a division is correctly rounded). The encoder writes a short form only after
//! dividing back and finding the very same bits, so every f64 — NaN payloads, -0.0, ±inf,
//! subnormals — comes back bit for bit (those four always take the raw form).

use riffle_core::{FeatureType, FeatureValue, Timestamp};
use riffle_registry::FeatureGroup;

use super::{
    computed_at, put_bytes_value, put_varint, unzigzag, zigzag, DecodeError, GroupRow, Reader,
};

/// The version byte of this encoding.
pub const VERSION: u8 = 2;

/// Event times count from 2025-01-01T00:00:00Z, so whole seconds of today's times fit a
/// 4-byte varint (8.5 years either side at 4 bytes; ms take 6 bytes until 2059).
pub const EPOCH_MS: i64 = 1_735_689_600_000;

const FLAG_NULLS: u8 = 0b01;
const FLAG_SECONDS: u8 = 0b10;
const COUNT_SHIFT: u32 = 2;
const COUNT_MASK: usize = 0b11_1111;

/// 10^(t-1) for tags t = 1..=15: every one is exactly representable in binary64.
const POW10: [f64; 15] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14,
];

/// Largest |mantissa| a reader accepts: every integer up to 2^53 is exact in binary64.
const MAX_MANTISSA: u64 = 1 << 53;

/// The encoder's own, tighter limit: |m| < 2^48 keeps the zigzag varint within 7 bytes; an
/// 8-byte mantissa would be no smaller than the raw form and slower to read.
const SHORT_LIMIT: f64 = (1u64 << 48) as f64;

/// The short form of `x`, `(tag, mantissa)`, when one gives back `x` bit for bit: the
/// smallest exponent that does (so the shortest mantissa). `None`: only the raw form is
/// exact (NaN, ±inf, -0.0, subnormals, most results of arithmetic such as a mean).
///
/// No decimal text is formatted: trying `round(x · 10^e)` for e = 0, 1, … and checking the
/// division back is cheaper than shortest-digit formatting (ryu or `{}`), and the check is
/// what makes it exact, whatever the rounding of the multiplication.
pub fn short_form(x: f64) -> Option<(u8, i64)> {
    for (e, &p) in POW10.iter().enumerate() {
        let y = x * p;
        // NaN and ±inf end here too; |y| only grows with e.
        if y.is_nan() || y.abs() >= SHORT_LIMIT {
            return None;
        }
        let m = y.round() as i64;
        if (m as f64 / p).to_bits() == x.to_bits() {
            return Some((e as u8 + 1, m));
        }
    }
    None
}

/// Appends `row` (already checked against its group) to `out`.
pub(super) fn encode(row: &GroupRow, out: &mut Vec<u8>) {
    out.push(VERSION);
    encode_body(row, out);
}

/// Appends everything of a version-2 row after its version byte (version 3 reuses it).
pub(super) fn encode_body(row: &GroupRow, out: &mut Vec<u8>) {
    let n = row.values.len();
    let event = row.event_ts.millis();
    let has_null = row.values.iter().any(FeatureValue::is_null);
    let seconds = event % 1000 == 0;
    let mut flags = ((n & COUNT_MASK) as u8) << COUNT_SHIFT;
    if has_null {
        flags |= FLAG_NULLS;
    }
    if seconds {
        flags |= FLAG_SECONDS;
    }
    out.push(flags);
    // Timestamps are 0..=year 9999 in ms: neither difference can overflow.
    if seconds {
        put_varint(out, zigzag(event / 1000 - EPOCH_MS / 1000));
    } else {
        put_varint(out, zigzag(event - EPOCH_MS));
    }
    put_varint(out, zigzag(row.computed_at.millis() - event));
    if has_null {
        let at = out.len();
        out.resize(at + n.div_ceil(8), 0);
        for (i, value) in row.values.iter().enumerate() {
            if value.is_null() {
                out[at + i / 8] |= 1 << (i % 8);
            }
        }
    }
    let floats = row
        .values
        .iter()
        .filter(|v| matches!(v, FeatureValue::Float64(_)))
        .count();
    let tags_at = out.len();
    out.resize(tags_at + floats.div_ceil(2), 0);
    let mut k = 0;
    for value in &row.values {
        match value {
            FeatureValue::Null => {}
            FeatureValue::Int64(v) => put_varint(out, zigzag(*v)),
            FeatureValue::Float64(x) => {
                match short_form(*x) {
                    Some((tag, m)) => {
                        out[tags_at + k / 2] |= tag << (4 * (k % 2));
                        put_varint(out, zigzag(m));
                    }
                    None => out.extend_from_slice(&x.to_le_bytes()),
                }
                k += 1;
            }
            FeatureValue::Bool(v) => out.push(u8::from(*v)),
            FeatureValue::String(_) | FeatureValue::FloatVector(_) => put_bytes_value(out, value),
        }
    }
}

/// Reads one float64 whose 4-bit tag is `tag` (feature `i`).
fn float(r: &mut Reader<'_>, tag: u8, i: usize) -> Result<f64, DecodeError> {
    if tag == 0 {
        return Ok(f64::from_le_bytes(r.array()?));
    }
    let m = unzigzag(r.varint()?);
    if m.unsigned_abs() > MAX_MANTISSA {
        return Err(DecodeError::BadMantissa(i));
    }
    Ok(m as f64 / POW10[usize::from(tag - 1)])
}

/// Decodes a version-2 row (`bytes[0]` is the version byte).
pub(super) fn decode(group: &FeatureGroup, bytes: &[u8]) -> Result<GroupRow, DecodeError> {
    decode_body(group, Reader { bytes, at: 1 })
}

/// Decodes what follows a version-2 row's version byte, from `r` on, to the end of the
/// bytes (version 3 reuses it). The row has no partition.
pub(super) fn decode_body(
    group: &FeatureGroup,
    mut r: Reader<'_>,
) -> Result<GroupRow, DecodeError> {
    let flags = r.byte()?;
    let n = group.features.len();
    let check = flags >> COUNT_SHIFT;
    if usize::from(check) != n & COUNT_MASK {
        return Err(DecodeError::FeatureCountCheck {
            stored: check,
            declared: n,
        });
    }
    let event = unzigzag(r.varint()?);
    let event_ms = if flags & FLAG_SECONDS != 0 {
        event
            .checked_add(EPOCH_MS / 1000)
            .and_then(|s| s.checked_mul(1000))
    } else {
        event.checked_add(EPOCH_MS)
    };
    let event_ts = event_ms
        .and_then(|ms| Timestamp::from_millis(ms).ok())
        .ok_or(DecodeError::BadTimestamp)?;
    let computed_at = computed_at(event_ts, unzigzag(r.varint()?))?;
    let bitmap = match flags & FLAG_NULLS {
        0 => None,
        _ => Some(r.take(n.div_ceil(8))?),
    };
    let is_null = |i: usize| bitmap.is_some_and(|b| b[i / 8] & (1 << (i % 8)) != 0);
    let floats = group
        .features
        .iter()
        .enumerate()
        .filter(|&(i, f)| f.ty == FeatureType::Float64 && !is_null(i))
        .count();
    let tags = r.take(floats.div_ceil(2))?;
    if floats % 2 == 1 && tags[floats / 2] >> 4 != 0 {
        return Err(DecodeError::BadFloatTags);
    }
    let mut k = 0;
    let mut values = Vec::with_capacity(n);
    for (i, feature) in group.features.iter().enumerate() {
        if is_null(i) {
            values.push(FeatureValue::Null);
            continue;
        }
        r.value(i, feature.ty, &mut values, |r| {
            let tag = (tags[k / 2] >> (4 * (k % 2))) & 0x0f;
            k += 1;
            float(r, tag, i)
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
