//! Distinct values of one tile: an exact sorted set of value hashes up to
//! [`EXACT_DISTINCT_LIMIT`], a HyperLogLog sketch beyond; and the union count over a window.

use riffle_core::FeatureValue;
use smallvec::SmallVec;

use super::hash::StableHasher;
use super::hll::Hll;

/// Distinct values a tile keeps exactly; one more turns the tile into a HyperLogLog sketch.
pub const EXACT_DISTINCT_LIMIT: usize = 64;

/// Hashes a tile keeps in place before it allocates: most tiles see a few values (a
/// user's merchants in 15 minutes), and reaching a separate buffer was a cache miss per
/// event. Three fit without making a [`TileAgg`](super::aggregate::TileAgg) any larger.
pub(crate) const INLINE_HASHES: usize = 3;

/// The distinct values seen in one tile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DistinctSet {
    /// Sorted, unique value hashes; at most [`EXACT_DISTINCT_LIMIT`].
    Exact(SmallVec<[u64; INLINE_HASHES]>),
    Sketch(Box<Hll>),
}

impl DistinctSet {
    pub fn new() -> Self {
        DistinctSet::Exact(SmallVec::new())
    }

    pub fn insert(&mut self, hash: u64) {
        match self {
            DistinctSet::Exact(hashes) => match hashes.binary_search(&hash) {
                Ok(_) => {}
                Err(pos) if hashes.len() < EXACT_DISTINCT_LIMIT => hashes.insert(pos, hash),
                Err(_) => {
                    let mut hll = Hll::new();
                    for &h in hashes.iter() {
                        hll.insert(h);
                    }
                    hll.insert(hash);
                    *self = DistinctSet::Sketch(Box::new(hll));
                }
            },
            DistinctSet::Sketch(hll) => hll.insert(hash),
        }
    }

    /// Number of distinct values in the union of `sets`: exact when every set is exact,
    /// otherwise the HyperLogLog estimate of the union, rounded.
    pub fn union_count<'a>(sets: impl Iterator<Item = &'a DistinctSet>) -> i64 {
        // Every flush reads every written entity's windows, so the hashes and the sketch
        // union gather in buffers kept per thread rather than fresh ones per read (a 2 KiB
        // sketch copy per read of a sketched window was a fifth of the read's time).
        thread_local! {
            static SCRATCH: std::cell::RefCell<(Vec<u64>, Vec<u64>, Option<Hll>)> =
                const { std::cell::RefCell::new((Vec::new(), Vec::new(), None)) };
        }
        SCRATCH.with_borrow_mut(|(exact, table, union)| {
            exact.clear();
            // The first sketch is only read; a second one starts the union in the buffer.
            let mut first: Option<&Hll> = None;
            let mut merged = false;
            let mut single: Option<usize> = None;
            let mut exact_sets = 0usize;
            for set in sets {
                match set {
                    DistinctSet::Exact(hashes) => {
                        exact_sets += 1;
                        single = Some(hashes.len());
                        exact.extend_from_slice(hashes);
                    }
                    DistinctSet::Sketch(hll) => match first {
                        None => first = Some(hll),
                        Some(f) => {
                            let acc = union.get_or_insert_with(Hll::new);
                            if !merged {
                                acc.copy_from(f);
                                merged = true;
                            }
                            acc.merge(hll);
                        }
                    },
                }
            }
            let Some(first) = first else {
                // One exact set is sorted and unique already.
                if exact_sets == 1 {
                    return single.unwrap_or(0) as i64;
                }
                return count_unique(exact, table) as i64;
            };
            if !merged && exact.is_empty() {
                return first.estimate().round() as i64;
            }
            let acc = union.get_or_insert_with(Hll::new);
            if !merged {
                acc.copy_from(first);
            }
            for &h in exact.iter() {
                acc.insert(h);
            }
            acc.estimate().round() as i64
        })
    }
}

/// Hashes up to which [`count_unique`] sorts instead of using a table.
const SORT_UNIQUE_UP_TO: usize = 32;

/// The number of distinct values in `hashes` (reordered when few). Many hashes go through
/// an open-addressing table in `table` (linear probing, zero marks an empty slot, the zero
/// hash counted aside): a window of many exact tiles gathers up to a few thousand hashes,
/// and sorting them was most of reading such a window. The hashes are uniform already, so
/// their low bits index the table.
fn count_unique(hashes: &mut [u64], table: &mut Vec<u64>) -> usize {
    if hashes.len() <= SORT_UNIQUE_UP_TO {
        hashes.sort_unstable();
        let mut unique = usize::from(!hashes.is_empty());
        for pair in hashes.windows(2) {
            unique += usize::from(pair[0] != pair[1]);
        }
        return unique;
    }
    // At most half full, so probes stay short and always find an empty slot.
    let size = (hashes.len() * 2).next_power_of_two();
    let mask = size - 1;
    table.clear();
    table.resize(size, 0);
    let mut zero = false;
    let mut unique = 0usize;
    for &h in hashes.iter() {
        if h == 0 {
            zero = true;
            continue;
        }
        let mut i = (h as usize) & mask;
        loop {
            let slot = &mut table[i];
            if *slot == h {
                break;
            }
            if *slot == 0 {
                *slot = h;
                unique += 1;
                break;
            }
            i = (i + 1) & mask;
        }
    }
    unique + usize::from(zero)
}

