//! Row encoding version 3: a version-2 row that also says which partition of its source's
//! Kafka topic the entity's events arrive on, so `riffle serve` ages the row by that
//! partition's watermark (a stalled partition makes exactly its entities stale). Layout
//! (the contract is `docs/storage-layout.md`):
//!
//! ```text
//! u8      encoding version (3)
//! varint  partition
//! …       the rest of a version-2 row, from its flags byte on
//! ```
//!
//! Written only for rows that carry a partition (`riffle ingest` from Kafka); a partition
//! below 128 costs one byte.

use riffle_registry::FeatureGroup;

use super::{put_varint, v2, DecodeError, GroupRow, Reader};

/// The version byte of this encoding.
pub const VERSION: u8 = 3;

/// Appends `row` (already checked against its group) with `partition` to `out`.
pub(super) fn encode(row: &GroupRow, partition: u32, out: &mut Vec<u8>) {
    out.push(VERSION);
    put_varint(out, u64::from(partition));
    v2::encode_body(row, out);
}

/// Decodes a version-3 row (`bytes[0]` is the version byte).
pub(super) fn decode(group: &FeatureGroup, bytes: &[u8]) -> Result<GroupRow, DecodeError> {
    let mut r = Reader { bytes, at: 1 };
    let partition = u32::try_from(r.varint()?).map_err(|_| DecodeError::BadPartition)?;
    let mut row = v2::decode_body(group, r)?;
    row.partition = Some(partition);
    Ok(row)
}
