//! Event-time watermarks: what `riffle ingest` publishes after every durable flush, and the
//! one way every reader (`riffle serve`, `riffle lag`, `riffle check`) turns the published
//! records into a source's watermark ([`read_source`]). Layout: `docs/storage-layout.md`.
//!
//! Two records, in two meta hashes of the source:
//!
//! - **Per publisher** ([`WatermarkRecord`], `watermark:<source>`, field `<host>:<pid>`): the
//!   largest event time the worker applied, and when it published. A record is **alive**
//!   while it is republished ([`LIVE_FOR`]); a worker's first publish removes records not
//!   republished for [`PRUNE_AFTER`].
//! - **Per Kafka partition** ([`PartitionMark`], `partitions:<source>`, field
//!   `<topic>:<partition>`): the event time up to which that partition is applied and
//!   durable, written by whichever worker owns it, so the last owner's mark stays until a
//!   new owner moves it on.
//!
//! A source read from Kafka is as far as its **slowest partition**: its watermark is the
//! MIN over the marks of every partition of its topic (the topic and partition count of
//! the newest mark), so a partition nobody processes holds it back however busy the live
//! workers are; a partition never marked makes the watermark incomplete
//! ([`PartitionWatermarks::missing`]). A row written from Kafka names its partition
//! ([`crate::GroupRow::partition`]) and is aged by that partition's mark alone. A source
//! without partition marks (files, HTTP, the generator, an external writer) is as far as its
//! slowest **live** worker: the MIN over alive publisher records, else the last published.

use std::time::Duration;

use riffle_core::Timestamp;
use serde::{Deserialize, Serialize};

use crate::meta::{partitions_name, watermark_name};
use crate::{OnlineStore, StoreError};

/// A publisher record published within this long is alive; an older one is a stopped or
/// dead worker.
pub const LIVE_FOR: Duration = Duration::from_secs(30);

/// A partition mark renewed within this long has a live owner: a worker re-marks every
/// partition it owns after each flush (every `ingest.flush_interval`, 100 ms by default,
/// also when idle), so a mark not renewed for this long means no live worker owns the
/// partition.
pub const OWNER_LIVE_FOR: Duration = Duration::from_secs(10);

/// A publisher record not republished for this long is removed by the next worker that
/// starts publishing, so records of finished runs do not pile up while the key lives on.
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

/// One Kafka partition's watermark, published by the worker that owns it after each
/// durable flush (JSON in the store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionMark {
    pub topic: String,
    pub partition: u32,
    /// How many partitions the topic had when this was published.
    pub partition_count: u32,
    /// Event time (ms since epoch) up to which the partition is applied and durable: the
    /// largest event time applied from it (capped at the publish time), or the publish time
    /// while the partition is drained (every message up to its end applied).
    pub watermark_ms: i64,
    /// When it was published (ms since epoch, the publisher's clock).
    pub published_at_ms: i64,
    /// `<host>:<pid>` of the worker that owned the partition.
    pub publisher: String,
    /// One past the last offset of the partition whose effects are durable (what the worker
    /// commits), when it handled any.
    pub next_offset: Option<i64>,
}

impl PartitionMark {
    /// Published within [`OWNER_LIVE_FOR`] of `now`: a live worker owns the partition. An
    /// older mark is a worker that died, stalled, lost the partition, or cannot reach the
    /// store.
    pub fn is_alive(&self, now: Timestamp) -> bool {
        now.millis() - self.published_at_ms <= OWNER_LIVE_FOR.as_millis() as i64
    }

