//! One served value judged against its offline recomputation: [`judge`] says whether they
//! agree, and when they do not, *why*: the pipeline was behind (the value equals what the
//! history gives at the watermark the server saw), the server said the value was not to be
//! trusted (`expired`, `unavailable`), or a real mismatch — the online store holds a value
//! training would not see (`extra`), lacks one it would (`missing`), or holds another.

use riffle_core::{FeatureValue, ValueStatus};

/// How a served value compares with the offline one at its instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Match,
    /// Different now, equal to the offline value at the served row's basis (the watermark
    /// it was read at, or the flush that wrote it): ingest or loading was behind, and the
    /// server's age said so.
    Lag,
    /// The server marked the value `expired` or `unavailable` and served the default.
    Degraded,
    /// A real difference.
    Mismatch(Kind),
}

/// What kind of real difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Serve had no row where history has one.
    Missing,
    /// Serve had a row where history has none.
    Extra,
    /// Both have a value; they differ.
    Value,
}

/// Judges `served` (with its served status) against `offline` (value and status at the
/// served instant) and `behind` (the offline values a pipeline at the served row's basis
/// would have given: windows moved to the served instant, or not yet moved).
pub fn judge(
    served: &FeatureValue,
    served_status: &str,
    offline: (&FeatureValue, ValueStatus),
    behind: &[&FeatureValue],
) -> Verdict {
    if same(served, offline.0) {
        return Verdict::Match;
    }
    if matches!(served_status, "expired" | "unavailable") {
        return Verdict::Degraded;
    }
    if behind.iter().any(|b| same(served, b)) {
        return Verdict::Lag;
    }
    let offline_has_row = !matches!(offline.1, ValueStatus::Missing);
    Verdict::Mismatch(match (served_status, offline_has_row) {
        ("missing", true) => Kind::Missing,
        (s, false) if s != "missing" => Kind::Extra,
        _ => Kind::Value,
    })
}

/// Equal values; floats within a relative 1e-9, as sums of the same numbers taken in
/// another order may differ in their last bits.
pub fn same(a: &FeatureValue, b: &FeatureValue) -> bool {
    match (a, b) {
        (FeatureValue::Float64(x), FeatureValue::Float64(y)) => close(*x, *y),
        (FeatureValue::FloatVector(x), FeatureValue::FloatVector(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y.iter())
                    .all(|(p, q)| close(f64::from(*p), f64::from(*q)))
        }
        _ => a == b,
    }
}

fn close(x: f64, y: f64) -> bool {
    x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0)
}

/// The absolute difference of two numbers, `None` for values that are not.
pub fn numeric_error(served: &FeatureValue, offline: &FeatureValue) -> Option<(f64, f64)> {
    let number = |v: &FeatureValue| match v {
        FeatureValue::Int64(i) => Some(*i as f64),
        FeatureValue::Float64(f) => Some(*f),
        _ => None,
    };
    let (s, o) = (number(served)?, number(offline)?);
    let abs = (s - o).abs();
    Some((abs, if o != 0.0 { abs / o.abs() } else { f64::NAN }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRESH: ValueStatus = ValueStatus::Fresh;

    #[test]
    fn equal_values_match_and_floats_forgive_the_last_bits() {
        let a = FeatureValue::Float64(0.1 + 0.2);
        let b = FeatureValue::Float64(0.3);
        assert_eq!(judge(&a, "fresh", (&b, FRESH), &[]), Verdict::Match);
        let c = FeatureValue::Float64(0.3001);
        assert_ne!(judge(&c, "fresh", (&b, FRESH), &[]), Verdict::Match);
    }

    #[test]
    fn a_difference_is_explained_by_lag_only_when_the_basis_value_equals() {
        let served = FeatureValue::Int64(3);
        let now = FeatureValue::Int64(5);
        let then = FeatureValue::Int64(3);
        assert_eq!(
            judge(&served, "stale", (&now, FRESH), &[&then]),
            Verdict::Lag
        );
        assert_eq!(
            judge(&served, "fresh", (&now, FRESH), &[&now]),
            Verdict::Mismatch(Kind::Value)
        );
    }

    #[test]
    fn degraded_missing_and_extra_are_told_apart() {
        let default = FeatureValue::Int64(0);
        let real = FeatureValue::Int64(7);
        assert_eq!(
            judge(&default, "expired", (&real, FRESH), &[]),
            Verdict::Degraded
        );
        assert_eq!(
            judge(&default, "missing", (&real, FRESH), &[]),
            Verdict::Mismatch(Kind::Missing)
        );
        assert_eq!(
            judge(&real, "fresh", (&default, ValueStatus::Missing), &[]),
            Verdict::Mismatch(Kind::Extra)
        );
    }

    #[test]
    fn errors_are_measured_on_numbers_only() {
        let (abs, rel) =
            numeric_error(&FeatureValue::Float64(12.0), &FeatureValue::Float64(10.0)).unwrap();
        assert_eq!((abs, rel), (2.0, 0.2));
        assert!(
            numeric_error(&FeatureValue::String("a".into()), &FeatureValue::Int64(1)).is_none()
        );
    }
}
