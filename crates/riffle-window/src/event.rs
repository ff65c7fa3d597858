//! What goes in ([`Event`]) and why an event can be turned away ([`Rejected`]).

use std::fmt;
use std::sync::Arc;

use riffle_core::{EntityId, FeatureValue, Timestamp};

/// One event for one entity.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub entity: EntityId,
    pub time: Timestamp,
    /// Field values by name. A few fields per event, so a linear scan beats a map. Names
    /// are shared (`Arc<str>`): the pipeline hands every event the same names without a
    /// copy per event.
    pub fields: Vec<(Arc<str>, FeatureValue)>,
}

impl Event {
    pub fn new(entity: EntityId, time: Timestamp) -> Self {
        Self {
            entity,
            time,
            fields: Vec::new(),
        }
    }

    pub fn with(mut self, field: impl Into<Arc<str>>, value: FeatureValue) -> Self {
        self.fields.push((field.into(), value));
        self
    }

    /// The value of `name`, if the event carries it (the first one, if repeated).
    pub fn field(&self, name: &str) -> Option<&FeatureValue> {
        self.fields
            .iter()
            .find(|(n, _)| **n == *name)
            .map(|(_, v)| v)
    }
}

/// Which limit a too-late event broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LateCause {
    /// Older than the start of every window at the engine clock: it could change no value.
    OutsideEveryWindow,
    /// More than `allowed_lateness` behind the largest event time accepted so far.
    BeyondAllowedLateness,
}

impl fmt::Display for LateCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LateCause::OutsideEveryWindow => "outside every window",
            LateCause::BeyondAllowedLateness => "beyond the allowed lateness",
        })
    }
}

/// Why the engine turned an event away; the event goes to the dead-letter sink. None of
/// these is worth retrying: the same event would be rejected again.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejected {
    #[error("event at {event_time} is too late ({cause}): the oldest event time accepted now is {limit}")]
    TooLate {
        event_time: Timestamp,
        limit: Timestamp,
        cause: LateCause,
    },
    #[error("event at {event_time} is from the future: later than {limit} ({max_future_ms} ms after now)")]
    FromFuture {
        event_time: Timestamp,
        limit: Timestamp,
        max_future_ms: u64,
    },
    #[error("field {field:?} of feature {feature:?} is {got}, not a number")]
    NotNumeric {
        feature: String,
        field: String,
        got: &'static str,
    },
    #[error("field {field:?} of feature {feature:?} is not a finite number")]
    NotFinite { feature: String, field: String },
}

impl Rejected {
    /// A short, low-cardinality name for metrics labels and dead-letter records.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejected::TooLate { .. } => "too_late",
            Rejected::FromFuture { .. } => "from_future",
            Rejected::NotNumeric { .. } => "not_numeric",
            Rejected::NotFinite { .. } => "not_finite",
        }
    }
}
