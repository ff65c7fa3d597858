//! Progress per input stream (a Kafka partition, a file): how far each one is applied,
//! which ones this process owns, which are drained, and what that makes of the watermarks
//! a flush publishes.
//!
//! - **Lateness.** `allowed_lateness` is judged per stream, against the largest event time
//!   applied from the event's own stream ([`StreamProgress::latest`]), so a partition read
//!   an hour behind another loses nothing. Those times are persisted after the rows of each
//!   flush (meta `streams:<source>`, [`StreamProgress::changes`]) and read back on a
//!   stream's first record or when the stream is taken over, so a restarted run judges as a
//!   clean run did.
//! - **Watermarks.** Each flush publishes ([`StreamProgress::publication`]) the mark of
//!   every Kafka partition this process owns: the largest event time applied from it
//!   (capped at now), or now while it is drained ([`Feed::CaughtUp`](crate::feed::Feed::CaughtUp)
//!   named it and no record of it came since), with the next offset durable; and the
//!   process's own record: the largest event time applied, or now when every owned stream
//!   is drained.
//! - **Rows.** A row written from Kafka names the partition of its entity's latest event
//!   ([`StreamProgress::partition_of`]), so `riffle serve` ages it by that partition.
//! - **Offsets.** The highest offset handled per partition since the last flush, which the
//!   flush makes durable ([`StreamProgress::take_handled`]) and its marks name.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use riffle_core::Timestamp;
use riffle_store::meta::{stream_member, streams_name};
use riffle_store::watermark::PartitionMark;
use riffle_store::{MetaChange, OnlineStore};

use super::error::PipelineError;
use super::store_retry::retrying;
use super::watermark::{publisher_id, Publication};
use crate::feed::item::Record;
use crate::feed::stream_id::kafka_stream_id;

/// The Kafka topic a process reads and the partitions it owns now.
struct Topic {
    name: String,
    /// Partitions the topic has, as of the last assignment (0: unknown).
    partition_count: u32,
    /// Partition of every stream of the topic (all of its partitions once the count is known).
    partitions: HashMap<u64, u32>,
    /// Owned now (the last assignment; none after a revocation), with their streams.
    owned: Vec<(u32, u64)>,
    /// Per partition, one past the last offset handled by the flushes prepared so far (each
    /// published only once its flush is durable), for the marks.
    flushed: BTreeMap<u32, i64>,
}

/// See the module docs.
pub(super) struct StreamProgress {
    source: String,
    /// Per stream, the largest event time applied.
    latest: HashMap<u64, Timestamp>,
    /// Streams whose persisted largest event time was read.
    read: HashSet<u64>,
    /// Streams whose largest event time moved since the last flush.
    changed: BTreeSet<u64>,
    /// Streams the input said are drained, with no record since.
    drained: HashSet<u64>,
    /// The one stream of a file, stdin, HTTP or generator input (owned from the start).
    single: Option<u64>,
    topic: Option<Topic>,
    /// Per Kafka partition, the highest offset handled since the last flush.
    handled: BTreeMap<i32, u64>,
    /// Largest event time applied this run (capped at ingestion time).
    watermark: Option<Timestamp>,
}

impl StreamProgress {
    /// Progress of `source` read from `topic` (Kafka: streams owned as assigned), or from
    /// the one stream `single` owned from the start.
    pub(super) fn new(source: &str, topic: Option<&str>, single: u64) -> Self {
        Self {
            source: source.to_owned(),
            latest: HashMap::new(),
            read: HashSet::new(),
            changed: BTreeSet::new(),
            drained: HashSet::new(),
            single: topic.is_none().then_some(single),
            topic: topic.map(|name| Topic {
                name: name.to_owned(),
                partition_count: 0,
                partitions: HashMap::new(),
                owned: Vec::new(),
                flushed: BTreeMap::new(),
            }),
            handled: BTreeMap::new(),
            watermark: None,
        }
    }

    /// The largest event time applied from `stream`, which its events' lateness is judged
    /// against (`None`: its first event).
    pub(super) fn latest(&self, stream: u64) -> Option<Timestamp> {
        self.latest.get(&stream).copied()
    }

    /// Per stream, the largest event time applied (ms), for the summary.
    pub(super) fn latest_ms(&self) -> BTreeMap<u64, i64> {
        self.latest.iter().map(|(s, t)| (*s, t.millis())).collect()
    }

    /// The largest event time applied this run.
    pub(super) fn watermark(&self) -> Option<Timestamp> {
        self.watermark
    }

    /// Whether `stream`'s persisted largest event time was read yet.
    pub(super) fn is_read(&self, stream: u64) -> bool {
        self.read.contains(&stream)
    }

