//! Per-tile aggregates: what one tile of one spec keeps ([`TileAgg`]), how an event's field
//! becomes an [`Input`] to it, and how a window's tiles fold into one [`FeatureValue`].

use riffle_core::FeatureValue;

use super::distinct::{value_hash, DistinctSet};
use super::event::{Event, Rejected};
use super::spec::{AggregationKind, ResolvedSpec};

/// What one tile of one spec keeps. Every variant but `Empty` holds at least one value.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) enum TileAgg {
    /// No event of this spec in the tile (another spec of its run had one): folds to
    /// nothing and is left out of snapshots.
    #[default]
    Empty,
    Count(u64),
    /// Sum of the tile's values, added in arrival order starting from 0.0.
    Sum(f64),
    Mean {
        sum: f64,
        count: u64,
    },
    Min(f64),
    Max(f64),
    /// The value with the greatest `(event time, arrival seq)`.
    Last {
        time: i64,
        seq: u64,
        value: FeatureValue,
    },
    Distinct(DistinctSet),
}

/// One event's contribution to one spec.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Input<'a> {
    Unit,
    Number(f64),
    Value(&'a FeatureValue),
    Hash(u64),
}

fn type_name(value: &FeatureValue) -> &'static str {
    match value {
        FeatureValue::Null => "null",
        FeatureValue::Int64(_) => "an int64",
        FeatureValue::Float64(_) => "a float64",
        FeatureValue::Bool(_) => "a bool",
        FeatureValue::String(_) => "a string",
        FeatureValue::FloatVector(_) => "a float vector",
    }
}

/// What `event` contributes to `spec`: `Ok(None)` when the field is missing or null, an
/// error when a numeric spec's field is not a finite number.
pub(crate) fn input<'a>(
    spec: &ResolvedSpec,
    event: &'a Event,
) -> Result<Option<Input<'a>>, Rejected> {
    let value = match &spec.field {
        None => return Ok(Some(Input::Unit)),
        Some(field) => match event.field(field) {
            None | Some(FeatureValue::Null) => return Ok(None),
            Some(value) => value,
        },
    };
    Ok(Some(match spec.kind {
        AggregationKind::Count => Input::Unit,
        AggregationKind::Last => Input::Value(value),
        AggregationKind::DistinctCount => match value_hash(value) {
            Some(hash) => Input::Hash(hash),
            None => return Ok(None),
        },
        AggregationKind::Sum
        | AggregationKind::Mean
        | AggregationKind::Min
        | AggregationKind::Max => {
            let field = || spec.field.clone().unwrap_or_default();
            let number = match value {
                FeatureValue::Int64(i) => *i as f64,
                FeatureValue::Float64(f) => *f,
                other => {
                    return Err(Rejected::NotNumeric {
                        feature: spec.name.clone(),
                        field: field(),
                        got: type_name(other),
                    })
                }
            };
            if !number.is_finite() {
                return Err(Rejected::NotFinite {
                    feature: spec.name.clone(),
                    field: field(),
                });
            }
            Input::Number(number)
        }
    }))
}

impl TileAgg {
    pub fn is_empty(&self) -> bool {
        matches!(self, TileAgg::Empty)
    }

    /// The identity a `kind` aggregate starts from, updated with its first input at once.
    fn start(kind: AggregationKind) -> Self {
        match kind {
            AggregationKind::Count => TileAgg::Count(0),
            AggregationKind::Sum => TileAgg::Sum(0.0),
            AggregationKind::Mean => TileAgg::Mean { sum: 0.0, count: 0 },
            AggregationKind::Min => TileAgg::Min(f64::INFINITY),
            AggregationKind::Max => TileAgg::Max(f64::NEG_INFINITY),
            AggregationKind::Last => TileAgg::Last {
                time: i64::MIN,
                seq: 0,
                value: FeatureValue::Null,
            },
            AggregationKind::DistinctCount => TileAgg::Distinct(DistinctSet::new()),
        }
    }

