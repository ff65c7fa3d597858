//! Feature declarations: what to aggregate, over which window, cut into which tiles; and the
//! engine's configuration, validated all at once.

use riffle_core::Timestamp;
use std::time::Duration;

use super::hash::StableHasher;
use super::tile::TileGrid;

/// How a window's events become one value (the registry declares it with this type).
pub use riffle_core::AggregationKind;

/// One window feature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregationSpec {
    /// Feature name; unique within an engine.
    pub name: String,
    pub kind: AggregationKind,
    /// The event field aggregated; `None` only for `count` (count every event).
    pub field: Option<String>,
    pub window: Duration,
    /// Tile size; `None` means [`default_tile`] of the window.
    pub tile: Option<Duration>,
}

impl AggregationSpec {
    pub fn new(
        name: impl Into<String>,
        kind: AggregationKind,
        field: Option<&str>,
        window: Duration,
    ) -> Self {
        Self {
            name: name.into(),
            kind,
            field: field.map(str::to_owned),
            window,
            tile: None,
        }
    }

    pub fn with_tile(mut self, tile: Duration) -> Self {
        self.tile = Some(tile);
        self
    }

    /// The tile size in force: the explicit one, or [`default_tile`] of the window.
    pub fn tile_size(&self) -> Duration {
        self.tile.unwrap_or_else(|| default_tile(self.window))
    }
}

/// Tile sizes the default picks from, largest first (milliseconds).
const TILE_LADDER_MS: [u64; 18] = [
    86_400_000, 43_200_000, 21_600_000, 10_800_000, 3_600_000, 1_800_000, 900_000, 600_000,
    300_000, 60_000, 30_000, 15_000, 10_000, 5_000, 1_000, 100, 10, 1,
];

/// The default tile for a window: the largest "round" size (see the module docs) that is at
/// most `max(window / 60, 1 s)` and divides the window, so a window has about 60 tiles and
/// is never coarser than 1/60 of its length (short windows get 1 s tiles).
pub fn default_tile(window: Duration) -> Duration {
    let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
    let target = (window_ms / 60).max(1_000);
    let tile = TILE_LADDER_MS
        .iter()
        .copied()
        .find(|&c| c <= target && window_ms % c == 0)
        .unwrap_or(1);
    Duration::from_millis(tile)
}

/// Most tiles one window may span (an explicit tile that small is a mistake).
pub const MAX_TILES_PER_WINDOW: u64 = 10_000;
/// Longest window accepted: ten years.
pub const MAX_WINDOW: Duration = Duration::from_secs(3_660 * 86_400);
/// Default limit on how far ahead of `now` an event time may be.
pub const DEFAULT_MAX_FUTURE: Duration = Duration::from_secs(300);

/// Everything the engine needs to know up front.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    pub specs: Vec<AggregationSpec>,
    /// Reject events more than this far behind the largest event time accepted so far;
    /// `None`: only the window reach limits lateness.
    pub allowed_lateness: Option<Duration>,
    /// Reject events more than this far ahead of the `now` they are ingested at.
    pub max_future: Duration,
}

impl EngineConfig {
    pub fn new(specs: Vec<AggregationSpec>) -> Self {
        Self {
            specs,
            allowed_lateness: None,
            max_future: DEFAULT_MAX_FUTURE,
        }
    }

    /// The earliest event time (ms) a stream whose largest accepted event time is
    /// `stream_latest` still accepts by `allowed_lateness`; `None` when that sets no limit
    /// (no `allowed_lateness`, or the stream's first event). The window reach at the engine
    /// clock limits lateness as well ([`crate::WindowEngine::ingest_in_stream`]).
    pub fn lateness_floor(&self, stream_latest: Option<Timestamp>) -> Option<i64> {
        let allowed = i64::try_from(self.allowed_lateness?.as_millis()).unwrap_or(i64::MAX);
        Some(stream_latest?.millis().saturating_sub(allowed))
    }
}

/// One problem with one spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("no aggregation specs")]
    NoSpecs,
    #[error("specs[{index}] ({name}): duplicate feature name")]
    DuplicateName { index: usize, name: String },
    #[error("specs[{index}] ({name}): {kind} needs a field")]
    MissingField {
        index: usize,
        name: String,
        kind: AggregationKind,
    },
    #[error("specs[{index}] ({name}): window and tile must be at least 1 ms")]
    Zero { index: usize, name: String },
    #[error("specs[{index}] ({name}): window longer than {} days", MAX_WINDOW.as_secs() / 86_400)]
    WindowTooLong { index: usize, name: String },
    #[error(
        "specs[{index}] ({name}): tile of {tile_ms} ms does not divide the {window_ms} ms window"
    )]
    TileDoesNotDivide {
        index: usize,
        name: String,
        window_ms: u128,
        tile_ms: u128,
    },
    #[error("specs[{index}] ({name}): {tiles} tiles per window; at most {MAX_TILES_PER_WINDOW}")]
    TooManyTiles {
        index: usize,
        name: String,
        tiles: u128,
    },
}

