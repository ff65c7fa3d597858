//! The test oracle: deliberately simple. It keeps every accepted raw event (a `Vec` per
//! entity) and computes each window at read time by filtering events on the tile
//! definition; acceptance rules are restated directly from the module docs. No tiles, no
//! timers, no pruning.
//!
//! Above the exact-distinct bound the *value* of `distinct_count` is defined as the
//! HyperLogLog estimate of the window's values, so the oracle computes that estimate over
//! the raw values with the same sketch and hash; [`Oracle::true_distinct`] gives the exact
//! count the estimate is checked against.

use std::collections::{BTreeMap, BTreeSet};

use riffle_core::{EntityId, FeatureValue, Timestamp};

use crate::distinct::{value_hash, EXACT_DISTINCT_LIMIT};
use crate::hll::Hll;
use crate::{AggregationKind, AggregationSpec, EngineConfig, Event};

#[derive(Clone)]
pub(crate) struct Oracle {
    config: EngineConfig,
    /// Accepted events of each entity, with their arrival number, in arrival order.
    events: BTreeMap<EntityId, Vec<(usize, Event)>>,
    arrivals: usize,
    clock: i64,
    max_seen: Option<i64>,
    /// Largest event time accepted per input stream.
    stream_max: BTreeMap<u64, i64>,
}

fn tiling(spec: &AggregationSpec) -> (i64, i64) {
    let tile = spec.tile_size().as_millis() as i64;
    (tile, spec.window.as_millis() as i64 / tile)
}

/// Whether the event at `time` lies in the window of `spec` read at `at`.
fn in_window(spec: &AggregationSpec, time: i64, at: i64) -> bool {
    let (tile, n) = tiling(spec);
    let hi = at.div_euclid(tile);
    let k = time.div_euclid(tile);
    let lo = hi - n + 1;
    lo <= k && k <= hi
}

fn distinct_key(value: &FeatureValue) -> String {
    match value {
        FeatureValue::Float64(f) if *f == 0.0 => "f0".to_owned(),
        other => format!("{other:?}"),
    }
}

impl Oracle {
    pub fn new(config: EngineConfig) -> Self {
        Self {
            config,
            events: BTreeMap::new(),
            arrivals: 0,
            clock: 0,
            max_seen: None,
            stream_max: BTreeMap::new(),
        }
    }

    pub fn advance(&mut self, now: Timestamp) {
        self.clock = self.clock.max(now.millis());
    }

