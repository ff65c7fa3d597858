//! Distributions of the values served, per feature, and their drift from a baseline.
//!
//! One request in `sample_every` (a single atomic counter per request) is sampled; every
//! value it serves is counted into its feature's fixed log-scale histogram (4 buckets per
//! power of two, signed, from 2⁻²⁰ to 2⁶⁴; `bool` as 0/1; strings and vectors only count
//! towards the default rate) with atomic adds: nothing is allocated on the read path. A value
//! served as the training default (`missing`, `null`, `expired`, `unavailable`) counts as a
//! default, not as a number, so a wave of defaults shows as a default-rate spike rather than
//! hiding in the distribution.
//!
//! At scrape time [`Drift::publish`] sets, per feature, the mean, the p99 (upper bound of its
//! bucket, within 19%), the default ratio and — with a baseline loaded — the population
//! stability index against it: the baseline's numeric mass is cut into deciles over the
//! buckets, the default share is one more bin, and `PSI = Σ (a − e)·ln(a / e)` (shares
//! floored at 10⁻⁴). `GET /v1/distributions` returns the raw counts ([`Snapshot`]);
//! `riffle baseline save` stores them as the baseline a later `riffle serve --baseline`
//! compares with.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use riffle_core::{FeatureType, FeatureValue, ValueStatus};
use riffle_registry::Registry;
use serde::{Deserialize, Serialize};

use crate::metrics::Metrics;

/// Buckets per power of two.
pub const PER_OCTAVE: usize = 4;
/// Smallest magnitude told apart from zero: 2^MIN_EXP.
pub const MIN_EXP: i32 = -20;
const OCTAVES: usize = 84;
/// Buckets on each side of zero.
const SIDE: usize = OCTAVES * PER_OCTAVE;
/// Negative buckets (most negative first), zero, positive buckets.
pub const BUCKETS: usize = 2 * SIDE + 1;
/// Fewest sampled values before a PSI is published.
pub const MIN_SAMPLES_FOR_PSI: u64 = 100;

/// The bucket of `x` (`None` for NaN).
pub fn bucket_of(x: f64) -> Option<usize> {
    if x.is_nan() {
        return None;
    }
    let a = x.abs();
    if a < 2f64.powi(MIN_EXP) {
        return Some(SIDE);
    }
    let k = ((a.log2() - f64::from(MIN_EXP)) * PER_OCTAVE as f64).floor();
    let k = (k.max(0.0) as usize).min(SIDE - 1);
    Some(if x > 0.0 { SIDE + 1 + k } else { SIDE - 1 - k })
}

/// The largest value of bucket `i` (its upper bound).
pub fn bucket_upper(i: usize) -> f64 {
    use std::cmp::Ordering::*;
    match i.cmp(&SIDE) {
        Equal => 0.0,
        Greater => 2f64.powf(f64::from(MIN_EXP) + (i - SIDE) as f64 / PER_OCTAVE as f64),
        Less => -(2f64.powf(f64::from(MIN_EXP) + (SIDE - 1 - i) as f64 / PER_OCTAVE as f64)),
    }
}

fn number(value: &FeatureValue) -> Option<f64> {
    match value {
        FeatureValue::Int64(i) => Some(*i as f64),
        FeatureValue::Float64(f) => Some(*f),
        FeatureValue::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        _ => None,
    }
}

fn is_numeric(ty: FeatureType) -> bool {
    matches!(
        ty,
        FeatureType::Int64 | FeatureType::Float64 | FeatureType::Bool
    )
}

/// One feature's sampled values.
struct Dist {
    numeric: bool,
    buckets: Box<[AtomicU64]>,
    /// Values sampled (numbers and defaults).
    count: AtomicU64,
    defaults: AtomicU64,
    /// Σ of the numbers, as f64 bits.
    sum: AtomicU64,
}

impl Dist {
    fn new(numeric: bool) -> Self {
        let n = if numeric { BUCKETS } else { 0 };
        Self {
            numeric,
            buckets: (0..n).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            defaults: AtomicU64::new(0),
            sum: AtomicU64::new(0f64.to_bits()),
        }
    }

    fn observe(&self, value: &FeatureValue, status: ValueStatus) {
        self.count.fetch_add(1, Ordering::Relaxed);
        if !matches!(status, ValueStatus::Fresh | ValueStatus::Stale) {
            self.defaults.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if !self.numeric {
            return;
        }
        let Some(x) = number(value) else { return };
        let Some(b) = bucket_of(x) else { return };
        self.buckets[b].fetch_add(1, Ordering::Relaxed);
        let _ = self
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + x).to_bits())
            });
    }

    fn counts(&self) -> Vec<u64> {
        self.buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect()
    }
}

/// One feature in a [`Snapshot`]: sparse `[bucket, count]` pairs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FeatureSnapshot {
    pub group: String,
    pub feature: String,
    pub count: u64,
    pub defaults: u64,
    pub sum: f64,
    pub buckets: Vec<(usize, u64)>,
}

