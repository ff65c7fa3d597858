//! Plausible values for any feature, driven by its declared type, with hints read from its
//! name (`count`, `sum`, `avg`, `_ts`, `age`, `bucket`, `premium`, a window such as `_1h` or
//! `_7d`). A feature whose name says nothing still gets a value of its type.

use std::collections::HashMap;

use rand::rngs::SmallRng;
use rand::Rng;
use rand_distr::{Distribution, LogNormal, Poisson, StandardNormal};
use riffle_core::{FeatureType, FeatureValue, Timestamp};
use riffle_registry::Feature;

const HOUR_MS: f64 = 3_600_000.0;

/// What a feature's type and name say about its values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Kind {
    /// Events in a window (hours); no window in the name: a day.
    Count {
        hours: f64,
    },
    /// Amount spent in a window (hours).
    Sum {
        hours: f64,
    },
    /// Distinct counterparts (merchants...) in a window.
    Distinct {
        hours: f64,
    },
    /// Mean amount.
    Average,
    /// A recent time as epoch milliseconds.
    EpochMillis,
    AgeDays,
    /// A small ordinal 1..=10.
    Bucket,
    /// A 0..1 score.
    Score,
    Premium,
    Int,
    Float,
    Bool,
    Text,
    Vector {
        dim: u32,
    },
}

/// Reads a window like `1h`, `30m`, `7d`, `2w` from a name's `_`-separated parts.
pub(super) fn window_hours(name: &str) -> Option<f64> {
    name.split('_').find_map(|part| {
        let unit_at = part.find(|c: char| !c.is_ascii_digit())?;
        let (num, unit) = part.split_at(unit_at);
        let n: f64 = num.parse().ok()?;
        let hours = match unit {
            "m" | "min" => n / 60.0,
            "h" => n,
            "d" => n * 24.0,
            "w" => n * 24.0 * 7.0,
            _ => return None,
        };
        (hours > 0.0).then_some(hours)
    })
}

impl Kind {
    pub(super) fn of(feature: &Feature) -> Kind {
        let name = feature.name.to_ascii_lowercase();
        // A word is a `_`-separated part or its start ("merchants" has "merchant").
        let has = |word: &str| name.split('_').any(|p| p.starts_with(word));
        let hours = window_hours(&name);
        match feature.ty {
            FeatureType::FloatVector { dim } => Kind::Vector { dim },
            FeatureType::Bool if has("premium") || has("vip") => Kind::Premium,
            FeatureType::Bool => Kind::Bool,
            FeatureType::String => Kind::Text,
            FeatureType::Int64 | FeatureType::Float64 => {
                let int = feature.ty == FeatureType::Int64;
                if name.ends_with("_ts") || has("timestamp") || name.ends_with("_at") {
                    Kind::EpochMillis
                } else if has("distinct") || has("unique") {
                    Kind::Distinct {
                        hours: hours.unwrap_or(24.0),
                    }
                } else if has("count") || (has("num") && hours.is_some()) {
                    Kind::Count {
                        hours: hours.unwrap_or(24.0),
                    }
                } else if has("sum") || has("total") || (has("amount") && hours.is_some()) {
                    Kind::Sum {
                        hours: hours.unwrap_or(24.0),
                    }
                } else if has("avg") || has("mean") {
                    Kind::Average
                } else if has("age") {
                    Kind::AgeDays
                } else if has("bucket") || has("tier") || has("level") {
                    Kind::Bucket
                } else if has("score") || has("ratio") || has("rate") {
                    Kind::Score
                } else if int {
                    Kind::Int
                } else {
                    Kind::Float
                }
            }
        }
    }

    /// The window of a count or sum, in milliseconds.
    pub(super) fn window_ms(self) -> Option<f64> {
        match self {
            Kind::Count { hours } | Kind::Sum { hours } | Kind::Distinct { hours } => {
                Some(hours * HOUR_MS)
            }
            _ => None,
        }
    }
}

/// One entity's habits, the same for every group so a row's values agree with each other.
#[derive(Debug, Clone)]
pub(super) struct Traits {
    pub tx_per_hour: f64,
    pub avg_amount: f64,
    pub age_days: i64,
    pub bucket: i64,
    pub premium: bool,
}

impl Traits {
    /// Habits of an entity whose activity is `relative_activity` times the mean.
    pub(super) fn draw(rng: &mut SmallRng, relative_activity: f64) -> Self {
        // An average entity makes ~3 transactions a day.
        let tx_per_hour = 0.125 * relative_activity * lognormal(rng, 0.0, 0.25);
        let premium = rng.random_bool((0.08 * relative_activity.sqrt()).clamp(0.02, 0.6));
        Traits {
            tx_per_hour,
            avg_amount: lognormal(rng, 3.5, 0.8),
            age_days: rng.random_range(1..=3650),
            bucket: rng.random_range(1..=10),
            premium,
        }
    }
}