    /// `Ok` or the reason name of the rejection; lateness against every event accepted.
    pub fn ingest(&mut self, event: &Event, now: Timestamp) -> Result<(), &'static str> {
        self.accept(event, now, self.max_seen)
    }

    /// Like [`Oracle::ingest`], lateness judged against the events accepted from `stream`.
    pub fn ingest_in_stream(
        &mut self,
        event: &Event,
        now: Timestamp,
        stream: u64,
    ) -> Result<(), &'static str> {
        let latest = self.stream_max.get(&stream).copied();
        self.accept(event, now, latest)?;
        let t = event.time.millis();
        self.stream_max
            .entry(stream)
            .and_modify(|m| *m = (*m).max(t))
            .or_insert(t);
        Ok(())
    }

    fn accept(
        &mut self,
        event: &Event,
        now: Timestamp,
        latest: Option<i64>,
    ) -> Result<(), &'static str> {
        let t = event.time.millis();
        if t > now.millis() + self.config.max_future.as_millis() as i64 {
            return Err("from_future");
        }
        // Too late: before the start of every window read at the clock (events ahead of
        // the clock are not late: their tiles enter windows later).
        let reaches = |s: &AggregationSpec| {
            let (tile, n) = tiling(s);
            let window_start = self.clock.div_euclid(tile) - n + 1;
            t.div_euclid(tile) >= window_start
        };
        if !self.config.specs.iter().any(reaches) {
            return Err("too_late");
        }
        if let (Some(lateness), Some(max)) = (self.config.allowed_lateness, latest) {
            if t < max - lateness.as_millis() as i64 {
                return Err("too_late");
            }
        }
        for spec in self.config.specs.iter().filter(|s| s.kind.is_numeric()) {
            match spec.field.as_deref().and_then(|f| event.field(f)) {
                None | Some(FeatureValue::Null) | Some(FeatureValue::Int64(_)) => {}
                Some(FeatureValue::Float64(f)) if f.is_finite() => {}
                Some(FeatureValue::Float64(_)) => return Err("not_finite"),
                Some(_) => return Err("not_numeric"),
            }
        }
        self.max_seen = Some(self.max_seen.map_or(t, |m| m.max(t)));
        self.events
            .entry(event.entity.clone())
            .or_default()
            .push((self.arrivals, event.clone()));
        self.arrivals += 1;
        Ok(())
    }

    pub fn entities(&self) -> BTreeSet<EntityId> {
        self.events.keys().cloned().collect()
    }

    /// `(arrival index, event, field value)` of the events in the spec's window at `at`
    /// that carry its field (every event for a field-less count).
    fn window<'a>(
        &'a self,
        entity: &'a EntityId,
        spec: &'a AggregationSpec,
        at: i64,
    ) -> impl Iterator<Item = (usize, &'a Event, Option<&'a FeatureValue>)> + 'a {
        self.events
            .get(entity)
            .into_iter()
            .flatten()
            .filter(move |(_, e)| in_window(spec, e.time.millis(), at))
            .filter_map(move |(i, e)| match spec.field.as_deref() {
                None => Some((*i, e, None)),
                Some(f) => match e.field(f) {
                    None | Some(FeatureValue::Null) => None,
                    Some(v) => Some((*i, e, Some(v))),
                },
            })
    }

    pub fn values(&self, entity: &EntityId, at: Timestamp) -> Vec<FeatureValue> {
        let at = at.millis();
        self.config
            .specs
            .iter()
            .map(|spec| self.value(entity, spec, at))
            .collect()
    }

    fn value(&self, entity: &EntityId, spec: &AggregationSpec, at: i64) -> FeatureValue {
        let number = |v: Option<&FeatureValue>| match v {
            Some(FeatureValue::Int64(i)) => *i as f64,
            Some(FeatureValue::Float64(f)) => *f,
            _ => f64::NAN,
        };
        let (tile, _) = tiling(spec);
        match spec.kind {
            AggregationKind::Count => {
                FeatureValue::Int64(self.window(entity, spec, at).count() as i64)
            }
            AggregationKind::Sum | AggregationKind::Mean => {
                // Per tile in arrival order, then across tiles in tile order.
                let mut tiles: BTreeMap<i64, f64> = BTreeMap::new();
                let mut count = 0;
                for (_, e, v) in self.window(entity, spec, at) {
                    *tiles.entry(e.time.millis().div_euclid(tile)).or_insert(0.0) += number(v);
                    count += 1;
                }
                let mut sum = 0.0;
                for s in tiles.values() {
                    sum += s;
                }
                match (spec.kind, count) {
                    (AggregationKind::Sum, _) => FeatureValue::Float64(sum),
                    (_, 0) => FeatureValue::Null,
                    _ => FeatureValue::Float64(sum / count as f64),
                }
            }
            AggregationKind::Min | AggregationKind::Max => self
                .window(entity, spec, at)
                .map(|(_, _, v)| number(v))
                .reduce(|a, b| {
                    if spec.kind == AggregationKind::Min {
                        a.min(b)
                    } else {
                        a.max(b)
                    }
                })
                .map_or(FeatureValue::Null, FeatureValue::Float64),
            AggregationKind::Last => self
                .window(entity, spec, at)
                .max_by_key(|(i, e, _)| (e.time, *i))
                .and_then(|(_, _, v)| v.cloned())
                .unwrap_or(FeatureValue::Null),
            AggregationKind::DistinctCount => {
                let (exact, max_per_tile) = self.distinct_detail(entity, spec, at);
                if max_per_tile <= EXACT_DISTINCT_LIMIT {
                    return FeatureValue::Int64(exact as i64);
                }
                let mut hll = Hll::new();
                for (_, _, v) in self.window(entity, spec, at) {
                    if let Some(h) = v.and_then(value_hash) {
                        hll.insert(h);
                    }
                }
                FeatureValue::Int64(hll.estimate().round() as i64)
            }
        }
    }

    /// Exact distinct values in the window, and the most distinct values in one tile.
    fn distinct_detail(
        &self,
        entity: &EntityId,
        spec: &AggregationSpec,
        at: i64,
    ) -> (usize, usize) {
        let (tile, _) = tiling(spec);
        let mut all = BTreeSet::new();
        let mut per_tile: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
        for (_, e, v) in self.window(entity, spec, at) {
            if let Some(v) = v {
                all.insert(distinct_key(v));
                per_tile
                    .entry(e.time.millis().div_euclid(tile))
                    .or_default()
                    .insert(distinct_key(v));
            }
        }
        (
            all.len(),
            per_tile.values().map(BTreeSet::len).max().unwrap_or(0),
        )
    }

    /// The exact distinct count of spec `i` (a `distinct_count`) at `at`.
    pub fn true_distinct(&self, entity: &EntityId, i: usize, at: Timestamp) -> usize {
        self.distinct_detail(entity, &self.config.specs[i], at.millis())
            .0
    }
}