/// Every problem found in an [`EngineConfig`], reported together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid window configuration: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct ConfigError(pub Vec<SpecError>);

/// A validated spec in the engine's working form.
#[derive(Debug, Clone)]
pub(crate) struct ResolvedSpec {
    pub name: String,
    pub kind: AggregationKind,
    pub field: Option<String>,
    pub grid: TileGrid,
    /// Identifies the spec's state in snapshots: a hash of name, kind, field, window, tile.
    pub fingerprint: u64,
    /// The run holding the spec's tiles ([`Layout::runs`]) and its place in each tile.
    pub run: usize,
    pub slot: usize,
}

/// Specs sharing one grid: their tiles are kept together (see [`TileRun`]).
///
/// [`TileRun`]: super::tile::TileRun
#[derive(Debug, Clone)]
pub(crate) struct RunShape {
    pub grid: TileGrid,
    /// The run's specs (indexes into [`Layout::specs`]), in slot order.
    pub specs: Vec<usize>,
}

impl RunShape {
    /// Aggregates per tile.
    pub fn width(&self) -> usize {
        self.specs.len()
    }
}

/// The validated specs, in declaration order, and the runs they are grouped into (in order
/// of each run's first spec).
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub specs: Vec<ResolvedSpec>,
    pub runs: Vec<RunShape>,
}

impl Layout {
    fn new(mut specs: Vec<ResolvedSpec>) -> Self {
        let mut runs: Vec<RunShape> = Vec::new();
        for (index, spec) in specs.iter_mut().enumerate() {
            let run = match runs.iter().position(|r| r.grid == spec.grid) {
                Some(run) => run,
                None => {
                    runs.push(RunShape {
                        grid: spec.grid,
                        specs: Vec::new(),
                    });
                    runs.len() - 1
                }
            };
            spec.run = run;
            spec.slot = runs[run].specs.len();
            runs[run].specs.push(index);
        }
        Self { specs, runs }
    }
}

/// Validates every spec, returning all problems at once.
pub(crate) fn resolve(specs: &[AggregationSpec]) -> Result<Layout, ConfigError> {
    let mut errors = Vec::new();
    if specs.is_empty() {
        errors.push(SpecError::NoSpecs);
    }
    let mut resolved = Vec::with_capacity(specs.len());
    for (index, spec) in specs.iter().enumerate() {
        let name = spec.name.clone();
        if specs[..index].iter().any(|s| s.name == spec.name) {
            errors.push(SpecError::DuplicateName {
                index,
                name: name.clone(),
            });
        }
        if spec.kind.needs_field() && spec.field.is_none() {
            errors.push(SpecError::MissingField {
                index,
                name: name.clone(),
                kind: spec.kind,
            });
        }
        let window_ms = spec.window.as_millis();
        let tile_ms = spec.tile_size().as_millis();
        if window_ms == 0 || tile_ms == 0 {
            errors.push(SpecError::Zero { index, name });
            continue;
        }
        if spec.window > MAX_WINDOW {
            errors.push(SpecError::WindowTooLong { index, name });
            continue;
        }
        if window_ms % tile_ms != 0 {
            errors.push(SpecError::TileDoesNotDivide {
                index,
                name,
                window_ms,
                tile_ms,
            });
            continue;
        }
        let tiles = window_ms / tile_ms;
        if tiles > u128::from(MAX_TILES_PER_WINDOW) {
            errors.push(SpecError::TooManyTiles { index, name, tiles });
            continue;
        }
        // Both fit: window <= MAX_WINDOW (~3.2e11 ms), tiles <= MAX_TILES_PER_WINDOW.
        let (tile_ms, tiles) = (tile_ms as i64, tiles as i64);
        resolved.push(ResolvedSpec {
            name: spec.name.clone(),
            kind: spec.kind,
            field: spec.field.clone(),
            grid: TileGrid { tile_ms, tiles },
            fingerprint: fingerprint(spec, tile_ms, tiles),
            run: 0,
            slot: 0,
        });
    }
    if errors.is_empty() {
        Ok(Layout::new(resolved))
    } else {
        Err(ConfigError(errors))
    }
}

