//! The offline half: training sets computed by the same code that serves.
//!
//! `riffle training-set` answers, for every row of a spine (an entity's join key, a time,
//! labels passed through), *what `riffle serve` would have answered at that instant had
//! ingest been caught up*: every event with event time ≤ t applied and no later one, every
//! batch row with `event_timestamp` ≤ t loaded. Stream groups are recomputed by replaying
//! the source's history through the window engine ingest runs ([`replay`]); groups without
//! a source by an as-of join on their row history ([`as_of`]). Both then go through the
//! rules serve applies to what it reads, owned by the registry (TTL, staleness, training
//! defaults, statuses), so training and serving cannot disagree on what a value is.
//!
//! History is read through DataFusion and `object_store` ([`location`], [`read`]): a path,
//! folder or glob, or a `file://`, `s3://` or `gs://` URL, of Parquet, NDJSON or CSV.
//!
//! [`archive`] hands the same kinds of history to `riffle ingest --from` as its input, to
//! backfill from an archive before the stream takes over.
//!
//! [`validate`] is the consistency validator: what serve logged, recomputed at its instant.
//!
//! Modules, in the order a build meets them: [`request`] (which features, which columns),
//! [`spine`], [`events`] and [`as_of`] (history read and sorted), [`replay`], [`point`]
//! (a group's row at an instant), [`output`] (typed Parquet), and [`training_set`], which
//! runs them.

#![forbid(unsafe_code)]

pub mod archive;
pub mod as_of;
pub mod cells;
pub mod cores;
pub mod error;
pub mod events;
pub mod location;
pub mod ndjson;
pub mod output;
pub mod packed;
pub mod point;
pub mod read;
pub mod replay;
pub mod request;
pub mod spine;
pub mod training_set;
pub mod typed_cells;
pub mod validate;

pub use error::OfflineError;
pub use request::Selection;
pub use spine::Spine;
pub use training_set::{
    answer, build, compute, Answered, FeatureRequest, Progress, Quiet, TrainingSetRequest,
    TrainingSetSummary,
};
