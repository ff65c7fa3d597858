//! The per-entity pipeline state field (`~<source>`, docs/storage-layout.md): when it was
//! written, the source positions already applied to the entity, then the window engine's
//! snapshot of it.
//!
//! `[u8 version=2][varint written_at ms][varint count][(u64 LE stream id, varint offset) ×
//! count][snapshot]`, positions most recently used first, at most [`MAX_STREAMS`] of them.
//! Version 1 (no `written_at`) is still read. `written_at` is the `computed_at` of the rows
//! written in the same command, so a reader knows whether the rows still show the windows
//! the snapshot implies now, or a window moved since (then the rows need rewriting).

use smallvec::SmallVec;

/// Encoding version of the state field.
pub const STATE_VERSION: u8 = 2;
/// Streams remembered per entity; the least recently used is dropped past it.
pub const MAX_STREAMS: usize = 4;

/// Why stored state bytes could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("empty state")]
    Empty,
    #[error("unknown state version {0}")]
    Version(u8),
    #[error("truncated state")]
    Truncated,
    #[error("{0} positions; at most {MAX_STREAMS}")]
    TooManyPositions(u64),
}

/// The last applied offset per stream for one entity, most recently used first. One
/// position sits in place (an entity's events come from one stream: a Kafka partition by
/// key, or one file): checking it per event reaches no second allocation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Positions(SmallVec<[(u64, u64); 1]>);

impl Positions {
    /// Whether the event at `(stream, offset)` was applied already.
    pub fn applied(&self, stream: u64, offset: u64) -> bool {
        self.0.iter().any(|&(s, o)| s == stream && o >= offset)
    }

    /// Records `(stream, offset)` as applied (offsets only move forward).
    pub fn record(&mut self, stream: u64, offset: u64) {
        let offset = match self.0.iter().position(|&(s, _)| s == stream) {
            Some(i) => self.0.remove(i).1.max(offset),
            None => offset,
        };
        self.0.insert(0, (stream, offset));
        self.0.truncate(MAX_STREAMS);
    }

    pub fn entries(&self) -> &[(u64, u64)] {
        &self.0
    }
}

/// A decoded state value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored<'a> {
    pub positions: Positions,
    /// When it was written with its rows (ms since epoch); `None` in version 1.
    pub written_at_ms: Option<u64>,
    /// The engine snapshot (empty: no tiles).
    pub snapshot: &'a [u8],
}

/// Encodes the write time (the rows' computed-at, ms since epoch), positions and an engine
/// snapshot (empty: no tiles) into one state value.
pub fn encode(written_at_ms: u64, positions: &Positions, snapshot: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + positions.0.len() * 12 + snapshot.len());
    out.push(STATE_VERSION);
    put_varint(&mut out, written_at_ms);
    put_varint(&mut out, positions.0.len() as u64);
    for &(stream, offset) in &positions.0 {
        out.extend_from_slice(&stream.to_le_bytes());
        put_varint(&mut out, offset);
    }
    out.extend_from_slice(snapshot);
    out
}

/// Decodes a state value (version 1 or 2).
pub fn decode(bytes: &[u8]) -> Result<Stored<'_>, StateError> {
    let (&version, mut rest) = bytes.split_first().ok_or(StateError::Empty)?;
    let written_at_ms = match version {
        1 => None,
        STATE_VERSION => Some(take_varint(&mut rest)?),
        other => return Err(StateError::Version(other)),
    };
    let count = take_varint(&mut rest)?;
    if count > MAX_STREAMS as u64 {
        return Err(StateError::TooManyPositions(count));
    }
    let mut positions = SmallVec::with_capacity(count as usize);
    for _ in 0..count {
        let (id, after) = rest.split_at_checked(8).ok_or(StateError::Truncated)?;
        let mut le = [0u8; 8];
        le.copy_from_slice(id);
        rest = after;
        let offset = take_varint(&mut rest)?;
        positions.push((u64::from_le_bytes(le), offset));
    }
    Ok(Stored {
        positions: Positions(positions),
        written_at_ms,
        snapshot: rest,
    })
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn take_varint(bytes: &mut &[u8]) -> Result<u64, StateError> {
    let mut n: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes.split_first().ok_or(StateError::Truncated)?;
        *bytes = rest;
        n |= u64::from(b & 0x7f).checked_shl(shift).unwrap_or(0);
        if b & 0x80 == 0 {
            return Ok(n);
        }
    }
    Err(StateError::Truncated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn positions_keep_the_four_most_recent_streams() {
        let mut p = Positions::default();
        for s in 0..6 {
            p.record(s, 10);
        }
        p.record(3, 5); // never moves back
        assert_eq!(p.entries(), &[(3, 10), (5, 10), (4, 10), (2, 10)]);
        assert!(p.applied(3, 10) && p.applied(3, 1) && !p.applied(3, 11));
        assert!(!p.applied(0, 1), "stream 0 was dropped");
    }

    #[test]
    fn version_1_is_still_read() {
        let mut v1 = vec![1u8, 1];
        v1.extend_from_slice(&7u64.to_le_bytes());
        v1.extend_from_slice(&[42, 0xAA]);
        let back = decode(&v1).unwrap();
        assert_eq!(back.positions.entries(), &[(7, 42)]);
        assert_eq!((back.written_at_ms, back.snapshot), (None, &[0xAA][..]));
        assert_eq!(decode(&[3]), Err(StateError::Version(3)));
    }

    proptest! {
        #[test]
        fn round_trips(
            entries in proptest::collection::vec((any::<u64>(), any::<u64>()), 0..8),
            snapshot in proptest::collection::vec(any::<u8>(), 0..64),
            written in any::<u64>(),
        ) {
            let mut p = Positions::default();
            for &(s, o) in &entries {
                p.record(s, o);
            }
            let bytes = encode(written, &p, &snapshot);
            let back = decode(&bytes).unwrap();
            prop_assert_eq!(back.positions, p);
            prop_assert_eq!(back.written_at_ms, Some(written));
            prop_assert_eq!(back.snapshot, snapshot.as_slice());
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&bytes);
        }
    }
}
