//! Durable state: one entity's tiles as compact, versioned bytes (and back), and the engine
//! [`Watermarks`] that go with them in a checkpoint.
//!
//! Entity snapshot, version 1 (varint = LEB128, unsigned; f64 and u64 little-endian):
//! ```text
//! u8 version (1) | varint seq | varint section count
//! section: u64 spec fingerprint | varint payload length | payload
//! payload: varint tile count | tiles, oldest first:
//!   varint tile index (first tile absolute, then the gap to the previous, >= 1) | aggregate
//! aggregate by the spec's kind:
//!   count: varint n          sum, min, max: f64        mean: f64 sum | varint n
//!   last: varint time | varint seq | value (tag 1 int64 zigzag varint, 2 f64, 3 bool byte,
//!         4 string: varint len + UTF-8, 5 f32 vector: varint len + f32s)
//!   distinct_count: tag 0 exact: varint n + n sorted u64 hashes | tag 1: HLL registers
//! ```
//! Sections are found by fingerprint, so a snapshot survives specs being added (they start
//! empty) or removed (their sections are skipped). Decoding checks every length against the
//! bytes left and every invariant the engine relies on; garbage gives an error, never a panic.

use riffle_core::{FeatureValue, Timestamp};

use super::aggregate::TileAgg;
use super::distinct::{DistinctSet, EXACT_DISTINCT_LIMIT};
use super::hll::Hll;
use super::spec::{AggregationKind, Layout};
use super::state::EntityState;

/// The entity snapshot version this build writes and reads.
pub const SNAPSHOT_VERSION: u8 = 1;
const WATERMARKS_VERSION: u8 = 1;
/// Largest tile index decoded: year 9999 in 1 ms tiles.
const MAX_TILE: u64 = 253_402_300_799_999;

/// Why snapshot bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot is empty")]
    Empty,
    #[error("snapshot version {0} is not supported (this build reads version {SNAPSHOT_VERSION})")]
    UnsupportedVersion(u8),
    #[error("snapshot is truncated")]
    Truncated,
    #[error("snapshot is corrupt: {0}")]
    Corrupt(&'static str),
}

type Result<T> = std::result::Result<T, SnapshotError>;

/// The engine-wide part of a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermarks {
    /// The engine clock (the `now` of its last advance).
    pub clock: Timestamp,
    /// The largest event time accepted (for `allowed_lateness`).
    pub max_event_time: Option<Timestamp>,
}

impl Watermarks {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![WATERMARKS_VERSION];
        put_varint(&mut out, self.clock.millis() as u64);
        match self.max_event_time {
            Some(t) => {
                out.push(1);
                put_varint(&mut out, t.millis() as u64);
            }
            None => out.push(0),
        }
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes);
        let version = r.version()?;
        if version != WATERMARKS_VERSION {
            return Err(SnapshotError::UnsupportedVersion(version));
        }
        let clock = r.timestamp()?;
        let max_event_time = match r.u8()? {
            0 => None,
            1 => Some(r.timestamp()?),
            _ => return Err(SnapshotError::Corrupt("bad watermark flag")),
        };
        r.finish()?;
        Ok(Self {
            clock,
            max_event_time,
        })
    }
}

/// Encodes one entity's state.
pub(crate) fn encode(state: &EntityState, layout: &Layout) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(state, layout, &mut out);
    out
}