    /// Adds one event's input to a `kind` aggregate (`time` and `seq` order `last`).
    pub fn update(&mut self, kind: AggregationKind, input: Input<'_>, time: i64, seq: u64) {
        if self.is_empty() {
            *self = TileAgg::start(kind);
        }
        match (self, input) {
            (TileAgg::Count(n), _) => *n = n.saturating_add(1),
            (TileAgg::Sum(s), Input::Number(x)) => *s += x,
            (TileAgg::Mean { sum, count }, Input::Number(x)) => {
                *sum += x;
                *count = count.saturating_add(1);
            }
            (TileAgg::Min(m), Input::Number(x)) => *m = m.min(x),
            (TileAgg::Max(m), Input::Number(x)) => *m = m.max(x),
            (
                TileAgg::Last {
                    time: t,
                    seq: s,
                    value,
                },
                Input::Value(v),
            ) if (time, seq) > (*t, *s) => {
                *t = time;
                *s = seq;
                *value = v.clone();
            }
            (TileAgg::Distinct(set), Input::Hash(h)) => set.insert(h),
            // `input` builds the variant matching the spec's kind; nothing else reaches here.
            _ => {}
        }
    }
}

/// The value of a window made of `tiles` (oldest first) for a spec of `kind`.
pub(crate) fn fold<'a>(
    kind: AggregationKind,
    tiles: impl Iterator<Item = &'a TileAgg>,
) -> FeatureValue {
    match kind {
        AggregationKind::Count => {
            let n = tiles
                .map(|t| match t {
                    TileAgg::Count(n) => *n,
                    _ => 0,
                })
                .fold(0u64, u64::saturating_add);
            FeatureValue::Int64(i64::try_from(n).unwrap_or(i64::MAX))
        }
        AggregationKind::Sum => {
            let mut acc = 0.0;
            for t in tiles {
                if let TileAgg::Sum(s) = t {
                    acc += s;
                }
            }
            FeatureValue::Float64(acc)
        }
        AggregationKind::Mean => {
            let (mut sum, mut count) = (0.0, 0u64);
            for t in tiles {
                if let TileAgg::Mean { sum: s, count: c } = t {
                    sum += s;
                    count = count.saturating_add(*c);
                }
            }
            if count == 0 {
                FeatureValue::Null
            } else {
                FeatureValue::Float64(sum / count as f64)
            }
        }
        AggregationKind::Min | AggregationKind::Max => {
            let mut acc: Option<f64> = None;
            for t in tiles {
                let x = match t {
                    TileAgg::Min(x) | TileAgg::Max(x) => *x,
                    _ => continue,
                };
                acc = Some(match acc {
                    None => x,
                    Some(a) if kind == AggregationKind::Min => a.min(x),
                    Some(a) => a.max(x),
                });
            }
            acc.map_or(FeatureValue::Null, FeatureValue::Float64)
        }
        AggregationKind::Last => {
            let mut best: Option<(i64, u64, &FeatureValue)> = None;
            for t in tiles {
                if let TileAgg::Last { time, seq, value } = t {
                    if best.is_none_or(|(bt, bs, _)| (*time, *seq) > (bt, bs)) {
                        best = Some((*time, *seq, value));
                    }
                }
            }
            best.map_or(FeatureValue::Null, |(_, _, v)| v.clone())
        }
        AggregationKind::DistinctCount => {
            FeatureValue::Int64(DistinctSet::union_count(tiles.filter_map(|t| match t {
                TileAgg::Distinct(set) => Some(set),
                _ => None,
            })))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tile_aggregate_stays_within_48_bytes() {
        // Ingest reaches an entity's tiles at random: every byte here is cache traffic.
        assert!(
            std::mem::size_of::<TileAgg>() <= 48,
            "{}",
            std::mem::size_of::<TileAgg>()
        );
    }
}