/// Every feature's sampled distribution: what `GET /v1/distributions` answers and what a
/// baseline file holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Snapshot {
    pub version: u32,
    pub per_octave: usize,
    pub min_exp: i32,
    pub features: Vec<FeatureSnapshot>,
}

/// A baseline that does not fit this server.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("not a distribution snapshot: {0}")]
    Parse(String),
    #[error("snapshot buckets ({0} per octave from 2^{1}) differ from this server's")]
    Layout(usize, i32),
}

/// One feature's baseline: dense bucket counts and the default count.
type BaselineFeature = Option<(Vec<u64>, u64)>;

/// Per feature: baseline bucket counts (dense) and default count.
pub struct Baseline {
    /// `[group][feature]`, `None` when the baseline has nothing for it.
    features: Vec<Vec<BaselineFeature>>,
}

impl Baseline {
    /// Reads a [`Snapshot`] as the baseline for `registry`'s features.
    pub fn from_json(registry: &Registry, text: &str) -> Result<Self, BaselineError> {
        let snap: Snapshot =
            serde_json::from_str(text).map_err(|e| BaselineError::Parse(e.to_string()))?;
        if snap.per_octave != PER_OCTAVE || snap.min_exp != MIN_EXP {
            return Err(BaselineError::Layout(snap.per_octave, snap.min_exp));
        }
        let mut features: Vec<Vec<BaselineFeature>> = registry
            .groups
            .iter()
            .map(|g| vec![None; g.features.len()])
            .collect();
        for f in snap.features {
            let Some(g) = registry.group(&f.group) else {
                continue;
            };
            let Some(i) = g.feature_index(&f.feature) else {
                continue;
            };
            let mut dense = vec![0u64; BUCKETS];
            for (b, n) in f.buckets {
                if let Some(slot) = dense.get_mut(b) {
                    *slot += n;
                }
            }
            features[g.id][i] = Some((dense, f.defaults));
        }
        Ok(Self { features })
    }
}

/// PSI of `current` against `baseline` (bucket counts plus default counts).
pub fn psi(baseline: (&[u64], u64), current: (&[u64], u64)) -> Option<f64> {
    let (eb, ed) = baseline;
    let (cb, cd) = current;
    let e_total = eb.iter().sum::<u64>() + ed;
    let c_total = cb.iter().sum::<u64>() + cd;
    if e_total == 0 || c_total == 0 {
        return None;
    }
    // Deciles of the baseline's numeric mass, as ranges of buckets.
    let numeric: u64 = eb.iter().sum();
    let mut bins: Vec<(u64, u64)> = Vec::new();
    let (mut e_acc, mut c_acc, mut cum, mut next) = (0u64, 0u64, 0u64, 1u64);
    for (e, c) in eb.iter().zip(cb) {
        e_acc += e;
        c_acc += c;
        cum += e;
        if numeric > 0 && cum * 10 >= next * numeric {
            bins.push((e_acc, c_acc));
            e_acc = 0;
            c_acc = 0;
            while next <= 10 && cum * 10 >= next * numeric {
                next += 1;
            }
        }
    }
    if e_acc + c_acc > 0 {
        bins.push((e_acc, c_acc));
    }
    bins.push((ed, cd));
    let floor = 1e-4;
    Some(
        bins.iter()
            .map(|&(e, c)| {
                let e = (e as f64 / e_total as f64).max(floor);
                let a = (c as f64 / c_total as f64).max(floor);
                (a - e) * (a / e).ln()
            })
            .sum(),
    )
}

/// The served-value distributions of every feature.
pub struct Drift {
    every: AtomicU64,
    tick: AtomicU64,
    /// `[group][feature]`.
    dists: Vec<Vec<Dist>>,
    baseline: RwLock<Option<Baseline>>,
    psi_threshold: AtomicU64,
}

impl Drift {
    /// Samples one request in `every` (0 or 1: every request).
    pub fn new(registry: &Registry, every: u64) -> Self {
        Self {
            every: AtomicU64::new(every.max(1)),
            tick: AtomicU64::new(0),
            dists: registry
                .groups
                .iter()
                .map(|g| {
                    g.features
                        .iter()
                        .map(|f| Dist::new(is_numeric(f.ty)))
                        .collect()
                })
                .collect(),
            baseline: RwLock::new(None),
            psi_threshold: AtomicU64::new(0.2f64.to_bits()),
        }
    }

    /// Compares from now on against `baseline`, flagging PSI above `threshold`.
    pub fn set_baseline(&self, baseline: Baseline, threshold: f64) {
        if let Ok(mut b) = self.baseline.write() {
            *b = Some(baseline);
        }
        self.psi_threshold
            .store(threshold.to_bits(), Ordering::Relaxed);
    }

    /// Samples one request in `every` from now on (0 or 1: every request).
    pub fn set_sample_every(&self, every: u64) {
        self.every.store(every.max(1), Ordering::Relaxed);
    }

    /// Whether this request's values are sampled: one atomic add.
    pub fn sample(&self) -> bool {
        let every = self.every.load(Ordering::Relaxed);
        every == 1
            || self
                .tick
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(every)
    }

