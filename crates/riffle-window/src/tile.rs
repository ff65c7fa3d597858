//! Tile arithmetic (which tile a time falls in, which tiles a window read at `t` covers, when
//! a tile enters and leaves windows) and [`TileRun`], one entity's tiles of the specs that
//! share a grid.

use std::collections::VecDeque;

/// A spec's tiling: tiles of `tile_ms`, windows of `tiles` tiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TileGrid {
    pub tile_ms: i64,
    pub tiles: i64,
}

impl TileGrid {
    /// The tile holding time `t_ms`.
    pub fn tile_of(self, t_ms: i64) -> i64 {
        t_ms.div_euclid(self.tile_ms)
    }

    /// First and last tile (inclusive) of the window read at `t_ms`.
    pub fn window(self, t_ms: i64) -> (i64, i64) {
        let hi = self.tile_of(t_ms);
        (hi - self.tiles + 1, hi)
    }

    /// Oldest time inside the window read at `t_ms`.
    pub fn window_start_ms(self, t_ms: i64) -> i64 {
        self.window(t_ms).0.saturating_mul(self.tile_ms)
    }

    /// First read time whose window includes `tile`.
    pub fn enters_at(self, tile: i64) -> i64 {
        tile.saturating_mul(self.tile_ms)
    }

    /// First read time whose window no longer includes `tile`.
    pub fn leaves_at(self, tile: i64) -> i64 {
        tile.saturating_add(self.tiles).saturating_mul(self.tile_ms)
    }

    /// The first time after `clock_ms` at which a window read would gain or lose `tile`
    /// (assumed not yet out of the window at `clock_ms`).
    pub fn next_change_of(self, tile: i64, clock_ms: i64) -> i64 {
        if tile > self.tile_of(clock_ms) {
            self.enters_at(tile)
        } else {
            self.leaves_at(tile)
        }
    }
}

/// The tiles of one run (the specs sharing one [`TileGrid`]) for one entity: tile indexes,
/// sorted, and for each tile one aggregate per spec of the run (`width` of them), stored
/// tile-major in a second deque. A tile exists once any spec of the run took an event in it.
///
/// Why one run per grid rather than one per spec: ingest touches an entity at random among
/// many, so reaching a spec's newest tile is a cache miss; the fraud example's ten specs on
/// three grids take three misses (plus neighbouring lines the prefetcher brings) instead of
/// ten. `width` is passed in, not stored, so a run's two deques fill one cache line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TileRun<A> {
    tiles: VecDeque<i64>,
    aggs: VecDeque<A>,
}

impl<A> Default for TileRun<A> {
    fn default() -> Self {
        Self {
            tiles: VecDeque::new(),
            aggs: VecDeque::new(),
        }
    }
}

impl<A: Default> TileRun<A> {
    /// The position of `tile`, inserted with `width` default (empty) aggregates if new. O(1)
    /// for the newest tile (in-order events), O(log n + n·width) for a new tile in the middle.
    pub fn position_or_insert(&mut self, tile: i64, width: usize) -> usize {
        let pos = match self.tiles.back() {
            Some(last) if *last < tile => self.tiles.len(),
            None => 0,
            _ => self.tiles.partition_point(|t| *t < tile),
        };
        if pos == self.tiles.len() {
            self.tiles.push_back(tile);
            self.aggs.extend((0..width).map(|_| A::default()));
        } else if self.tiles.get(pos) != Some(&tile) {
            self.tiles.insert(pos, tile);
            for slot in 0..width {
                self.aggs.insert(pos * width + slot, A::default());
            }
        }
        pos
    }
}

impl<A> TileRun<A> {
    /// The aggregate of spec `slot` in the tile at `pos`.
    pub fn agg(&self, pos: usize, width: usize, slot: usize) -> Option<&A> {
        self.aggs.get(pos * width + slot)
    }

    pub fn agg_mut(&mut self, pos: usize, width: usize, slot: usize) -> Option<&mut A> {
        self.aggs.get_mut(pos * width + slot)
    }

    /// Drops every tile before `first_kept`.
    pub fn prune_before(&mut self, first_kept: i64, width: usize) {
        let drop = self.tiles.partition_point(|t| *t < first_kept);
        if drop > 0 {
            self.tiles.drain(..drop);
            self.aggs.drain(..(drop * width).min(self.aggs.len()));
        }
    }

    /// Positions of the tiles with index in `[lo, hi]`, oldest first.
    pub fn positions(&self, lo: i64, hi: i64) -> std::ops::Range<usize> {
        let start = self.tiles.partition_point(|t| *t < lo);
        let end = self.tiles.partition_point(|t| *t <= hi);
        start..end.max(start)
    }

    /// The tile index at `pos`.
    pub fn tile(&self, pos: usize) -> Option<i64> {
        self.tiles.get(pos).copied()
    }

    /// The first tile after `hi`.
    pub fn first_after(&self, hi: i64) -> Option<i64> {
        let pos = self.tiles.partition_point(|t| *t <= hi);
        self.tile(pos)
    }

    pub fn first(&self) -> Option<i64> {
        self.tiles.front().copied()
    }

    pub fn is_empty(&self) -> bool {
        self.tiles.is_empty()
    }

    pub fn len(&self) -> usize {
        self.tiles.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_is_the_last_n_tiles_ending_with_the_readers_tile() {
        let g = TileGrid {
            tile_ms: 1_000,
            tiles: 60,
        };
        assert_eq!(g.window(120_500), (61, 120));
        assert_eq!(g.window_start_ms(120_500), 61_000);
        assert_eq!(g.leaves_at(61), 121_000);
        assert_eq!(g.enters_at(121), 121_000);
        assert_eq!(g.next_change_of(121, 120_500), 121_000);
        assert_eq!(g.next_change_of(100, 120_500), 160_000);
    }

    #[test]
    fn runs_stay_sorted_whatever_the_arrival_order() {
        let mut run: TileRun<u32> = TileRun::default();
        for (i, slot) in [(5, 0), (3, 1), (9, 0), (3, 0), (7, 1), (1, 0), (9, 1)] {
            let pos = run.position_or_insert(i, 2);
            *run.agg_mut(pos, 2, slot).unwrap() += 1;
        }
        let tiles: Vec<i64> = (0..run.len()).filter_map(|p| run.tile(p)).collect();
        assert_eq!(tiles, vec![1, 3, 5, 7, 9]);
        let column = |run: &TileRun<u32>, slot| -> Vec<u32> {
            (0..run.len())
                .map(|p| *run.agg(p, 2, slot).unwrap())
                .collect()
        };
        assert_eq!(column(&run, 0), vec![1, 1, 1, 0, 1]);
        assert_eq!(column(&run, 1), vec![0, 1, 0, 1, 1]);
        assert_eq!(run.positions(3, 7), 1..4);
        assert_eq!(run.positions(8, 2).len(), 0);
        assert_eq!(run.first_after(5), Some(7));
        assert_eq!(run.first_after(9), None);
        run.prune_before(4, 2);
        assert_eq!(run.first(), Some(5));
        assert_eq!(run.len(), 3);
        assert_eq!(column(&run, 1), vec![0, 1, 1]);
        run.prune_before(100, 2);
        assert!(run.is_empty());
        assert_eq!(run.agg(0, 2, 0), None);
    }
}
