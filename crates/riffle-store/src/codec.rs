//! The binary encoding of one feature group's row, as stored in a group's hash field.
//!
//! Written by hand rather than with a general serialiser because the layout is a public
//! contract for external writers (`docs/storage-layout.md`) and must stay byte-for-byte
//! stable and tag-free: types come from the registry, not from the bytes.
//!
//! A version byte leads every row and alone decides how the rest is read, so a reader
//! accepts every version whatever it writes itself:
//! - [`v2`] (written by default): compact. The event time counts from a recent epoch, a
//!   6-bit feature-count check replaces the count, the null bitmap is there only when a
//!   value is null, and a float64 is stored as a short decimal (zigzag mantissa and a
//!   power-of-ten exponent, decoded with one exact division) whenever that gives back the
//!   very same bits, else as its 8 raw bytes.
//! - [`v3`] (written by default for a row that carries a partition): version 2 after the
//!   Kafka partition the row's events arrive on, so a reader ages the row by that
//!   partition's watermark. A row without one is written as version 2.
//! - [`v1`]: the first encoding. Read forever; written while `[store] encoding = 1`, so a
//!   rolling upgrade can keep writing rows that readers not yet upgraded understand
//!   (`encoding = 2` likewise keeps partitions out for readers that know only version 2).

use riffle_core::{FeatureType, FeatureValue, Timestamp};
use riffle_registry::FeatureGroup;
pub use riffle_registry::RowEncoding;

pub mod v1;
pub mod v2;
pub mod v3;

#[cfg(test)]
mod tests;

/// One group's values for one entity, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupRow {
    /// The time the values are true as of (the event time of the data behind them).
    pub event_ts: Timestamp,
    /// When the row was computed and written.
    pub computed_at: Timestamp,
    /// One value per declared feature, in declared order.
    pub values: Vec<FeatureValue>,
    /// The partition of the source's Kafka topic the entity's events arrive on (that of the
    /// latest event applied), for a row computed by `riffle ingest` from Kafka: the row is
    /// as fresh as that partition's watermark. `None` for every other row.
    pub partition: Option<u32>,
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
    #[error("row's feature-count check is {stored}, the group declares {declared} features (check = count mod 64)")]
    FeatureCountCheck { stored: u8, declared: usize },
    #[error("{0} bytes left over after the last feature")]
    TrailingBytes(usize),
    #[error("feature {0} is not valid UTF-8")]
    BadUtf8(usize),
    #[error("feature {0} holds an invalid bool")]
    BadBool(usize),
    #[error("feature {0} holds a decimal mantissa beyond 2^53")]
    BadMantissa(usize),
    #[error("the unused half of the last float-tag byte is not zero")]
    BadFloatTags,
    #[error("timestamp out of range")]
    BadTimestamp,
    #[error("partition beyond 2^32")]
    BadPartition,
}

/// Why a row cannot be encoded for a group.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("row has {got} values, the group declares {declared}")]
    FeatureCount { got: usize, declared: usize },
    #[error("value for feature {feature:?} does not fit its type {ty}")]
    WrongType { feature: String, ty: FeatureType },
}

/// Encodes `row` for `group` in the default encoding (version 2).
pub fn encode(group: &FeatureGroup, row: &GroupRow) -> Result<Vec<u8>, EncodeError> {
    encode_as(RowEncoding::default(), group, row)
}

/// Encodes `row` for `group` in `encoding`, checking every value against its declared type
/// first.
pub fn encode_as(
    encoding: RowEncoding,
    group: &FeatureGroup,
    row: &GroupRow,
) -> Result<Vec<u8>, EncodeError> {
    let n = group.features.len();
    if row.values.len() != n {
        return Err(EncodeError::FeatureCount {
            got: row.values.len(),
            declared: n,
        });
    }
    if let Some(feature) = group
        .features
        .iter()
        .zip(&row.values)
        .find_map(|(f, v)| (!v.fits(f.ty)).then_some(f))
    {
        return Err(EncodeError::WrongType {
            feature: feature.name.clone(),
            ty: feature.ty,
        });
    }
    let mut out = Vec::with_capacity(16 + n * 9);
    match (encoding, row.partition) {
        (RowEncoding::V1, _) => v1::encode(row, &mut out),
        (RowEncoding::V2, _) | (RowEncoding::V3, None) => v2::encode(row, &mut out),
        (RowEncoding::V3, Some(partition)) => v3::encode(row, partition, &mut out),
    }
    Ok(out)
}

