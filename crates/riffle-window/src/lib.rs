//! Riffle's window engine: per-entity tiled sliding windows that are right *at the time they
//! are served*, with durable per-entity state. A pure library: no I/O, no tokio, no store,
//! no Kafka, no wall clock (every time comes in as an argument, so tests and replays are
//! deterministic). `riffle ingest` runs it over a stream; the same code computes what a
//! training set would have been served.
//!
//! ```
//! use std::time::Duration;
//! use riffle_core::{AggregationKind, EntityId, FeatureValue, Timestamp};
//! use riffle_window::{AggregationSpec, EngineConfig, Event, WindowEngine};
//!
//! let hour = Duration::from_secs(3600);
//! let specs = vec![
//!     AggregationSpec::new("tx_count_1h", AggregationKind::Count, None, hour),
//!     AggregationSpec::new("tx_sum_1h", AggregationKind::Sum, Some("amount"), hour),
//! ];
//! let mut engine = WindowEngine::new(EngineConfig::new(specs)).unwrap();
//! let at = |ms: i64| Timestamp::from_millis(ms).unwrap();
//! let u42 = EntityId::new("u42").unwrap();
//! let t0 = 1_796_000_000_000;
//! for (i, amount) in [12.5, 7.5].into_iter().enumerate() {
//!     let event = Event::new(u42.clone(), at(t0 + i as i64 * 1_000))
//!         .with("amount", FeatureValue::Float64(amount));
//!     engine.ingest(&event, at(t0 + 5_000)).unwrap();
//! }
//! let now = engine.values(&u42, at(t0 + 5_000));
//! assert_eq!(now, [FeatureValue::Int64(2), FeatureValue::Float64(20.0)]);
//! // Two hours later both events have left the window, with no new event.
//! engine.advance(at(t0 + 2 * 3_600_000));
//! let later = engine.values(&u42, at(t0 + 2 * 3_600_000));
//! assert_eq!(later, [FeatureValue::Int64(0), FeatureValue::Float64(0.0)]);
//! ```
//!
//! # Model
//!
//! An [`Event`] is `(entity, event_time, fields)`. A feature is an [`AggregationSpec`]
//! `{ name, kind, field, window, tile }` with kind `count`, `sum`, `mean`, `min`, `max`,
//! `last` or `distinct_count`.
//!
//! # The window definition (the oracle implements exactly this over raw events)
//!
//! Time is cut into tiles of `tile` milliseconds per spec: `tile(t) = floor(t / tile)`.
//! With `n = window / tile` (the window must be a whole number of tiles), the value of a
//! spec **read at time `t`** aggregates exactly the events whose event time lies in the
//! tiles `[tile(t) - n + 1, tile(t)]`: the last `n` tiles ending with `t`'s own tile. So a
//! window covers between `window - tile` and `window` of real time before `t`, plus the
//! part of `t`'s tile after `t` (events slightly ahead of the reader count).
//!
//! Default tile size ([`default_tile`]): the largest of 1 d, 12 h, 6 h, 3 h, 1 h, 30 min,
//! 15 min, 10 min, 5 min, 1 min, 30 s, 15 s, 10 s, 5 s, 1 s (then 100, 10, 1 ms) that is at
//! most `max(window / 60, 1 s)` and divides the window. So 1 h → 1 min tiles (60), 30 min →
//! 30 s (60), 24 h → 15 min (96), 7 d → 1 h (168), 10 s → 1 s (10). A spec may set its own
//! tile with [`AggregationSpec::with_tile`].
//!
//! Values at read time (what [`WindowEngine::values`] returns, one per spec, in spec order):
//! - `count` → `Int64` (0 for no events). Without a field it counts events; with a field it
//!   counts events whose field is present and not null.
//! - `sum` → `Float64` (0.0 for no events); `mean`, `min`, `max` → `Float64`, or `Null` when
//!   the window holds no value (the caller then serves the feature's training default).
//!   Int64 fields are read as f64. Sums are added per tile in arrival order, then across
//!   tiles in tile order, so a value is bit-for-bit reproducible.
//! - `last` → the field's value from the event with the latest event time in the window;
//!   ties are broken by arrival (the later-arriving event wins). `Null` for no events.
//! - `distinct_count` → `Int64`: exact while every tile in the window holds at most
//!   [`EXACT_DISTINCT_LIMIT`] (64) distinct values (values are kept as 64-bit hashes, so
//!   "exact" up to a hash collision, probability ~n²/2⁶⁵); a tile that overflows becomes a
//!   HyperLogLog sketch of 2¹¹ registers, and a window holding one is an estimate with a
//!   relative standard error of about 1.04/√2048 ≈ 2.3% (less below ~5,000 values, where
//!   linear counting takes over). Int64 3 and Float64 3.0 are different values.
//!
//! Events whose field is missing or null are skipped by that field's specs. A `sum`, `mean`,
//! `min` or `max` field that is not a number (or not finite) rejects the whole event.
//!
//! # Time, lateness and the engine clock
//!
//! Event time, not arrival: an event counts in its tile whatever order events arrive in.
//! The engine's clock moves only through [`WindowEngine::advance`]. [`WindowEngine::ingest`]
//! rejects, with a typed [`Rejected`] for the dead-letter sink:
//! - `FromFuture`: event time more than `max_future` (default 5 min) after the `now` given;
//! - `TooLate`: event time before the start of every spec's window at the engine clock, or
//!   more than `allowed_lateness` (default: no such limit) behind the largest event time
//!   accepted so far — from the event's own input stream with
//!   [`WindowEngine::ingest_in_stream`] (the caller keeps a largest event time per stream,
//!   so a Kafka partition an hour behind another is not judged by the faster one's clock).
//!
//! An accepted event is applied to every spec whose window at the clock still reaches it.
//!
//! # Right at the time served: expiry timers
//!
//! Per entity the engine keeps only tiles (never raw events), pruned once they leave every
//! window. It also knows when the entity's values next change without a new event: when its
//! oldest tile leaves a window, or when a tile ahead of the clock enters one. Those times sit
//! in a `BTreeMap` of timers, so [`WindowEngine::advance`] costs O(entities due), not
//! O(entities), and returns exactly the entities whose values at the new time differ from
//! their values at the previous clock: the pipeline rewrites their rows, and a 1 h count
//! drops to 0 an hour after the last event without any new event. Ingested entities are
//! collected by [`WindowEngine::take_dirty`].
//!
//! # Durable state and exactly-once in effect
//!
//! [`WindowEngine::snapshot_entity`] encodes one entity's tiles in a compact, versioned
//! binary form, and [`Watermarks`] the engine clock and largest event time. A checkpoint is
//! both, stored together with the source offsets; after a crash, [`WindowEngine::resume`] and
//! [`WindowEngine::restore_entity`] rebuild the engine, and replaying the source from the
//! checkpointed offsets reproduces the state exactly: the engine is deterministic (no
//! randomness, no wall clock, stable hashing, arrival order kept per entity in the state).

#![forbid(unsafe_code)]

mod aggregate;
mod distinct;
mod engine;
mod event;
mod hash;
mod hll;
mod snapshot;
mod spec;
mod state;
mod tile;

#[cfg(test)]
mod tests;

pub use distinct::EXACT_DISTINCT_LIMIT;
pub use engine::WindowEngine;
pub use event::{Event, LateCause, Rejected};
pub use hash::stable_hash;
pub use hll::{HLL_PRECISION, HLL_RELATIVE_ERROR};
pub use snapshot::{SnapshotError, Watermarks, SNAPSHOT_VERSION};
pub use spec::{
    default_tile, AggregationKind, AggregationSpec, ConfigError, EngineConfig, SpecError,
    DEFAULT_MAX_FUTURE, MAX_TILES_PER_WINDOW, MAX_WINDOW,
};