    pub fn encode(&self) -> Vec<u8> {
        // A struct of plain fields always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}

/// The partition marks of a source's current topic: the topic of the newest mark, with as
/// many slots as it has partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionWatermarks {
    pub topic: String,
    /// One slot per partition (index = partition), `None` where none was ever published.
    pub marks: Vec<Option<PartitionMark>>,
}

impl PartitionWatermarks {
    /// Combines the marks read, `None` when there is none. Marks of another topic than the
    /// newest mark's (the source moved topics) are left out.
    pub fn from_marks(marks: Vec<PartitionMark>) -> Option<Self> {
        let newest = marks.iter().max_by_key(|m| m.published_at_ms)?;
        let topic = newest.topic.clone();
        let current: Vec<PartitionMark> = marks.into_iter().filter(|m| m.topic == topic).collect();
        // Kafka only ever adds partitions: the largest count seen is the topic's.
        let count = current
            .iter()
            .map(|m| m.partition_count.max(m.partition.saturating_add(1)))
            .max()
            .unwrap_or(0);
        let mut slots: Vec<Option<PartitionMark>> = vec![None; count as usize];
        for mark in current {
            if let Some(slot) = slots.get_mut(mark.partition as usize) {
                // One field per partition: a second mark cannot happen, but the newer wins.
                if slot
                    .as_ref()
                    .is_none_or(|s| s.published_at_ms <= mark.published_at_ms)
                {
                    *slot = Some(mark);
                }
            }
        }
        Some(Self {
            topic,
            marks: slots,
        })
    }

    /// The watermark of `partition`, when one was published.
    pub fn of(&self, partition: u32) -> Option<i64> {
        self.marks
            .get(partition as usize)?
            .as_ref()
            .map(|m| m.watermark_ms)
    }

    /// MIN over the partitions that have a mark (`None` when none has).
    pub fn min_ms(&self) -> Option<i64> {
        self.marks.iter().flatten().map(|m| m.watermark_ms).min()
    }

    /// The worker that owns `partition` as far as the marks tell: the publisher of a mark
    /// published within [`OWNER_LIVE_FOR`] of `now` (`None`: no live worker marks it).
    pub fn live_owner(&self, partition: u32, now: Timestamp) -> Option<&str> {
        let mark = self.marks.get(partition as usize)?.as_ref()?;
        mark.is_alive(now).then_some(mark.publisher.as_str())
    }

    /// Partitions of the topic no worker ever published a mark for.
    pub fn missing(&self) -> Vec<u32> {
        (0u32..)
            .zip(&self.marks)
            .filter(|(_, m)| m.is_none())
            .map(|(p, _)| p)
            .collect()
    }
}

/// A source's watermark as readers see it, from all its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceWatermark {
    /// MIN over the alive publisher records: the source is processed up to here by every
    /// live worker. `None` when no record is alive (no ingest running).
    pub live_ms: Option<i64>,
    /// The newest watermark ever published among the publisher records still stored.
    pub last_ms: Option<i64>,
    /// Every publisher record read (alive or not), unreadable ones skipped.
    pub records: Vec<WatermarkRecord>,
    /// How many of them are alive.
    pub alive: usize,
    /// The per-partition marks of a Kafka source (`None` for other inputs).
    pub partitions: Option<PartitionWatermarks>,
}

impl SourceWatermark {
    /// Combines the records of one source seen at `now`.
    pub fn from_records(
        records: Vec<WatermarkRecord>,
        marks: Vec<PartitionMark>,
        now: Timestamp,
    ) -> Self {
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
            partitions: PartitionWatermarks::from_marks(marks),
        }
    }

    /// How far the source is processed now, to judge its lag by: with partition marks, the
    /// MIN over the topic's partitions; otherwise the MIN over live workers (`None` when
    /// none is live).
    pub fn current_ms(&self) -> Option<i64> {
        match &self.partitions {
            Some(p) => p.min_ms(),
            None => self.live_ms,
        }
    }

    /// The source's watermark, to age values from: [`SourceWatermark::current_ms`], or with
    /// no live worker (and no partition marks) the last published.
    pub fn basis_ms(&self) -> Option<i64> {
        match &self.partitions {
            Some(p) => p.min_ms(),
            None => self.live_ms.or(self.last_ms),
        }
    }

    /// The watermark a row from `partition` is aged by: that partition's mark when it has
    /// one, else the source's ([`SourceWatermark::basis_ms`]).
    pub fn for_partition_ms(&self, partition: Option<u32>) -> Option<i64> {
        partition
            .zip(self.partitions.as_ref())
            .and_then(|(p, marks)| marks.of(p))
            .or_else(|| self.basis_ms())
    }
}