fn fingerprint(spec: &AggregationSpec, tile_ms: i64, tiles: i64) -> u64 {
    let mut h = StableHasher::new();
    h.write(spec.name.as_bytes());
    h.write(&[0xff]);
    h.write(spec.kind.as_str().as_bytes());
    h.write(&[0xff]);
    match &spec.field {
        Some(field) => {
            h.write(&[1]);
            h.write(field.as_bytes());
        }
        None => h.write(&[0]),
    }
    h.write(&tile_ms.to_le_bytes());
    h.write(&tiles.to_le_bytes());
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000;
    const M: u64 = 60 * S;
    const H: u64 = 60 * M;

    #[test]
    fn default_tiles_are_round_and_about_a_sixtieth() {
        let tile = |ms: u64| default_tile(Duration::from_millis(ms)).as_millis() as u64;
        assert_eq!(tile(H), M);
        assert_eq!(tile(30 * M), 30 * S);
        assert_eq!(tile(24 * H), 15 * M);
        assert_eq!(tile(7 * 24 * H), H);
        assert_eq!(tile(90 * 24 * H), 24 * H);
        assert_eq!(tile(10 * S), S);
        assert_eq!(tile(M), S);
        assert_eq!(tile(1_500), 100);
        assert_eq!(tile(7), 1);
    }

    #[test]
    fn validation_reports_every_problem() {
        let w = Duration::from_secs(60);
        let specs = vec![
            AggregationSpec::new("a", AggregationKind::Sum, None, w),
            AggregationSpec::new("a", AggregationKind::Count, None, w),
            AggregationSpec::new("b", AggregationKind::Count, None, w)
                .with_tile(Duration::from_secs(7)),
            AggregationSpec::new("c", AggregationKind::Count, None, Duration::ZERO),
            AggregationSpec::new("d", AggregationKind::Count, None, w)
                .with_tile(Duration::from_millis(1)),
        ];
        let err = resolve(&specs).unwrap_err();
        assert_eq!(err.0.len(), 5, "{err}");
        assert!(matches!(err.0[0], SpecError::MissingField { index: 0, .. }));
        assert!(matches!(
            err.0[1],
            SpecError::DuplicateName { index: 1, .. }
        ));
        assert!(matches!(
            err.0[2],
            SpecError::TileDoesNotDivide { index: 2, .. }
        ));
        assert!(matches!(err.0[3], SpecError::Zero { index: 3, .. }));
        assert!(matches!(err.0[4], SpecError::TooManyTiles { index: 4, .. }));
        assert_eq!(resolve(&[]).unwrap_err().0, vec![SpecError::NoSpecs]);
    }

    #[test]
    fn fingerprints_tell_specs_apart() {
        let w = Duration::from_secs(60);
        let a = AggregationSpec::new("a", AggregationKind::Sum, Some("x"), w);
        let b = AggregationSpec::new("b", AggregationKind::Sum, Some("x"), w);
        let c = a.clone().with_tile(Duration::from_secs(2));
        let r = resolve(&[a.clone(), b]).unwrap().specs;
        assert_ne!(r[0].fingerprint, r[1].fingerprint);
        assert_ne!(
            r[0].fingerprint,
            resolve(&[c]).unwrap().specs[0].fingerprint
        );
        assert_eq!(
            r[0].fingerprint,
            resolve(&[a]).unwrap().specs[0].fingerprint
        );
    }

    #[test]
    fn specs_on_one_grid_share_a_run() {
        let spec = |name: &str, window: u64| {
            AggregationSpec::new(
                name,
                AggregationKind::Count,
                None,
                Duration::from_secs(window),
            )
        };
        let layout = resolve(&[
            spec("a_1h", 3_600),
            spec("b_30m", 1_800),
            spec("c_1h", 3_600),
            spec("d_1h_coarse", 3_600).with_tile(Duration::from_secs(600)),
        ])
        .unwrap();
        let runs: Vec<Vec<usize>> = layout.runs.iter().map(|r| r.specs.clone()).collect();
        assert_eq!(runs, vec![vec![0, 2], vec![1], vec![3]]);
        let places: Vec<(usize, usize)> = layout.specs.iter().map(|s| (s.run, s.slot)).collect();
        assert_eq!(places, vec![(0, 0), (1, 0), (0, 1), (2, 0)]);
    }
}
