//! One entity's window state: the tiles of every run of specs plus its arrival counter, and
//! the questions asked of it (values at a time, when it next changes, what can be pruned).

use riffle_core::FeatureValue;
use smallvec::SmallVec;

use super::aggregate::{fold, input, TileAgg};
use super::event::Event;
use super::spec::Layout;
use super::tile::TileRun;

/// Runs an entity keeps in place: with up to this many tile grids, reaching an entity's
/// tiles takes one pointer less (a cache miss per event when entities are many).
const INLINE_RUNS: usize = 4;

/// Tiles per run (in [`Layout::runs`] order) and the entity's arrival counter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EntityState {
    pub runs: SmallVec<[TileRun<TileAgg>; INLINE_RUNS]>,
    /// Arrival sequence number of the entity's next applied event; orders ties in `last`.
    /// Kept per entity (and in its snapshot) so replays number events identically.
    pub seq: u64,
}

impl EntityState {
    pub fn new(layout: &Layout) -> Self {
        Self {
            runs: (0..layout.runs.len()).map(|_| TileRun::default()).collect(),
            seq: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.runs.iter().all(TileRun::is_empty)
    }

    /// Applies an event already validated (every `input` is `Ok`) to every spec whose window
    /// at `clock_ms` reaches it. Returns the earliest time after `clock_ms` at which a tile
    /// it touched enters or leaves a window, or `None` if it touched no spec.
    pub fn apply(&mut self, layout: &Layout, event: &Event, clock_ms: i64) -> Option<i64> {
        let time = event.time.millis();
        let seq = self.seq;
        let mut next: Option<i64> = None;
        for (shape, run) in layout.runs.iter().zip(self.runs.iter_mut()) {
            let tile = shape.grid.tile_of(time);
            if tile < shape.grid.window(clock_ms).0 {
                continue;
            }
            let width = shape.width();
            let mut pos = None;
            for (slot, &i) in shape.specs.iter().enumerate() {
                let Some(spec) = layout.specs.get(i) else {
                    continue;
                };
                let Ok(Some(value)) = input(spec, event) else {
                    continue;
                };
                let p = *pos.get_or_insert_with(|| run.position_or_insert(tile, width));
                if let Some(agg) = run.agg_mut(p, width, slot) {
                    agg.update(spec.kind, value, time, seq);
                }
            }
            if pos.is_some() {
                let change = shape.grid.next_change_of(tile, clock_ms);
                next = Some(next.map_or(change, |n| n.min(change)));
            }
        }
        if next.is_some() {
            self.seq = self.seq.wrapping_add(1);
        }
        next
    }

    /// Every spec's value read at `at_ms` (each run's window found once for all its specs).
    pub fn values_at(&self, layout: &Layout, at_ms: i64) -> Vec<FeatureValue> {
        let mut values = vec![FeatureValue::Null; layout.specs.len()];
        for (shape, run) in layout.runs.iter().zip(self.runs.iter()) {
            let (lo, hi) = shape.grid.window(at_ms);
            let positions = run.positions(lo, hi);
            let width = shape.width();
            for (slot, &i) in shape.specs.iter().enumerate() {
                if let (Some(spec), Some(value)) = (layout.specs.get(i), values.get_mut(i)) {
                    let tiles = positions
                        .clone()
                        .filter_map(|pos| run.agg(pos, width, slot));
                    *value = fold(spec.kind, tiles);
                }
            }
        }
        values
    }

    pub fn value_at(&self, layout: &Layout, i: usize, at_ms: i64) -> FeatureValue {
        let Some(spec) = layout.specs.get(i) else {
            return FeatureValue::Null;
        };
        let (Some(shape), Some(run)) = (layout.runs.get(spec.run), self.runs.get(spec.run)) else {
            return FeatureValue::Null;
        };
        let (lo, hi) = shape.grid.window(at_ms);
        let width = shape.width();
        fold(
            spec.kind,
            run.positions(lo, hi)
                .filter_map(|pos| run.agg(pos, width, spec.slot)),
        )
    }

    /// The tiles of spec `i` that hold something, oldest first (for snapshots).
    pub fn spec_tiles<'a>(
        &'a self,
        layout: &'a Layout,
        i: usize,
    ) -> impl Iterator<Item = (i64, &'a TileAgg)> + 'a {
        let spec = layout.specs.get(i);
        let run = spec.and_then(|s| self.runs.get(s.run));
        let width = spec
            .and_then(|s| layout.runs.get(s.run))
            .map_or(0, |r| r.width());
        let slot = spec.map_or(0, |s| s.slot);
        (0..run.map_or(0, TileRun::len)).filter_map(move |pos| {
            let run = run?;
            let agg = run.agg(pos, width, slot).filter(|a| !a.is_empty())?;
            Some((run.tile(pos)?, agg))
        })
    }

    /// Puts a decoded tile of spec `i` in place (its run gets the tile if new).
    pub fn insert_tile(&mut self, layout: &Layout, i: usize, tile: i64, agg: TileAgg) {
        let Some(spec) = layout.specs.get(i) else {
            return;
        };
        let (Some(shape), Some(run)) = (layout.runs.get(spec.run), self.runs.get_mut(spec.run))
        else {
            return;
        };
        let width = shape.width();
        let pos = run.position_or_insert(tile, width);
        if let Some(slot) = run.agg_mut(pos, width, spec.slot) {
            *slot = agg;
        }
    }

    /// Whether any spec's value read at `a_ms` differs from its value read at `b_ms`.
    pub fn differs(&self, layout: &Layout, a_ms: i64, b_ms: i64) -> bool {
        (0..layout.specs.len())
            .any(|i| self.value_at(layout, i, a_ms) != self.value_at(layout, i, b_ms))
    }

    /// Drops the tiles no window reaches at `clock_ms` or later.
    pub fn prune(&mut self, layout: &Layout, clock_ms: i64) {
        for (shape, run) in layout.runs.iter().zip(self.runs.iter_mut()) {
            run.prune_before(shape.grid.window(clock_ms).0, shape.width());
        }
    }

    /// The first time after `clock_ms` at which some value changes with no new event: the
    /// oldest in-window tile leaving, or the first tile ahead of the clock entering. Assumes
    /// the state is pruned at `clock_ms`. `None` when the state is empty.
    pub fn next_change(&self, layout: &Layout, clock_ms: i64) -> Option<i64> {
        let mut next: Option<i64> = None;
        for (shape, run) in layout.runs.iter().zip(self.runs.iter()) {
            let hi = shape.grid.tile_of(clock_ms);
            let candidates = [
                run.first()
                    .filter(|&t| t <= hi)
                    .map(|t| shape.grid.leaves_at(t)),
                run.first_after(hi).map(|t| shape.grid.enters_at(t)),
            ];
            for c in candidates.into_iter().flatten() {
                next = Some(next.map_or(c, |n| n.min(c)));
            }
        }
        next
    }
}