/// [`encode`] appending to `out`. Every flush encodes every written entity, and a hot
/// entity's snapshot runs to tens of KiB (sketched tiles): the caller reuses one buffer and
/// each section is built in a buffer kept per thread, so neither grows from empty per call.
pub(crate) fn encode_into(state: &EntityState, layout: &Layout, out: &mut Vec<u8>) {
    thread_local! {
        static PAYLOAD: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    PAYLOAD.with_borrow_mut(|payload| encode_sections(state, layout, out, payload));
}

/// One section per spec, holding the spec's own tiles: runs are an in-memory layout, so
/// the bytes do not change when specs are regrouped.
fn encode_sections(state: &EntityState, layout: &Layout, out: &mut Vec<u8>, payload: &mut Vec<u8>) {
    out.push(SNAPSHOT_VERSION);
    put_varint(out, state.seq);
    put_varint(out, layout.specs.len() as u64);
    for (i, spec) in layout.specs.iter().enumerate() {
        payload.clear();
        put_varint(payload, state.spec_tiles(layout, i).count() as u64);
        let mut prev: Option<i64> = None;
        for (index, agg) in state.spec_tiles(layout, i) {
            put_varint(payload, (index - prev.unwrap_or(0)) as u64);
            prev = Some(index);
            put_agg(payload, agg);
        }
        out.extend_from_slice(&spec.fingerprint.to_le_bytes());
        put_varint(out, payload.len() as u64);
        out.extend_from_slice(payload);
    }
}

/// Decodes one entity's state for the engine's `specs`.
pub(crate) fn decode(bytes: &[u8], layout: &Layout) -> Result<EntityState> {
    let specs = &layout.specs;
    let mut r = Reader::new(bytes);
    let version = r.version()?;
    if version != SNAPSHOT_VERSION {
        return Err(SnapshotError::UnsupportedVersion(version));
    }
    let mut state = EntityState::new(layout);
    state.seq = r.varint()?;
    let sections = r.varint()?;
    let mut seen = vec![false; specs.len()];
    for _ in 0..sections {
        let fingerprint = r.u64()?;
        let len = usize::try_from(r.varint()?).map_err(|_| SnapshotError::Truncated)?;
        let payload = r.bytes(len)?;
        let Some(i) = specs.iter().position(|s| s.fingerprint == fingerprint) else {
            continue; // a spec no longer configured
        };
        if std::mem::replace(&mut seen[i], true) {
            return Err(SnapshotError::Corrupt("a spec appears twice"));
        }
        let mut p = Reader::new(payload);
        let count = p.varint()?;
        let mut index: u64 = 0;
        for n in 0..count {
            let gap = p.varint()?;
            if n > 0 && gap == 0 {
                return Err(SnapshotError::Corrupt("tiles out of order"));
            }
            index = index.saturating_add(gap);
            if index > MAX_TILE {
                return Err(SnapshotError::Corrupt("tile index out of range"));
            }
            let agg = get_agg(&mut p, specs[i].kind, state.seq)?;
            // index <= MAX_TILE < i64::MAX; strictly increasing by the gap check.
            state.insert_tile(layout, i, index as i64, agg);
        }
        p.finish()?;
    }
    r.finish()?;
    Ok(state)
}

fn put_agg(out: &mut Vec<u8>, agg: &TileAgg) {
    match agg {
        // Left out of the spec's tiles by `spec_tiles`.
        TileAgg::Empty => {}
        TileAgg::Count(n) => put_varint(out, *n),
        TileAgg::Sum(x) | TileAgg::Min(x) | TileAgg::Max(x) => put_f64(out, *x),
        TileAgg::Mean { sum, count } => {
            put_f64(out, *sum);
            put_varint(out, *count);
        }
        TileAgg::Last { time, seq, value } => {
            put_varint(out, *time as u64);
            put_varint(out, *seq);
            put_value(out, value);
        }
        TileAgg::Distinct(DistinctSet::Exact(hashes)) => {
            out.push(0);
            put_varint(out, hashes.len() as u64);
            for h in hashes {
                out.extend_from_slice(&h.to_le_bytes());
            }
        }
        TileAgg::Distinct(DistinctSet::Sketch(hll)) => {
            out.push(1);
            out.extend_from_slice(hll.registers());
        }
    }
}

fn get_agg(r: &mut Reader<'_>, kind: AggregationKind, entity_seq: u64) -> Result<TileAgg> {
    let positive = |n: u64| {
        if n == 0 {
            Err(SnapshotError::Corrupt("empty tile"))
        } else {
            Ok(n)
        }
    };
    Ok(match kind {
        AggregationKind::Count => TileAgg::Count(positive(r.varint()?)?),
        AggregationKind::Sum => TileAgg::Sum(r.f64()?),
        AggregationKind::Min => TileAgg::Min(r.finite_f64()?),
        AggregationKind::Max => TileAgg::Max(r.finite_f64()?),
        AggregationKind::Mean => TileAgg::Mean {
            sum: r.f64()?,
            count: positive(r.varint()?)?,
        },
        AggregationKind::Last => {
            let time = r.timestamp()?.millis();
            let seq = r.varint()?;
            if seq >= entity_seq {
                return Err(SnapshotError::Corrupt(
                    "event numbered after the entity's count",
                ));
            }
            TileAgg::Last {
                time,
                seq,
                value: get_value(r)?,
            }
        }
        AggregationKind::DistinctCount => match r.u8()? {
            0 => {
                let n = r.varint()?;
                if n == 0 || n > EXACT_DISTINCT_LIMIT as u64 {
                    return Err(SnapshotError::Corrupt("exact distinct set size"));
                }
                let mut hashes = smallvec::SmallVec::with_capacity(n as usize);
                for _ in 0..n {
                    let h = r.u64()?;
                    if hashes.last().is_some_and(|&last| last >= h) {
                        return Err(SnapshotError::Corrupt("distinct hashes out of order"));
                    }
                    hashes.push(h);
                }
                TileAgg::Distinct(DistinctSet::Exact(hashes))
            }
            1 => match Hll::from_registers(r.bytes(Hll::BYTES)?) {
                Some(hll) => TileAgg::Distinct(DistinctSet::Sketch(Box::new(hll))),
                None => return Err(SnapshotError::Corrupt("bad sketch registers")),
            },
            _ => return Err(SnapshotError::Corrupt("bad distinct tag")),
        },
    })
}

fn put_value(out: &mut Vec<u8>, value: &FeatureValue) {
    match value {
        // A tile never holds a null `last` (nulls are skipped); written for completeness.
        FeatureValue::Null => out.push(0),
        FeatureValue::Int64(i) => {
            out.push(1);
            put_varint(out, ((i << 1) ^ (i >> 63)) as u64);
        }
        FeatureValue::Float64(x) => {
            out.push(2);
            put_f64(out, *x);
        }
        FeatureValue::Bool(b) => out.extend_from_slice(&[3, u8::from(*b)]),
        FeatureValue::String(s) => {
            out.push(4);
            put_varint(out, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        FeatureValue::FloatVector(v) => {
            out.push(5);
            put_varint(out, v.len() as u64);
            for x in v {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
    }
}

fn get_value(r: &mut Reader<'_>) -> Result<FeatureValue> {
    Ok(match r.u8()? {
        0 => FeatureValue::Null,
        1 => {
            let z = r.varint()?;
            FeatureValue::Int64(((z >> 1) as i64) ^ -((z & 1) as i64))
        }
        2 => FeatureValue::Float64(r.f64()?),
        3 => match r.u8()? {
            0 => FeatureValue::Bool(false),
            1 => FeatureValue::Bool(true),
            _ => return Err(SnapshotError::Corrupt("bad bool")),
        },
        4 => {
            let len = usize::try_from(r.varint()?).map_err(|_| SnapshotError::Truncated)?;
            let text = std::str::from_utf8(r.bytes(len)?)
                .map_err(|_| SnapshotError::Corrupt("string is not UTF-8"))?;
            FeatureValue::String(text.to_owned())
        }
        5 => {
            let len = usize::try_from(r.varint()?).map_err(|_| SnapshotError::Truncated)?;
            let bytes = r.bytes(len.checked_mul(4).ok_or(SnapshotError::Truncated)?)?;
            FeatureValue::FloatVector(
                bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            )
        }
        _ => return Err(SnapshotError::Corrupt("bad value tag")),
    })
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_f64(out: &mut Vec<u8>, x: f64) {
    out.extend_from_slice(&x.to_le_bytes());
}

/// A bounds-checked cursor over snapshot bytes.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    fn version(&mut self) -> Result<u8> {
        self.u8().map_err(|_| SnapshotError::Empty)
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.bytes.len() {
            return Err(SnapshotError::Truncated);
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.bytes(1)?[0])
    }

    fn u64(&mut self) -> Result<u64> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// Any f64: a sum of finite values may overflow to infinity, and is kept as it is.
    fn f64(&mut self) -> Result<f64> {
        Ok(f64::from_bits(self.u64()?))
    }

    /// A finite f64 (a min or max of finite inputs).
    fn finite_f64(&mut self) -> Result<f64> {
        let x = self.f64()?;
        if x.is_finite() {
            Ok(x)
        } else {
            Err(SnapshotError::Corrupt("number is not finite"))
        }
    }

    fn varint(&mut self) -> Result<u64> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            if shift == 63 && b > 1 {
                return Err(SnapshotError::Corrupt("varint overflows 64 bits"));
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(SnapshotError::Corrupt("varint overflows 64 bits"))
    }

    fn timestamp(&mut self) -> Result<Timestamp> {
        let ms = i64::try_from(self.varint()?)
            .map_err(|_| SnapshotError::Corrupt("time out of range"))?;
        Timestamp::from_millis(ms).map_err(|_| SnapshotError::Corrupt("time out of range"))
    }

    fn finish(&self) -> Result<()> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(SnapshotError::Corrupt("trailing bytes"))
        }
    }
}
