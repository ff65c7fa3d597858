//! The streaming half of the registry: event sources, per-feature aggregations over sliding
//! windows, and how `riffle ingest` batches its work.

use std::time::Duration;

use riffle_core::FeatureType;

/// Where a source's events come from.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceKind {
    /// A Kafka topic read by a consumer group; the entity id is the message key.
    Kafka {
        brokers: String,
        topic: String,
        group_id: String,
    },
    /// NDJSON replayed from a file (backfills, tests).
    File { path: String },
    /// Events `POST`ed to the ingest process.
    Http,
    /// Synthetic events at `rate` per second over `entities` entities (demo, load tests).
    Generator { rate: f64, entities: u64 },
}

impl SourceKind {
    pub fn name(&self) -> &'static str {
        match self {
            SourceKind::Kafka { .. } => "kafka",
            SourceKind::File { .. } => "file",
            SourceKind::Http => "http",
            SourceKind::Generator { .. } => "generator",
        }
    }
}

/// One typed field of a source's events.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceField {
    pub name: String,
    pub ty: FeatureType,
}

/// An event source and its event schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub name: String,
    /// Index into `Registry::entities`.
    pub entity: usize,
    pub kind: SourceKind,
    pub description: String,
    /// Field holding the entity id (defaults to the entity's join key).
    pub key_field: String,
    /// Field holding the event time, RFC 3339 or epoch milliseconds.
    pub time_field: String,
    /// How far behind the newest event time an event may arrive and still count.
    pub allowed_lateness: Duration,
    /// How far ahead of the clock an event time may be before it is refused.
    pub max_future: Duration,
    pub fields: Vec<SourceField>,
    /// Dead-letter sink: `file:PATH` or `kafka:TOPIC` (default: a file beside the store).
    pub dead_letter: Option<String>,
    /// The source's event history (`riffle training-set`): a file, folder or glob of NDJSON
    /// or Parquet, as a path or a `file://`, `s3://` or `gs://` URL; the stream's schema.
    pub offline: Option<String>,
}

impl Source {
    pub fn field(&self, name: &str) -> Option<&SourceField> {
        self.fields.iter().find(|f| f.name == name)
    }
}

pub use riffle_core::AggregationKind;

/// A feature computed from a source: `kind` over `field` in a sliding `window`.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregation {
    pub kind: AggregationKind,
    /// The event field read (`None` for count).
    pub field: Option<String>,
    pub window: Duration,
}

/// How `riffle ingest` batches writes and bounds memory.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestSettings {
    /// Flush at least this often...
    pub flush_interval: Duration,
    /// ...or after this many events, whichever comes first.
    pub flush_max_events: usize,
    /// Events queued between stages; when full, the source pauses (backpressure).
    pub queue_capacity: usize,
    /// Where `riffle ingest` serves `/metrics`, `/health` and HTTP-pushed events.
    pub listen: String,
    /// Lag above which `riffle lag` fails (the lesson's 5 minutes).
    pub lag_threshold: Duration,
    /// How long a Kafka worker's pipeline may take nothing from its consumer before the
    /// worker leaves the consumer group (so others process its partitions); it rejoins once
    /// the pipeline flushes again.
    pub max_stall: Duration,
    /// How long a Kafka worker waits, once it sees partitions of its topic owned by no
    /// member of a settled group, before it rejoins the group to have them reassigned
    /// (zero: never; the partitions are then only reported).
    pub rejoin_after: Duration,
    /// `riffle ingest`'s listener: TLS and limits.
    pub listener: crate::settings::ListenerSettings,
}

impl Default for IngestSettings {
    fn default() -> Self {
        Self {
            flush_interval: Duration::from_millis(100),
            flush_max_events: 1000,
            queue_capacity: 10_000,
            listen: "127.0.0.1:6567".into(),
            lag_threshold: Duration::from_secs(300),
            max_stall: Duration::from_secs(60),
            rejoin_after: Duration::from_secs(15),
            listener: crate::settings::ListenerSettings::default(),
        }
    }
}
