//! What a run of the pipeline is given by its caller besides the store and the input:
//! [`PipelineOptions`] (the source, its stream, the dead-letter sink, when to flush) and
//! [`Control`] (when to stop, and who hears about durable Kafka offsets).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::dead_letter::DeadLetterTarget;

/// What one run needs besides the store and the input.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// Index into `registry.sources`.
    pub source: usize,
    /// The input's stream id, for the summary (records carry their own).
    pub stream_id: u64,
    /// The Kafka topic when the input is one: the streams this process owns are then the
    /// partitions each [`Feed::Assigned`](crate::feed::Feed::Assigned) names. `None`: the
    /// input is the one stream `stream_id`, owned from the start (its pending expiries are
    /// loaded then).
    pub kafka_topic: Option<String>,
    pub dead_letter: DeadLetterTarget,
    pub flush_interval: Duration,
    pub flush_max_events: usize,
}

/// Told `(partition, next_offset)` pairs once they are durable.
pub type OnDurable = Box<dyn FnMut(&[(i32, i64)]) + Send>;

/// How a continuous run is steered from outside: when to stop, and who hears about durable
/// Kafka offsets.
#[derive(Default)]
pub struct Control {
    /// Completes when the run should stop (Ctrl-C/SIGTERM): the pipeline flushes and returns.
    pub stop: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    /// Called after every flush with `(partition, next_offset)` for each Kafka partition
    /// whose records (applied, skipped as already applied, or dead-lettered) are now durable
    /// (none when it wrote nothing of Kafka's: the flush itself is news, the pipeline lives).
    pub on_durable: Option<OnDurable>,
}
