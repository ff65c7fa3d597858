//! Distinct values of one tile: an exact sorted set of value hashes up to
//! [`EXACT_DISTINCT_LIMIT`], a HyperLogLog sketch beyond; and the union count over a window.

use riffle_core::FeatureValue;

use super::hash::StableHasher;
use super::hll::Hll;

/// Distinct values a tile keeps exactly; one more turns the tile into a HyperLogLog sketch.
pub const EXACT_DISTINCT_LIMIT: usize = 64;

/// The distinct values seen in one tile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DistinctSet {
    /// Sorted, unique value hashes; at most [`EXACT_DISTINCT_LIMIT`].
    Exact(Vec<u64>),
    Sketch(Box<Hll>),
}

impl DistinctSet {
    pub fn new() -> Self {
        DistinctSet::Exact(Vec::new())
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
        // Every flush reads every written entity's windows, so the hashes gather in one
        // buffer per thread rather than a fresh vector per read.
        thread_local! {
            static EXACT: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        EXACT.with_borrow_mut(|exact| {
            exact.clear();
            let mut sketch: Option<Hll> = None;
            let mut single: Option<usize> = None;
            let mut exact_sets = 0usize;
            for set in sets {
                match set {
                    DistinctSet::Exact(hashes) => {
                        exact_sets += 1;
                        single = Some(hashes.len());
                        exact.extend_from_slice(hashes);
                    }
                    DistinctSet::Sketch(hll) => match &mut sketch {
                        Some(acc) => acc.merge(hll),
                        None => sketch = Some(hll.as_ref().clone()),
                    },
                }
            }
            match sketch {
                // One exact set is sorted and unique already.
                None if exact_sets == 1 => single.unwrap_or(0) as i64,
                None => {
                    exact.sort_unstable();
                    exact.dedup();
                    exact.len() as i64
                }
                Some(mut hll) => {
                    for &h in exact.iter() {
                        hll.insert(h);
                    }
                    hll.estimate().round() as i64
                }
            }
        })
    }
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
