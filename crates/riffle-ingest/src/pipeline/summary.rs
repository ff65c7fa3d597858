//! The account of an ingest run: events read, applied, skipped as already applied,
//! dead-lettered by reason, rows written; updated after every flush for progress lines.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

/// Everything an ingest run did so far.
/// `events_read = applied + already_applied + dead_lettered_total()`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IngestSummary {
    pub source: String,
    /// The input's stream id (see [`crate::feed`]).
    pub stream_id: u64,
    /// Non-blank input lines.
    pub events_read: u64,
    /// Events the window engine took.
    pub applied: u64,
    /// Events an earlier run applied already (their entity's state holds the position).
    pub already_applied: u64,
    /// Dead-lettered events per reason (`undecodable`, `schema_mismatch`, `too_late`, ...).
    pub dead_lettered: BTreeMap<&'static str, u64>,
    /// Group rows written, and entities whose rows and state were written.
    pub rows_written: u64,
    pub entities_written: u64,
    /// Entities whose state was loaded from the store.
    pub entities_loaded: u64,
    pub flushes: u64,
    pub dead_letter_path: String,
    #[serde(rename = "elapsed_ms", serialize_with = "millis")]
    pub elapsed: Duration,
    /// Set once every event is durable.
    pub complete: bool,
    /// Event-time watermark after the last flush: the largest event time applied, capped
    /// at now (epoch milliseconds).
    pub watermark_ms: Option<i64>,
    /// Per input stream (see [`crate::feed`]), the largest event time applied (epoch
    /// milliseconds): with Kafka, one stream per partition.
    #[serde(skip)]
    pub stream_watermarks: BTreeMap<u64, i64>,
    /// How long the last flush took.
    #[serde(skip)]
    pub last_flush: Duration,
    /// Feed items (chunks of records) queued between the input and the pipeline, sampled
    /// after the last flush.
    #[serde(skip)]
    pub queued: usize,
    /// Where the pipeline loop's time went: what limits the run.
    #[serde(rename = "loop_ms")]
    pub loop_time: LoopTime,
}

/// Where the time of the pipeline loop (one task, on one thread) went. Its phases do not
/// overlap, so their sum is about the run's elapsed time, and the largest names the limit:
/// the input, the pipeline's own CPU, or the store. (Measured this way, a Kafka run that
/// waited for input a third of its time showed librdkafka's fetch back-off; see
/// `crate::feed::kafka::source::FETCH_QUEUE_BACKOFF`.)
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LoopTime {
    /// Waiting for records with nothing to do: the input (file, broker, generator's pace,
    /// HTTP clients) is the limit.
    #[serde(serialize_with = "millis")]
    pub waiting_for_input: Duration,
    /// Decoding events and applying them to the windows: the pipeline's own CPU.
    #[serde(serialize_with = "millis")]
    pub applying: Duration,
    /// Reading the stored state of entities first seen (one batched read per 1,000).
    #[serde(serialize_with = "millis")]
    pub loading_state: Duration,
    /// Building flushes: every written entity's windows read, rows and state encoded.
    #[serde(serialize_with = "millis")]
    pub preparing_flushes: Duration,
    /// Waiting for the previous flush's write to land before the next can start: the store
    /// is the limit.
    #[serde(serialize_with = "millis")]
    pub waiting_for_store: Duration,
}

impl LoopTime {
    /// Each phase with its name (the `phase` label of `riffle_ingest_loop_seconds_total`).
    pub fn phases(&self) -> [(&'static str, Duration); 5] {
        [
            ("waiting_for_input", self.waiting_for_input),
            ("applying", self.applying),
            ("loading_state", self.loading_state),
            ("preparing_flushes", self.preparing_flushes),
            ("waiting_for_store", self.waiting_for_store),
        ]
    }
}

impl IngestSummary {
    pub fn dead_lettered_total(&self) -> u64 {
        self.dead_lettered.values().sum()
    }

    pub fn events_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.events_read as f64 / secs
        } else {
            0.0
        }
    }
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}
