//! One entity's window state: the tiles of every spec plus its arrival counter, and the
//! questions asked of it (values at a time, when it next changes, what can be pruned).

use riffle_core::FeatureValue;

use super::aggregate::{fold, input, TileAgg};
use super::event::Event;
use super::spec::ResolvedSpec;
use super::tile::Tiles;

/// Tiles per spec (in spec order) and the entity's arrival counter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EntityState {
    pub specs: Vec<Tiles<TileAgg>>,
    /// Arrival sequence number of the entity's next applied event; orders ties in `last`.
    /// Kept per entity (and in its snapshot) so replays number events identically.
    pub seq: u64,
}

impl EntityState {
    pub fn new(spec_count: usize) -> Self {
        Self {
            specs: (0..spec_count).map(|_| Tiles::default()).collect(),
            seq: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.specs.iter().all(Tiles::is_empty)
    }

    /// Applies an event already validated (every `input` is `Ok`) to every spec whose window
    /// at `clock_ms` reaches it. Returns the earliest time after `clock_ms` at which a tile
    /// it touched enters or leaves a window, or `None` if it touched no spec.
    pub fn apply(&mut self, specs: &[ResolvedSpec], event: &Event, clock_ms: i64) -> Option<i64> {
        let time = event.time.millis();
        let seq = self.seq;
        let mut next: Option<i64> = None;
        for (spec, tiles) in specs.iter().zip(self.specs.iter_mut()) {
            let tile = spec.grid.tile_of(time);
            if tile < spec.grid.window(clock_ms).0 {
                continue;
            }
            let Ok(Some(value)) = input(spec, event) else {
                continue;
            };
            tiles
                .get_or_insert_with(tile, || TileAgg::empty(spec.kind))
                .update(value, time, seq);
            let change = spec.grid.next_change_of(tile, clock_ms);
            next = Some(next.map_or(change, |n| n.min(change)));
        }
        if next.is_some() {
            self.seq = self.seq.wrapping_add(1);
        }
        next
    }

    /// Every spec's value read at `at_ms`.
    pub fn values_at(&self, specs: &[ResolvedSpec], at_ms: i64) -> Vec<FeatureValue> {
        (0..specs.len())
            .map(|i| self.value_at(specs, i, at_ms))
            .collect()
    }

    pub fn value_at(&self, specs: &[ResolvedSpec], i: usize, at_ms: i64) -> FeatureValue {
        let (Some(spec), Some(tiles)) = (specs.get(i), self.specs.get(i)) else {
            return FeatureValue::Null;
        };
        let (lo, hi) = spec.grid.window(at_ms);
        fold(spec.kind, tiles.range(lo, hi).map(|(_, agg)| agg))
    }

    /// Whether any spec's value read at `a_ms` differs from its value read at `b_ms`.
    pub fn differs(&self, specs: &[ResolvedSpec], a_ms: i64, b_ms: i64) -> bool {
        (0..specs.len()).any(|i| self.value_at(specs, i, a_ms) != self.value_at(specs, i, b_ms))
    }

    /// Drops the tiles no window reaches at `clock_ms` or later.
    pub fn prune(&mut self, specs: &[ResolvedSpec], clock_ms: i64) {
        for (spec, tiles) in specs.iter().zip(self.specs.iter_mut()) {
            tiles.prune_before(spec.grid.window(clock_ms).0);
        }
    }

    /// The first time after `clock_ms` at which some value changes with no new event: the
    /// oldest in-window tile leaving, or the first tile ahead of the clock entering. Assumes
    /// the state is pruned at `clock_ms`. `None` when the state is empty.
    pub fn next_change(&self, specs: &[ResolvedSpec], clock_ms: i64) -> Option<i64> {
        let mut next: Option<i64> = None;
        for (spec, tiles) in specs.iter().zip(self.specs.iter()) {
            let hi = spec.grid.tile_of(clock_ms);
            let candidates = [
                tiles
                    .first()
                    .filter(|&t| t <= hi)
                    .map(|t| spec.grid.leaves_at(t)),
                tiles.first_after(hi).map(|t| spec.grid.enters_at(t)),
            ];
            for c in candidates.into_iter().flatten() {
                next = Some(next.map_or(c, |n| n.min(c)));
            }
        }
        next
    }
}
