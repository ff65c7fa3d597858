//! Which entities the feature log keeps: a pinned hash of the entity id
//! ([`riffle_window::stable_hash`], the same in every process and release) below a share of
//! the hash space. An entity is therefore logged in every request or in none, by every
//! server of a deployment, and an entity kept at one rate is kept at every higher rate.

use riffle_window::stable_hash;

/// Keeps the ids whose hash falls in the first `rate` of the 64-bit space.
#[derive(Debug, Clone, Copy)]
pub struct Sampler {
    /// Ids hashing strictly below this are kept; `None`: every id is.
    below: Option<u64>,
}

impl Sampler {
    /// `rate` in (0, 1] (the registry checks it); 1 or more keeps every id.
    pub fn new(rate: f64) -> Self {
        if rate >= 1.0 {
            return Self { below: None };
        }
        // rate · 2^64; the cast saturates, and a rate ≤ 0 keeps nothing.
        let below = (rate.max(0.0) * 2f64.powi(64)) as u64;
        Self { below: Some(below) }
    }

    /// Whether the entity with this id is logged.
    pub fn keeps(&self, id: &str) -> bool {
        match self.below {
            None => true,
            Some(below) => stable_hash(id.as_bytes()) < below,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_id_is_always_in_or_always_out() {
        let a = Sampler::new(0.3);
        let b = Sampler::new(0.3);
        for i in 0..1000 {
            let id = format!("u{i}");
            let first = a.keeps(&id);
            for _ in 0..3 {
                assert_eq!(a.keeps(&id), first);
                assert_eq!(b.keeps(&id), first, "another sampler (process) agrees");
            }
        }
    }

    #[test]
    fn the_hash_is_pinned_not_randomly_keyed() {
        // Fixed answers: a change here means another process (or release) samples other
        // entities, and the log stops following the same ones.
        let s = Sampler::new(0.5);
        let kept: Vec<bool> = ["u1", "u2", "u3", "u4", "u5", "u6"]
            .iter()
            .map(|id| s.keeps(id))
            .collect();
        let expected: Vec<bool> = ["u1", "u2", "u3", "u4", "u5", "u6"]
            .iter()
            .map(|id| stable_hash(id.as_bytes()) < 1 << 63)
            .collect();
        assert_eq!(kept, expected);
        assert_eq!(stable_hash(b"merchant-42"), 15_357_373_782_326_037_462);
    }

    #[test]
    fn the_rate_is_respected_roughly() {
        for rate in [0.01, 0.1, 0.5] {
            let s = Sampler::new(rate);
            let n = 100_000;
            let kept = (0..n).filter(|i| s.keeps(&format!("user-{i}"))).count();
            let share = kept as f64 / n as f64;
            assert!(
                (share - rate).abs() < rate * 0.1 + 0.002,
                "rate {rate}: kept {share}"
            );
        }
    }

    #[test]
    fn a_higher_rate_keeps_everything_a_lower_one_kept() {
        let low = Sampler::new(0.05);
        let high = Sampler::new(0.2);
        for i in 0..10_000 {
            let id = i.to_string();
            if low.keeps(&id) {
                assert!(high.keeps(&id), "{id}");
            }
        }
        let all = Sampler::new(1.0);
        assert!((0..1000).all(|i| all.keeps(&i.to_string())));
    }
}
