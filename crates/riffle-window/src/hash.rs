//! A stable 64-bit hash: FNV-1a over the bytes, finished with MurmurHash3's `fmix64` so every
//! output bit depends on every input bit (HyperLogLog reads the top and the low bits).
//!
//! Distinct-value hashes and spec fingerprints end up in snapshots, and serve's feature log
//! samples entities by it (the same entity in every process), so this function must never
//! change. std's `DefaultHasher` is randomly keyed and documented as unstable across
//! Rust releases, which is why it is not used here.

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Incremental stable hasher.
#[derive(Debug, Clone)]
pub(crate) struct StableHasher(u64);

impl StableHasher {
    pub(crate) fn new() -> Self {
        Self(FNV_OFFSET)
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(FNV_PRIME);
        }
    }

    pub(crate) fn finish(&self) -> u64 {
        fmix64(self.0)
    }
}

/// The stable hash of `bytes` (pinned: the same value in every process and release).
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h = StableHasher::new();
    h.write(bytes);
    h.finish()
}

fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pinned outputs: if this test fails, the hash changed and old snapshots would decode
    /// into wrong distinct counts. Never update these values; add a snapshot version instead.
    #[test]
    fn hash_is_pinned() {
        let hash = |b: &[u8]| {
            let mut h = StableHasher::new();
            h.write(b);
            h.finish()
        };
        assert_eq!(hash(b""), fmix64(FNV_OFFSET));
        assert_eq!(hash(b"merchant-42"), PINNED_MERCHANT_42);
        assert_eq!(stable_hash(b"merchant-42"), PINNED_MERCHANT_42);
        assert_ne!(hash(b"a"), hash(b"b"));
    }

    const PINNED_MERCHANT_42: u64 = 15_357_373_782_326_037_462;
}