    /// Counts one served value.
    pub fn observe(&self, group: usize, feature: usize, value: &FeatureValue, status: ValueStatus) {
        if let Some(d) = self.dists.get(group).and_then(|g| g.get(feature)) {
            d.observe(value, status);
        }
    }

    /// The raw counts, for `GET /v1/distributions` and baseline files.
    pub fn snapshot(&self, registry: &Registry) -> Snapshot {
        let mut features = Vec::new();
        for (g, dists) in registry.groups.iter().zip(&self.dists) {
            for (f, d) in g.features.iter().zip(dists) {
                features.push(FeatureSnapshot {
                    group: g.name.clone(),
                    feature: f.name.clone(),
                    count: d.count.load(Ordering::Relaxed),
                    defaults: d.defaults.load(Ordering::Relaxed),
                    sum: f64::from_bits(d.sum.load(Ordering::Relaxed)),
                    buckets: d
                        .counts()
                        .into_iter()
                        .enumerate()
                        .filter(|(_, n)| *n > 0)
                        .collect(),
                });
            }
        }
        Snapshot {
            version: 1,
            per_octave: PER_OCTAVE,
            min_exp: MIN_EXP,
            features,
        }
    }

    /// Sets the distribution gauges (scrape time).
    pub fn publish(&self, registry: &Registry, metrics: &Metrics) {
        let baseline = self.baseline.read().ok();
        let threshold = f64::from_bits(self.psi_threshold.load(Ordering::Relaxed));
        for (g, dists) in registry.groups.iter().zip(&self.dists) {
            for (i, (f, d)) in g.features.iter().zip(dists).enumerate() {
                let count = d.count.load(Ordering::Relaxed);
                if count == 0 {
                    continue;
                }
                let defaults = d.defaults.load(Ordering::Relaxed);
                let m = metrics.feature(&g.name, &f.name);
                m.samples.set(count as f64);
                m.default_ratio.set(defaults as f64 / count as f64);
                if !d.numeric {
                    continue;
                }
                let counts = d.counts();
                let numbers: u64 = counts.iter().sum();
                if numbers > 0 {
                    m.mean
                        .set(f64::from_bits(d.sum.load(Ordering::Relaxed)) / numbers as f64);
                    let target = (numbers as f64 * 0.99).ceil() as u64;
                    let mut cum = 0;
                    for (b, n) in counts.iter().enumerate() {
                        cum += n;
                        if cum >= target {
                            m.p99.set(bucket_upper(b));
                            break;
                        }
                    }
                }
                let base = baseline
                    .as_ref()
                    .and_then(|b| b.as_ref())
                    .and_then(|b| b.features.get(g.id)?.get(i)?.as_ref());
                if let Some((eb, ed)) = base {
                    if count >= MIN_SAMPLES_FOR_PSI {
                        if let Some(p) = psi((eb, *ed), (&counts, defaults)) {
                            metrics.feature_psi(&g.name, &f.name, p, threshold);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_ordered_and_bound_their_values() {
        let xs = [
            -1e6, -3.0, -1.0, -0.001, 0.0, 1e-9, 0.001, 1.0, 1.1, 3.0, 1e6, 1e15,
        ];
        let bs: Vec<usize> = xs.iter().map(|&x| bucket_of(x).unwrap()).collect();
        assert!(bs.windows(2).all(|w| w[0] <= w[1]), "{bs:?}");
        for &x in &xs {
            let b = bucket_of(x).unwrap();
            let up = bucket_upper(b);
            if x.abs() < 2f64.powi(MIN_EXP) {
                assert_eq!(up, 0.0, "{x}");
                continue;
            }
            assert!(up >= x, "{x} in bucket {b} up to {up}");
            if x > 0.0 {
                assert!(up / x <= 2f64.powf(0.25) + 1e-9, "{x}: {up}");
            }
        }
        assert_eq!(bucket_of(f64::NAN), None);
        assert!(bucket_of(1e300).unwrap() < BUCKETS);
    }

    #[test]
    fn psi_is_zero_for_the_same_shape_and_large_for_a_shift() {
        let mut base = vec![0u64; BUCKETS];
        let mut same = vec![0u64; BUCKETS];
        let mut moved = vec![0u64; BUCKETS];
        for i in 0..1000 {
            let x = (i % 50) as f64 + 1.0;
            base[bucket_of(x).unwrap()] += 1;
            same[bucket_of(x).unwrap()] += 2;
            moved[bucket_of(x * 8.0).unwrap()] += 1;
        }
        assert!(psi((&base, 0), (&same, 0)).unwrap() < 1e-9);
        assert!(psi((&base, 0), (&moved, 0)).unwrap() > 1.0);
        // Defaults are a bin of their own: a default-rate spike is drift.
        let p = psi((&base, 10), (&same, 1500)).unwrap();
        assert!(p > 0.5, "{p}");
        assert_eq!(psi((&base, 0), (&vec![0; BUCKETS], 0)), None);
    }
}