/// Decodes a row of `group`, of any known encoding version. Fails rather than guess when
/// the bytes do not match the group's declared features exactly.
pub fn decode(group: &FeatureGroup, bytes: &[u8]) -> Result<GroupRow, DecodeError> {
    match bytes.first() {
        None => Err(DecodeError::Empty),
        Some(&v1::VERSION) => v1::decode(group, bytes),
        Some(&v2::VERSION) => v2::decode(group, bytes),
        Some(&v3::VERSION) => v3::decode(group, bytes),
        Some(&other) => Err(DecodeError::UnknownVersion(other)),
    }
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

/// Writes a string or vector value, the same in every version.
fn put_bytes_value(out: &mut Vec<u8>, value: &FeatureValue) {
    match value {
        FeatureValue::String(s) => {
            put_varint(out, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        FeatureValue::FloatVector(v) => {
            for x in v {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        _ => {}
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.at.checked_add(n).ok_or(DecodeError::Truncated)?;
        let slice = self.bytes.get(self.at..end).ok_or(DecodeError::Truncated)?;
        self.at = end;
        Ok(slice)
    }

    #[inline]
    fn byte(&mut self) -> Result<u8, DecodeError> {
        let b = *self.bytes.get(self.at).ok_or(DecodeError::Truncated)?;
        self.at += 1;
        Ok(b)
    }

    #[inline]
    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError::Truncated)
    }

    #[inline]
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    /// Reads one non-null value of type `ty` (feature `i`) onto `out`. Every type but
    /// float64 is stored the same way in every version; `float` reads a float64 the
    /// version's way. It pushes rather than returns the value: moving a
    /// `Result<FeatureValue, _>` through the stack was measured to stall on store
    /// forwarding, about a third of a row's decode time.
    #[inline]
    fn value(
        &mut self,
        i: usize,
        ty: FeatureType,
        out: &mut Vec<FeatureValue>,
        float: impl FnOnce(&mut Self) -> Result<f64, DecodeError>,
    ) -> Result<(), DecodeError> {
        match ty {
            FeatureType::Int64 => out.push(FeatureValue::Int64(unzigzag(self.varint()?))),
            FeatureType::Float64 => out.push(FeatureValue::Float64(float(self)?)),
            FeatureType::Bool => match self.byte()? {
                0 => out.push(FeatureValue::Bool(false)),
                1 => out.push(FeatureValue::Bool(true)),
                _ => return Err(DecodeError::BadBool(i)),
            },
            FeatureType::String => {
                let len = usize::try_from(self.varint()?).map_err(|_| DecodeError::Truncated)?;
                let raw = self.take(len)?;
                let text = std::str::from_utf8(raw).map_err(|_| DecodeError::BadUtf8(i))?;
                out.push(FeatureValue::String(text.to_owned()));
            }
            FeatureType::FloatVector { dim } => {
                let len = (dim as usize)
                    .checked_mul(4)
                    .ok_or(DecodeError::Truncated)?;
                out.push(FeatureValue::FloatVector(
                    self.take(len)?
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect(),
                ));
            }
        }
        Ok(())
    }

    /// Fails unless every byte was read.
    fn finish(&self) -> Result<(), DecodeError> {
        match self.bytes.len() - self.at {
            0 => Ok(()),
            left => Err(DecodeError::TrailingBytes(left)),
        }
    }
}

/// The computed-at time: `event` plus a stored delta in ms.
fn computed_at(event: Timestamp, delta: i64) -> Result<Timestamp, DecodeError> {
    event
        .millis()
        .checked_add(delta)
        .and_then(|ms| Timestamp::from_millis(ms).ok())
        .ok_or(DecodeError::BadTimestamp)
}