/// Reads every watermark record of `source` (two `HGETALL`s) and combines them as of `now`.
/// Unreadable records are skipped. Runs under the store's write timeout: never on a request.
pub async fn read_source(
    store: &OnlineStore,
    source: &str,
    now: Timestamp,
) -> Result<SourceWatermark, StoreError> {
    let records = store
        .get_meta(&watermark_name(source))
        .await?
        .iter()
        .filter_map(|(_, bytes)| WatermarkRecord::decode(bytes))
        .collect();
    let marks = store
        .get_meta(&partitions_name(source))
        .await?
        .iter()
        .filter_map(|(_, bytes)| PartitionMark::decode(bytes))
        .collect();
    Ok(SourceWatermark::from_records(records, marks, now))
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

    fn mark(topic: &str, partition: u32, count: u32, wm: i64, at: i64) -> PartitionMark {
        PartitionMark {
            topic: topic.into(),
            partition,
            partition_count: count,
            watermark_ms: wm,
            published_at_ms: at,
            publisher: "h:1".into(),
            next_offset: Some(10),
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
            Vec::new(),
            now,
        );
        assert_eq!(w.live_ms, Some(n - 5_000));
        assert_eq!(w.alive, 2);
        assert_eq!(w.last_ms, Some(n - 2_000));
        assert_eq!(w.basis_ms(), Some(n - 5_000));
        assert_eq!(w.current_ms(), Some(n - 5_000));
        let dead =
            SourceWatermark::from_records(vec![rec(n - 9_000, n - 60_000, "c")], Vec::new(), now);
        assert_eq!((dead.live_ms, dead.basis_ms()), (None, Some(n - 9_000)));
        assert_eq!(dead.current_ms(), None);
        let r = rec(1, 2, "h:1");
        assert_eq!(WatermarkRecord::decode(&r.encode()), Some(r));
    }

    /// Live workers publishing fresh records do not hide a partition nobody processes: the
    /// source is as far as its slowest partition, and each partition's rows as far as it.
    #[test]
    fn a_stalled_partition_holds_the_source_back_but_only_its_own_rows() {
        let now = Timestamp::from_millis(1_000_000_000).unwrap();
        let n = now.millis();
        let w = SourceWatermark::from_records(
            vec![rec(n - 1_000, n - 100, "live")],
            vec![
                mark("tx", 0, 4, n - 600_000, n - 600_000),
                mark("tx", 1, 4, n - 1_000, n - 100),
                mark("tx", 2, 4, n - 2_000, n - 100),
                // Another topic the source once read: left out.
                mark("old", 3, 8, n - 9_000_000, n - 9_000_000),
            ],
            now,
        );
        let p = w.partitions.as_ref().unwrap();
        assert_eq!((p.topic.as_str(), p.marks.len()), ("tx", 4));
        assert_eq!(p.missing(), vec![3]);
        // Partition 0's mark was published 10 minutes ago: no live worker owns it.
        assert_eq!(p.live_owner(0, now), None);
        assert_eq!(p.live_owner(1, now), Some("h:1"));
        assert_eq!(p.live_owner(3, now), None);
        assert_eq!(w.basis_ms(), Some(n - 600_000));
        assert_eq!(w.current_ms(), Some(n - 600_000));
        assert_eq!(w.for_partition_ms(Some(0)), Some(n - 600_000));
        assert_eq!(w.for_partition_ms(Some(1)), Some(n - 1_000));
        // No mark for the partition, or a row without one: the source's watermark.
        assert_eq!(w.for_partition_ms(Some(3)), Some(n - 600_000));
        assert_eq!(w.for_partition_ms(None), Some(n - 600_000));
        let m = mark("tx", 1, 4, 5, 6);
        assert_eq!(PartitionMark::decode(&m.encode()), Some(m));
    }
}
