//! Tile arithmetic (which tile a time falls in, which tiles a window read at `t` covers, when
//! a tile enters and leaves windows) and [`Tiles`], the sorted run of one spec's non-empty
//! tiles for one entity.

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

/// Non-empty tiles of one spec, sorted by tile index, each with its aggregate.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Tiles<A> {
    run: VecDeque<(i64, A)>,
}

impl<A> Default for Tiles<A> {
    fn default() -> Self {
        Self {
            run: VecDeque::new(),
        }
    }
}

impl<A> Tiles<A> {
    /// The aggregate of `tile`, created with `make` if the tile is new. O(1) for the newest
    /// tile (in-order events), O(log n + n) for an out-of-order new tile in the middle.
    pub fn get_or_insert_with(&mut self, tile: i64, make: impl FnOnce() -> A) -> &mut A {
        let pos = match self.run.back() {
            Some((last, _)) if *last < tile => self.run.len(),
            None => 0,
            _ => self.run.partition_point(|(t, _)| *t < tile),
        };
        if self.run.get(pos).is_none_or(|(t, _)| *t != tile) {
            self.run.insert(pos, (tile, make()));
        }
        // `pos` holds `tile` now: either found or just inserted.
        &mut self.run[pos].1
    }

    /// Drops every tile before `first_kept`.
    pub fn prune_before(&mut self, first_kept: i64) {
        while self.run.front().is_some_and(|(t, _)| *t < first_kept) {
            self.run.pop_front();
        }
    }

    /// Tiles with index in `[lo, hi]`, oldest first.
    pub fn range(&self, lo: i64, hi: i64) -> impl Iterator<Item = &(i64, A)> {
        let start = self.run.partition_point(|(t, _)| *t < lo);
        let end = self.run.partition_point(|(t, _)| *t <= hi);
        self.run.range(start..end.max(start))
    }

    /// The first tile after `hi`.
    pub fn first_after(&self, hi: i64) -> Option<i64> {
        let pos = self.run.partition_point(|(t, _)| *t <= hi);
        self.run.get(pos).map(|(t, _)| *t)
    }

    pub fn first(&self) -> Option<i64> {
        self.run.front().map(|(t, _)| *t)
    }

    pub fn is_empty(&self) -> bool {
        self.run.is_empty()
    }

    pub fn len(&self) -> usize {
        self.run.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &(i64, A)> {
        self.run.iter()
    }

    /// Appends a tile known to be newer than every tile held (decoding a snapshot).
    pub fn push_newest(&mut self, tile: i64, agg: A) -> bool {
        if self.run.back().is_some_and(|(t, _)| *t >= tile) {
            return false;
        }
        self.run.push_back((tile, agg));
        true
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
    fn tiles_stay_sorted_whatever_the_arrival_order() {
        let mut t: Tiles<u32> = Tiles::default();
        for i in [5, 3, 9, 3, 7, 1, 9] {
            *t.get_or_insert_with(i, || 0) += 1;
        }
        let got: Vec<_> = t.iter().copied().collect();
        assert_eq!(got, vec![(1, 1), (3, 2), (5, 1), (7, 1), (9, 2)]);
        let mid: Vec<_> = t.range(3, 7).map(|(i, _)| *i).collect();
        assert_eq!(mid, vec![3, 5, 7]);
        assert_eq!(t.range(8, 2).count(), 0);
        assert_eq!(t.first_after(5), Some(7));
        assert_eq!(t.first_after(9), None);
        t.prune_before(4);
        assert_eq!(t.first(), Some(5));
        assert!(!t.push_newest(9, 0));
        assert!(t.push_newest(10, 0));
        assert_eq!(t.len(), 4);
    }
}
