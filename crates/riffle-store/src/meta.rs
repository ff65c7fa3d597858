//! Pipeline metadata beside the rows: the reserved keys `<project>:~meta:<name>` and the
//! watermark record `riffle ingest` publishes there (documented in `docs/storage-layout.md`).
//!
//! A meta key is a hash with one field per **publisher** (`<host>:<pid>` of an ingest
//! worker), so several workers of one source publish side by side and a reader gets them all
//! in one call (`HGETALL`). The key's TTL ([`META_TTL`]) is refreshed by every publish and
//! only cleans up after all publishers are gone; whether a record is **alive** is judged
//! from its own `published_at_ms` ([`LIVE_FOR`]), so a worker that died stops holding the
//! source's watermark back [`LIVE_FOR`] after its last publish. A worker's first publish
//! removes records not republished for [`PRUNE_AFTER`] (finished runs), so the hash stays
//! small.

use std::time::Duration;

use riffle_core::Timestamp;
use serde::{Deserialize, Serialize};

/// Keys of pipeline metadata: `<project>:~meta:<name>`. The `~` keeps them apart from
/// entity keys (`<project>:{…}`).
pub fn meta_key(project: &str, name: &str) -> String {
    format!("{project}:~meta:{name}")
}

/// The meta name of a source's watermark records: `watermark:<source>`.
pub fn watermark_name(source: &str) -> String {
    format!("watermark:{source}")
}

/// The meta name of the pending-expiry index of one input stream of a source:
/// `timers:<source>:<stream>` (stream id as 16 hex digits). Field: an entity id; value: the
/// time (ms since epoch, decimal ASCII) of that entity's next window change without a new
/// event (a hint: never later than the real one). `riffle ingest` loads these entities when
/// it takes the stream over (start, Kafka assignment), so their windows expire on time.
pub fn timers_name(source: &str, stream: u64) -> String {
    format!("timers:{source}:{stream:016x}")
}

/// The meta name of a source's per-stream progress: `streams:<source>`. Field: a stream id
/// (16 hex digits); value: the largest event time applied from that stream (ms since epoch,
/// decimal ASCII), so a restarted run judges `allowed_lateness` as a clean run did.
pub fn streams_name(source: &str) -> String {
    format!("streams:{source}")
}

/// A stream id as it appears in meta names and fields: 16 hex digits.
pub fn stream_member(stream: u64) -> String {
    format!("{stream:016x}")
}

/// TTL of a meta key, refreshed by every publish: the last watermark stays readable this
/// long after ingest stopped (so serve can still age values from it).
pub const META_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// A record published within this long is alive; an older one is a stopped or dead worker.
pub const LIVE_FOR: Duration = Duration::from_secs(30);

/// A record not republished for this long is removed by the next worker that starts
/// publishing, so records of finished runs do not pile up while the key lives on.
pub const PRUNE_AFTER: Duration = Duration::from_secs(24 * 3600);

/// What one ingest worker publishes after every durable flush (JSON in the store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatermarkRecord {
    /// Event time (ms since epoch) up to which this worker's input is processed and durable.
    pub watermark_ms: i64,
    /// When it was published (ms since epoch, the publisher's clock).
    pub published_at_ms: i64,
    /// Events applied by this worker since it started.
    pub events_applied_total: u64,
    /// `<host>:<pid>` of the publisher.
    pub publisher: String,
}

impl WatermarkRecord {
    pub fn encode(&self) -> Vec<u8> {
        // A struct of plain fields always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }

    /// Not republished for [`PRUNE_AFTER`] before `now`.
    pub fn is_prunable(&self, now: Timestamp) -> bool {
        now.millis() - self.published_at_ms > PRUNE_AFTER.as_millis() as i64
    }

    /// Published within [`LIVE_FOR`] of `now`.
    pub fn is_alive(&self, now: Timestamp) -> bool {
        now.millis() - self.published_at_ms <= LIVE_FOR.as_millis() as i64
    }
}

/// A source's watermark as readers see it, from all its publishers' records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceWatermark {
    /// MIN over the alive records: the source is processed up to here by every live worker.
    /// `None` when no record is alive (no ingest running).
    pub live_ms: Option<i64>,
    /// The newest watermark ever published among the records still stored (alive or not).
    pub last_ms: Option<i64>,
    /// Every record read (alive or not), unreadable ones skipped.
    pub records: Vec<WatermarkRecord>,
    /// How many of them are alive.
    pub alive: usize,
}

impl SourceWatermark {
    /// Combines the records of one source seen at `now`.
    pub fn from_records(records: Vec<WatermarkRecord>, now: Timestamp) -> Self {
        let live: Vec<i64> = records
            .iter()
            .filter(|r| r.is_alive(now))
            .map(|r| r.watermark_ms)
            .collect();
        Self {
            live_ms: live.iter().copied().min(),
            last_ms: records.iter().map(|r| r.watermark_ms).max(),
            alive: live.len(),
            records,
        }
    }

    /// The watermark to age values from: the live one, else the last published one.
    pub fn basis_ms(&self) -> Option<i64> {
        self.live_ms.or(self.last_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(wm: i64, at: i64, who: &str) -> WatermarkRecord {
        WatermarkRecord {
            watermark_ms: wm,
            published_at_ms: at,
            events_applied_total: 1,
            publisher: who.into(),
        }
    }

    #[test]
    fn min_over_live_records_and_dead_ones_do_not_hold_it_back() {
        let now = Timestamp::from_millis(1_000_000_000).unwrap();
        let n = now.millis();
        let w = SourceWatermark::from_records(
            vec![
                rec(n - 5_000, n - 100, "a"),
                rec(n - 2_000, n - 100, "b"),
                // Dead for a minute, far behind: ignored for the live watermark.
                rec(n - 3_600_000, n - 60_000, "c"),
            ],
            now,
        );
        assert_eq!(w.live_ms, Some(n - 5_000));
        assert_eq!(w.alive, 2);
        assert_eq!(w.last_ms, Some(n - 2_000));
        let dead = SourceWatermark::from_records(vec![rec(n - 9_000, n - 60_000, "c")], now);
        assert_eq!((dead.live_ms, dead.basis_ms()), (None, Some(n - 9_000)));
        let r = rec(1, 2, "h:1");
        assert_eq!(WatermarkRecord::decode(&r.encode()), Some(r));
        assert_eq!(
            meta_key("fraud", "watermark:tx"),
            "fraud:~meta:watermark:tx"
        );
    }
}