    /// Records came (in the feed's order, before they are applied): their streams are not
    /// drained any more.
    pub(super) fn arrived(&mut self, records: &[Record]) {
        if self.drained.is_empty() {
            return;
        }
        for r in records {
            self.drained.remove(&r.stream);
        }
    }

    /// A record at `offset` of Kafka `partition` was handled (applied, skipped as already
    /// applied, or dead-lettered): durable once the next flush is.
    pub(super) fn handled(&mut self, partition: Option<i32>, offset: u64) {
        if let Some(p) = partition {
            let high = self.handled.entry(p).or_insert(offset);
            *high = (*high).max(offset);
        }
    }

    /// An event at `time` from `stream` was applied (`now`: ingestion time).
    pub(super) fn applied(&mut self, stream: u64, time: Timestamp, now: Timestamp) {
        self.latest
            .entry(stream)
            .and_modify(|m| *m = (*m).max(time))
            .or_insert(time);
        self.changed.insert(stream);
        let t = time.min(now);
        self.watermark = Some(self.watermark.map_or(t, |w| w.max(t)));
    }

    /// The input says these streams are drained.
    pub(super) fn caught_up(&mut self, streams: &[u64]) {
        self.drained.extend(streams);
    }

    /// A Kafka assignment: these are now every partition this process owns, of a topic
    /// with `partition_count` partitions (when known). Returns their streams.
    pub(super) fn assigned(
        &mut self,
        partitions: &[i32],
        partition_count: Option<u32>,
    ) -> Vec<u64> {
        let Some(topic) = &mut self.topic else {
            tracing::warn!("a Kafka assignment without a Kafka topic: ignored");
            return Vec::new();
        };
        if let Some(count) = partition_count {
            topic.partition_count = count;
            // Every partition's stream, so an entity whose latest event came from a
            // partition owned elsewhere still has its rows name it.
            for p in 0..count.min(i32::MAX as u32) {
                topic
                    .partitions
                    .insert(kafka_stream_id(&topic.name, p as i32), p);
            }
        }
        topic.owned = partitions
            .iter()
            .filter_map(|&p| u32::try_from(p).ok())
            .map(|p| (p, kafka_stream_id(&topic.name, p as i32)))
            .collect();
        for &(p, stream) in &topic.owned {
            topic.partitions.insert(stream, p);
        }
        topic.owned.iter().map(|&(_, s)| s).collect()
    }

    /// Partitions were revoked (after the flush that made everything held durable): forget
    /// what this process knew of its streams; they are read again when next owned or met.
    pub(super) fn revoked(&mut self) {
        self.latest.clear();
        self.read.clear();
        self.drained.clear();
        if let Some(topic) = &mut self.topic {
            topic.owned.clear();
        }
    }

    /// The Kafka partition of `stream`, when it is one of the topic's.
    pub(super) fn partition_of(&self, stream: u64) -> Option<u32> {
        self.topic.as_ref()?.partitions.get(&stream).copied()
    }

    /// `(partition, next_offset)` of every Kafka partition handled since the last call:
    /// what the flush being prepared makes durable, and what the marks it publishes say.
    pub(super) fn take_handled(&mut self) -> Vec<(i32, i64)> {
        let offsets: Vec<(i32, i64)> = std::mem::take(&mut self.handled)
            .into_iter()
            .map(|(p, o)| (p, i64::try_from(o).unwrap_or(i64::MAX - 1) + 1))
            .collect();
        if let Some(topic) = &mut self.topic {
            for &(p, next) in &offsets {
                if let Ok(p) = u32::try_from(p) {
                    let e = topic.flushed.entry(p).or_insert(next);
                    *e = (*e).max(next);
                }
            }
        }
        offsets
    }

    /// Reads the persisted largest event time of the streams not read yet (one call).
    pub(super) async fn read_latest(
        &mut self,
        store: &OnlineStore,
        streams: &[u64],
    ) -> Result<(), PipelineError> {
        let new: Vec<u64> = streams
            .iter()
            .copied()
            .filter(|s| !self.read.contains(s))
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        let name = streams_name(&self.source);
        let stored: HashMap<String, Vec<u8>> = retrying("stream read", || store.get_meta(&name))
            .await?
            .into_iter()
            .collect();
        for stream in new {
            self.read.insert(stream);
            let latest = stored
                .get(&stream_member(stream))
                .and_then(|b| std::str::from_utf8(b).ok()?.parse::<u64>().ok())
                .and_then(|ms| Timestamp::from_millis(ms as i64).ok());
            if let Some(t) = latest {
                let m = self.latest.entry(stream).or_insert(t);
                *m = (*m).max(t);
            }
        }
        Ok(())
    }

