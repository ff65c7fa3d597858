//! Riffle's shared vocabulary: the types every other crate speaks, and nothing else.
//!
//! - [`FeatureType`] and [`FeatureValue`]: what a feature holds, typed.
//! - [`ValueStatus`] and [`Degradation`]: how trustworthy a served value is, per value and
//!   per response (the README's "Statuses and degradation" describes them).
//! - [`Timestamp`]: milliseconds since the Unix epoch, parsed from RFC 3339 or epoch millis.
//! - [`EntityId`]: a validated entity identifier.
//! - [`AggregationKind`]: what a window feature computes (`count`, `sum`, …).
//!
//! This crate does no I/O and knows nothing of tokio, HTTP or Redis.
#![forbid(unsafe_code)]

mod aggregation;
mod entity;
mod status;
mod time;
mod value;

pub use aggregation::AggregationKind;
pub use entity::{EntityId, EntityIdError, MAX_ENTITY_ID_LEN};
pub use status::{Degradation, ValueStatus};
pub use time::{Timestamp, TimestampError};
pub use value::{FeatureType, FeatureValue, ValueError, MAX_STRING_LEN};
