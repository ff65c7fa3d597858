//! A Zipf-like activity distribution over `n` entities, with its exponent chosen so that
//! the most active `top_fraction` of entities get `top_share` of the activity (the lesson's
//! "top 1% of users ≈ 20% of traffic").
//!
//! Entity of rank `r` (1 = most active) has weight `r^-s / H(n, s)`, where `H` is the
//! generalised harmonic number. `H` is summed exactly for the first terms and integrated for
//! the tail, so the exponent can be solved for millions of entities in microseconds.

use rand::Rng;
use rand_distr::{Distribution, Zipf};

/// Terms of `H(n, s)` summed exactly; the rest is integrated (error well below 1e-6).
const EXACT_TERMS: u64 = 10_000;

/// `H(n, s) = Σ_{k=1..n} k^-s`.
pub fn harmonic(n: u64, s: f64) -> f64 {
    let exact = n.min(EXACT_TERMS);
    let mut sum: f64 = (1..=exact).map(|k| (k as f64).powf(-s)).sum();
    if n > exact {
        // ∫_{a}^{b} x^-s dx with the midpoint correction: a = exact + 0.5, b = n + 0.5.
        let (a, b) = (exact as f64 + 0.5, n as f64 + 0.5);
        sum += if (s - 1.0).abs() < 1e-12 {
            b.ln() - a.ln()
        } else {
            (b.powf(1.0 - s) - a.powf(1.0 - s)) / (1.0 - s)
        };
    }
    sum
}

/// The activity distribution of a population.
#[derive(Debug, Clone)]
pub struct PowerLaw {
    n: u64,
    s: f64,
    norm: f64,
    zipf: Zipf<f64>,
}

impl PowerLaw {
    /// A distribution over `n ≥ 1` entities where the top `top_fraction` (0.01) get
    /// `top_share` (0.2) of the activity. When that is less than an even share, the
    /// distribution is uniform.
    pub fn new(n: u64, top_fraction: f64, top_share: f64) -> Self {
        let n = n.max(1);
        let k = ((n as f64 * top_fraction).round() as u64).clamp(1, n);
        let share_at = |s: f64| harmonic(k, s) / harmonic(n, s);
        let s = if share_at(0.0) >= top_share {
            0.0
        } else {
            // share_at grows with s: bisect.
            let (mut lo, mut hi) = (0.0f64, 4.0f64);
            for _ in 0..60 {
                let mid = (lo + hi) / 2.0;
                if share_at(mid) < top_share {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            (lo + hi) / 2.0
        };
        Self::with_exponent(n, s)
    }

    /// A distribution over `n` entities with exponent `s`.
    pub fn with_exponent(n: u64, s: f64) -> Self {
        let n = n.max(1);
        let s = if s.is_finite() { s.max(0.0) } else { 0.0 };
        // n ≥ 1 and s ≥ 0 are exactly Zipf's preconditions.
        let zipf = Zipf::new(n as f64, s).unwrap_or_else(|_| unreachable_zipf());
        Self {
            n,
            s,
            norm: harmonic(n, s),
            zipf,
        }
    }

    pub fn exponent(&self) -> f64 {
        self.s
    }

    pub fn len(&self) -> u64 {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// Probability of the entity of `rank` (1-based).
    pub fn probability(&self, rank: u64) -> f64 {
        (rank.max(1) as f64).powf(-self.s) / self.norm
    }

    /// Activity of the entity of `rank` relative to the mean entity (mean 1).
    pub fn relative_activity(&self, rank: u64) -> f64 {
        self.probability(rank) * self.n as f64
    }

    /// Expected share of activity of the `k` most active entities.
    pub fn share_of_top(&self, k: u64) -> f64 {
        harmonic(k.min(self.n), self.s) / self.norm
    }

    /// Draws a rank, 1-based.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> u64 {
        (self.zipf.sample(rng) as u64).clamp(1, self.n)
    }
}

/// `Zipf::new` only fails for `n < 1` or `s < 0`/NaN, which `with_exponent` rules out.
fn unreachable_zipf() -> Zipf<f64> {
    match Zipf::new(1.0, 0.0) {
        Ok(z) => z,
        Err(_) => unreachable!("Zipf over one element with exponent 0 is valid"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    #[test]
    fn harmonic_tail_matches_exact_sum() {
        let exact: f64 = (1..=50_000u64).map(|k| (k as f64).powf(-0.7)).sum();
        assert!((harmonic(50_000, 0.7) - exact).abs() / exact < 1e-6);
        let exact1: f64 = (1..=30_000u64).map(|k| 1.0 / k as f64).sum();
        assert!((harmonic(30_000, 1.0) - exact1).abs() < 1e-6);
    }

    #[test]
    fn top_one_percent_gets_a_fifth_of_the_activity() {
        for n in [2_000u64, 100_000, 5_000_000] {
            let law = PowerLaw::new(n, 0.01, 0.2);
            let share = law.share_of_top(n / 100);
            assert!((share - 0.2).abs() < 1e-3, "n={n}: {share}");
        }
        let law = PowerLaw::new(100_000, 0.01, 0.2);
        let mut rng = SmallRng::seed_from_u64(7);
        let draws = 200_000;
        let top = (0..draws).filter(|_| law.sample(&mut rng) <= 1_000).count();
        let share = top as f64 / draws as f64;
        assert!((0.18..0.22).contains(&share), "sampled share {share}");
    }

    #[test]
    fn tiny_populations_are_uniform() {
        let law = PowerLaw::new(3, 0.01, 0.2);
        assert_eq!(law.exponent(), 0.0);
        assert!((law.probability(1) - 1.0 / 3.0).abs() < 1e-12);
    }
}