    /// The streams' largest event times that moved since the last call, as meta changes
    /// (written after the rows of the flush).
    pub(super) fn changes(&mut self) -> Vec<MetaChange> {
        let name = streams_name(&self.source);
        std::mem::take(&mut self.changed)
            .into_iter()
            .filter_map(|stream| {
                let t = self.latest.get(&stream)?;
                Some(MetaChange {
                    name: name.clone(),
                    member: stream_member(stream),
                    bytes: Some(t.millis().to_string().into_bytes()),
                })
            })
            .collect()
    }

    /// Whether every stream this process owns is drained (nothing owned: no).
    fn all_drained(&self) -> bool {
        let mut owned = self.owned_streams().peekable();
        owned.peek().is_some() && owned.all(|s| self.drained.contains(&s))
    }

    fn owned_streams(&self) -> impl Iterator<Item = u64> + '_ {
        let kafka = self
            .topic
            .iter()
            .flat_map(|t| t.owned.iter().map(|&(_, s)| s));
        self.single.into_iter().chain(kafka)
    }

    /// The mark of a stream at `now`: now while drained, else its largest event time
    /// applied (capped at now); `None` when neither.
    fn mark(&self, stream: u64, now: Timestamp) -> Option<Timestamp> {
        if self.drained.contains(&stream) {
            Some(now)
        } else {
            self.latest.get(&stream).map(|t| (*t).min(now))
        }
    }

    /// What the flush being prepared at `now` publishes once durable (see the module docs):
    /// `applied` is the run's total of applied events.
    pub(super) fn publication(&self, now: Timestamp, applied: u64) -> Publication {
        let watermark = if self.all_drained() {
            Some(now)
        } else {
            self.watermark
        };
        let partitions = self
            .topic
            .iter()
            .flat_map(|topic| {
                topic.owned.iter().filter_map(move |&(partition, stream)| {
                    let mark = self.mark(stream, now)?;
                    Some(PartitionMark {
                        topic: topic.name.clone(),
                        partition,
                        partition_count: topic.partition_count,
                        watermark_ms: mark.millis(),
                        published_at_ms: now.millis(),
                        publisher: publisher_id().to_owned(),
                        next_offset: topic.flushed.get(&partition).copied(),
                    })
                })
            })
            .collect();
        Publication {
            source: self.source.clone(),
            watermark,
            applied,
            partitions,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms).unwrap()
    }

    fn record(stream: u64) -> Record {
        Record {
            stream,
            offset: 0,
            partition: None,
            payload: Vec::new(),
        }
    }

    /// Each owned partition is marked by its own progress: drained ones at now, the others
    /// at their largest event time; revoked ones no more.
    #[test]
    fn marks_follow_each_owned_partition() {
        let mut p = StreamProgress::new("tx", Some("t"), 0);
        let streams = p.assigned(&[0, 1, 2], Some(4));
        assert_eq!(streams.len(), 3);
        let now = at(1_000_000);
        p.handled(Some(0), 7);
        p.applied(streams[0], at(900_000), now);
        p.handled(Some(1), 3);
        p.applied(streams[1], at(990_000), now);
        p.caught_up(&[streams[2]]);
        assert_eq!(p.take_handled(), [(0, 8), (1, 4)]);
        let publication = p.publication(now, 2);
        let marks: Vec<(u32, i64, Option<i64>)> = publication
            .partitions
            .iter()
            .map(|m| (m.partition, m.watermark_ms, m.next_offset))
            .collect();
        assert_eq!(
            marks,
            vec![
                (0, 900_000, Some(8)),
                (1, 990_000, Some(4)),
                (2, 1_000_000, None)
            ]
        );
        assert!(publication
            .partitions
            .iter()
            .all(|m| m.partition_count == 4));
        // Not every owned stream is drained: the process's record is its largest event time.
        assert_eq!(publication.watermark, Some(at(990_000)));
        assert_eq!(p.partition_of(streams[1]), Some(1));
        // A record of a drained partition: no longer drained.
        p.arrived(&[record(streams[2])]);
        assert_eq!(p.publication(now, 2).partitions.len(), 2);
        p.caught_up(&streams);
        assert_eq!(p.publication(now, 2).watermark, Some(now));
        p.revoked();
        let after = p.publication(now, 2);
        assert!(after.partitions.is_empty());
        assert_eq!(after.watermark, Some(at(990_000)));
    }

    #[test]
    fn a_single_stream_is_owned_from_the_start() {
        let mut p = StreamProgress::new("tx", None, 42);
        assert_eq!(p.publication(at(5), 0).watermark, None);
        p.applied(42, at(3), at(5));
        assert_eq!(p.publication(at(5), 1).watermark, Some(at(3)));
        p.caught_up(&[42]);
        let publication = p.publication(at(5), 1);
        assert_eq!(publication.watermark, Some(at(5)));
        assert!(publication.partitions.is_empty());
        assert_eq!(p.partition_of(42), None);
    }
}