/// The stable hash of a value for distinct counting. The type is part of the value:
/// `Int64(3)` and `Float64(3.0)` differ; `0.0` and `-0.0` are one value. `None` for null.
pub(crate) fn value_hash(value: &FeatureValue) -> Option<u64> {
    let mut h = StableHasher::new();
    match value {
        FeatureValue::Null => return None,
        FeatureValue::Int64(i) => {
            h.write(&[1]);
            h.write(&i.to_le_bytes());
        }
        FeatureValue::Float64(f) => {
            let f = if *f == 0.0 { 0.0 } else { *f };
            h.write(&[2]);
            h.write(&f.to_bits().to_le_bytes());
        }
        FeatureValue::Bool(b) => h.write(&[3, u8::from(*b)]),
        FeatureValue::String(s) => {
            h.write(&[4]);
            h.write(s.as_bytes());
        }
        FeatureValue::FloatVector(v) => {
            h.write(&[5]);
            for x in v {
                h.write(&x.to_bits().to_le_bytes());
            }
        }
    }
    Some(h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(i: i64) -> u64 {
        value_hash(&FeatureValue::Int64(i)).unwrap_or(0)
    }

    #[test]
    fn exact_up_to_the_limit_then_sketched() {
        let mut set = DistinctSet::new();
        for i in 0..EXACT_DISTINCT_LIMIT as i64 {
            set.insert(h(i));
            set.insert(h(i));
        }
        assert!(matches!(&set, DistinctSet::Exact(v) if v.len() == EXACT_DISTINCT_LIMIT));
        assert_eq!(DistinctSet::union_count([&set].into_iter()), 64);
        set.insert(h(1_000));
        assert!(matches!(set, DistinctSet::Sketch(_)));
        assert_eq!(DistinctSet::union_count([&set].into_iter()), 65);
    }

    #[test]
    fn union_of_exact_sets_is_exact_beyond_the_limit() {
        let mut a = DistinctSet::new();
        let mut b = DistinctSet::new();
        for i in 0..60 {
            a.insert(h(i));
            b.insert(h(i + 50));
        }
        assert_eq!(DistinctSet::union_count([&a, &b].into_iter()), 110);
    }

    /// The union buffer is reused between reads: a read must not see an earlier one's
    /// registers, and must equal merging copies of the sketches.
    #[test]
    fn sketch_unions_equal_merged_copies_and_do_not_leak_between_reads() {
        let sketch = |from: i64, to: i64| {
            let mut s = DistinctSet::new();
            for i in from..to {
                s.insert(h(i));
            }
            assert!(matches!(s, DistinctSet::Sketch(_)));
            s
        };
        let (a, b) = (sketch(0, 3_000), sketch(10_000, 14_000));
        let mut exact = DistinctSet::new();
        for i in 50_000..50_010 {
            exact.insert(h(i));
        }
        let estimate = |sets: &[&DistinctSet]| {
            let mut acc = Hll::new();
            for set in sets {
                match set {
                    DistinctSet::Sketch(s) => acc.merge(s),
                    DistinctSet::Exact(hs) => hs.iter().for_each(|&x| acc.insert(x)),
                }
            }
            acc.estimate().round() as i64
        };
        let big = DistinctSet::union_count([&a, &b, &exact].into_iter());
        assert_eq!(big, estimate(&[&a, &b, &exact]));
        // After a large union, smaller ones read only their own sets.
        assert_eq!(DistinctSet::union_count([&a].into_iter()), estimate(&[&a]));
        assert_eq!(
            DistinctSet::union_count([&exact, &a].into_iter()),
            estimate(&[&a, &exact])
        );
        assert_eq!(
            DistinctSet::union_count([&b, &a].into_iter()),
            estimate(&[&a, &b])
        );
        assert_eq!(DistinctSet::union_count([&exact].into_iter()), 10);
    }

    /// The table count equals sorting and deduplicating, with duplicates, the zero hash and
    /// colliding low bits, on both sides of the sort threshold.
    #[test]
    fn counting_unique_hashes_equals_sort_and_dedup() {
        let mut table = Vec::new();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for n in [0usize, 1, 2, 31, 32, 33, 100, 1_000, 3_000] {
            for variant in 0..3 {
                let mut hashes: Vec<u64> = (0..n)
                    .map(|_| match variant {
                        0 => next(),
                        // Many duplicates.
                        1 => next() % 17,
                        // Equal low bits: every hash probes the same first slot.
                        _ => (next() << 16) | 0x5a,
                    })
                    .collect();
                if n > 3 {
                    hashes[n / 2] = 0;
                    hashes[n / 3] = 0;
                }
                let mut expected = hashes.clone();
                expected.sort_unstable();
                expected.dedup();
                assert_eq!(
                    count_unique(&mut hashes, &mut table),
                    expected.len(),
                    "n={n} variant={variant}"
                );
            }
        }
    }

    #[test]
    fn value_identity() {
        assert_eq!(
            value_hash(&FeatureValue::Float64(0.0)),
            value_hash(&FeatureValue::Float64(-0.0))
        );
        assert_ne!(
            value_hash(&FeatureValue::Int64(3)),
            value_hash(&FeatureValue::Float64(3.0))
        );
        assert_eq!(value_hash(&FeatureValue::Null), None);
    }
}