fn lognormal(rng: &mut SmallRng, mu: f64, sigma: f64) -> f64 {
    LogNormal::new(mu, sigma).map_or(mu.exp(), |d| d.sample(rng))
}

fn poisson(rng: &mut SmallRng, lambda: f64) -> i64 {
    if lambda <= 0.0 || !lambda.is_finite() {
        return 0;
    }
    Poisson::new(lambda).map_or(lambda.round(), |d| d.sample(rng)) as i64
}

/// One transaction's amount for an entity.
pub(super) fn amount(rng: &mut SmallRng, traits: &Traits) -> f64 {
    round2(traits.avg_amount * lognormal(rng, 0.0, 0.5))
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Generates one row's values. Counts, sums and distinct counts of one window agree.
pub(super) fn row_values(
    rng: &mut SmallRng,
    traits: &Traits,
    kinds: &[Kind],
    features: &[Feature],
    now: Timestamp,
) -> Vec<FeatureValue> {
    let mut counts: HashMap<u64, i64> = HashMap::new();
    let mut count_in = |rng: &mut SmallRng, hours: f64| -> i64 {
        *counts
            .entry(hours.to_bits())
            .or_insert_with(|| poisson(rng, traits.tx_per_hour * hours))
    };
    kinds
        .iter()
        .zip(features)
        .map(|(kind, feature)| {
            let int = feature.ty == FeatureType::Int64;
            let number = |x: f64| {
                if int {
                    FeatureValue::Int64(x.round() as i64)
                } else {
                    FeatureValue::Float64(round2(x))
                }
            };
            match *kind {
                Kind::Count { hours } => number(count_in(rng, hours) as f64),
                Kind::Sum { hours } => {
                    let n = count_in(rng, hours);
                    let total: f64 = (0..n.min(10_000)).map(|_| amount(rng, traits)).sum();
                    number(total)
                }
                Kind::Distinct { hours } => {
                    let n = count_in(rng, hours);
                    let distinct = if n == 0 {
                        0
                    } else {
                        rng.random_range(1..=n.min(500))
                    };
                    number(distinct as f64)
                }
                Kind::Average => number(traits.avg_amount),
                Kind::EpochMillis => {
                    let mean_gap_h = 1.0 / traits.tx_per_hour.max(1e-3);
                    let ago = -rng.random::<f64>().max(1e-12).ln() * mean_gap_h * HOUR_MS;
                    let ago = ago.min(30.0 * 24.0 * HOUR_MS) as u64;
                    number(now.millis().saturating_sub(ago as i64) as f64)
                }
                Kind::AgeDays => number(traits.age_days as f64),
                Kind::Bucket => number(traits.bucket as f64),
                Kind::Score => number(rng.random::<f64>()),
                Kind::Premium => FeatureValue::Bool(traits.premium),
                Kind::Int => FeatureValue::Int64(rng.random_range(0..100)),
                Kind::Float => number(lognormal(rng, 2.0, 1.0)),
                Kind::Bool => FeatureValue::Bool(rng.random_bool(0.5)),
                Kind::Text => FeatureValue::String(text(rng, &feature.name)),
                Kind::Vector { dim } => FeatureValue::FloatVector(unit_vector(rng, dim)),
            }
        })
        .collect()
}

fn text(rng: &mut SmallRng, name: &str) -> String {
    const COUNTRIES: [&str; 8] = ["US", "GB", "DE", "FR", "BR", "IN", "JP", "NG"];
    const CHANNELS: [&str; 4] = ["web", "ios", "android", "pos"];
    const GENERIC: [&str; 5] = ["alpha", "beta", "gamma", "delta", "epsilon"];
    let pick = |rng: &mut SmallRng, xs: &[&str]| xs[rng.random_range(0..xs.len())].to_owned();
    if name.contains("country") {
        pick(rng, &COUNTRIES)
    } else if name.contains("channel") || name.contains("device") {
        pick(rng, &CHANNELS)
    } else if name.contains("merchant") {
        format!("m{}", rng.random_range(0..10_000))
    } else {
        pick(rng, &GENERIC)
    }
}

/// A random direction: normal components, scaled to length 1.
fn unit_vector(rng: &mut SmallRng, dim: u32) -> Vec<f32> {
    let v: Vec<f64> = (0..dim)
        .map(|_| StandardNormal.sample(rng))
        .collect::<Vec<f64>>();
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
    v.iter()
        .map(|x| ((x / norm) * 10_000.0).round() as f32 / 10_000.0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_read_from_names() {
        assert_eq!(window_hours("tx_count_1h"), Some(1.0));
        assert_eq!(window_hours("session_tx_count_30m"), Some(0.5));
        assert_eq!(window_hours("distinct_merchants_7d"), Some(168.0));
        assert_eq!(window_hours("account_age_days"), None);
        assert_eq!(window_hours("is_premium"), None);
    }
}
