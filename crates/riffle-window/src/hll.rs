//! A small HyperLogLog (Flajolet et al. 2007, with linear counting for small ranges) over
//! pre-hashed 64-bit values, for tiles that hold more distinct values than are kept exactly.
//!
//! Written by hand rather than taken from a crate (`hyperloglogplus`, `hyperloglog`) because
//! the registers are part of Riffle's checkpoint format: the crates keep their registers
//! private and serialise them only through serde in a layout they may change between
//! versions, hash with a caller-supplied `BuildHasher` over `Hash` (whose byte stream std
//! does not promise to keep stable), and `hyperloglogplus` needs `&mut self` to count. Here
//! the registers are plain bytes we version ourselves, values arrive already hashed by
//! [`super::hash`], and union (per-register max) is what a window read needs. It is ~80 lines.
//!
//! With 64-bit hashes no large-range correction is needed.

/// Register-index bits: 2^11 = 2048 one-byte registers (2 KiB per sketched tile).
pub const HLL_PRECISION: u8 = 11;
const M: usize = 1 << HLL_PRECISION;
/// Largest possible register value: leading zeros of the remaining 53 bits, plus one.
const MAX_RANK: u8 = 64 - HLL_PRECISION + 1;
/// Relative standard error of an estimate, 1.04/√m (at m = 2048: ≈ 2.3%).
pub const HLL_RELATIVE_ERROR: f64 = 0.022_980_970_388_562_8;

/// 2^-r for every register value r (exact: powers of two are exact in f64).
const INV_POW2: [f64; MAX_RANK as usize + 1] = {
    let mut table = [0.0; MAX_RANK as usize + 1];
    let mut r = 0;
    while r <= MAX_RANK as usize {
        // The exponent field of 2^-r: 1023 - r (r <= 54, so a normal number).
        table[r] = f64::from_bits(((1023 - r) as u64) << 52);
        r += 1;
    }
    table
};

/// A HyperLogLog sketch of 2^[`HLL_PRECISION`] registers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hll {
    registers: Box<[u8]>,
}

impl Hll {
    pub fn new() -> Self {
        Self {
            registers: vec![0; M].into_boxed_slice(),
        }
    }

    /// Adds one hashed value.
    pub fn insert(&mut self, hash: u64) {
        let index = (hash >> (64 - HLL_PRECISION)) as usize;
        let rest = hash << HLL_PRECISION;
        let rank = if rest == 0 {
            MAX_RANK
        } else {
            (rest.leading_zeros() as u8 + 1).min(MAX_RANK)
        };
        let slot = &mut self.registers[index];
        if *slot < rank {
            *slot = rank;
        }
    }

    /// Makes `self` the sketch of the union of both sets.
    pub fn merge(&mut self, other: &Hll) {
        // `max`, not a compare and a conditional store: the loop compiles to a vector max
        // of many registers per instruction. A read of a window unions its sketched tiles,
        // and the branchy loop was a third of a training set's window replay.
        for (mine, theirs) in self.registers.iter_mut().zip(other.registers.iter()) {
            *mine = (*mine).max(*theirs);
        }
    }

    /// Makes `self` a copy of `other` without allocating (a reused union buffer).
    pub fn copy_from(&mut self, other: &Hll) {
        self.registers.copy_from_slice(&other.registers);
    }

    /// Estimated number of distinct values inserted.
    pub fn estimate(&self) -> f64 {
        let m = M as f64;
        let mut sum = 0.0;
        let mut zeros = 0usize;
        for &r in self.registers.iter() {
            // The exact powers 2^-r from a table: the same values, summed in the same order,
            // as `1.0 / (1u64 << r) as f64`, without a conversion and a division per
            // register. r <= MAX_RANK by construction and by `from_registers`.
            sum += INV_POW2[usize::from(r.min(MAX_RANK))];
            zeros += usize::from(r == 0);
        }
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let raw = alpha * m * m / sum;
        if raw <= 2.5 * m && zeros > 0 {
            m * (m / zeros as f64).ln()
        } else {
            raw
        }
    }

    /// The registers, for snapshots.
    pub fn registers(&self) -> &[u8] {
        &self.registers
    }

    /// Rebuilds a sketch from [`Hll::registers`]; `None` if they cannot be one.
    pub fn from_registers(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != M || bytes.iter().any(|&r| r > MAX_RANK) {
            return None;
        }
        Some(Self {
            registers: bytes.into(),
        })
    }

    pub const BYTES: usize = M;
}

#[cfg(test)]
mod tests {
    use super::super::hash::StableHasher;
    use super::*;

    fn hash(i: u64) -> u64 {
        let mut h = StableHasher::new();
        h.write(&i.to_le_bytes());
        h.finish()
    }

    #[test]
    fn stated_error_matches_the_register_count() {
        assert!((HLL_RELATIVE_ERROR - 1.04 / (M as f64).sqrt()).abs() < 1e-12);
    }

    /// Deterministic (the hash is fixed), so the 3σ bound cannot flake.
    #[test]
    fn estimates_are_within_the_stated_error() {
        for n in [1u64, 10, 100, 1_000, 5_000, 20_000, 100_000] {
            let mut hll = Hll::new();
            for i in 0..n {
                hll.insert(hash(i));
                hll.insert(hash(i)); // duplicates change nothing
            }
            let est = hll.estimate();
            let err = (est - n as f64).abs() / n as f64;
            assert!(err <= 3.0 * HLL_RELATIVE_ERROR, "n={n} est={est} err={err}");
        }
    }

    #[test]
    fn power_table_is_the_exact_division() {
        for r in 0..=MAX_RANK {
            assert_eq!(INV_POW2[usize::from(r)], 1.0 / (1u64 << r) as f64, "r={r}");
        }
    }

    #[test]
    fn merge_is_the_union() {
        let (mut a, mut b, mut both) = (Hll::new(), Hll::new(), Hll::new());
        for i in 0..3_000 {
            a.insert(hash(i));
            both.insert(hash(i));
        }
        for i in 2_000..6_000 {
            b.insert(hash(i));
            both.insert(hash(i));
        }
        a.merge(&b);
        assert_eq!(a, both);
        assert_eq!(Hll::from_registers(a.registers()), Some(a));
        assert_eq!(Hll::from_registers(&[0; 3]), None);
        assert_eq!(Hll::from_registers(&[MAX_RANK + 1; M]), None);
    }
}
