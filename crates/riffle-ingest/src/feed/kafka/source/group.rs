//! The consumer group as the broker sees it, read from outside the group (as Burrow or
//! `kafka-consumer-groups` do): per partition of the topic, its end offset, the group's
//! committed offset, how old the oldest uncommitted message is, and which member holds it.
//! `riffle lag`, `riffle check` and ingest's own `/metrics` read it through a
//! [`GroupProbe`]; it never joins the group and never commits.
//!
//! - **Members and their partitions**: `DescribeGroups` (librdkafka's group list), each
//!   member's assignment decoded by [`super::assignment`].
//! - **Committed offsets**: `OffsetFetch` for the group (no membership needed).
//! - **End offsets and the oldest uncommitted message**: a reader consumer (never joined) is
//!   assigned every partition at the group's committed offset (the start of the log before
//!   any commit) and fetches: the first message it gets is the oldest uncommitted one (its
//!   timestamp gives the lag in time), and librdkafka's statistics of the fetch give the
//!   partition's high watermark. `ListOffsets` is not used for the end: tansu answers it with
//!   the first offset of the newest producer batch plus one, which is short whenever
//!   producers batch; the high watermark a fetch reports is right.
//!
//! Everything is bounded by the timeout given to [`GroupProbe::sample`]: what did not
//! answer in time is `None`, never a guess.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, DefaultConsumerContext};
use rdkafka::message::Message;
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::close::DeadlineConsumer;
use super::{assignment, KafkaConfig, SourceError};

/// A member of the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    pub member_id: String,
    pub client_id: String,
    /// The member's address as the broker saw it (`/127.0.0.1`).
    pub host: String,
    /// The partitions of the topic it holds (sorted); empty when its assignment could not
    /// be read or it holds none.
    pub partitions: Vec<i32>,
}

impl GroupMember {
    /// `client_id@host`, what people recognise a member by (a Riffle worker's client id is
    /// `riffle-ingest-<pid>`).
    pub fn name(&self) -> String {
        format!("{}@{}", self.client_id, self.host)
    }
}

/// One partition as the broker sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    pub partition: i32,
    /// The first offset still in the log, when known.
    pub start_offset: Option<i64>,
    /// The offset the next message will get, when known.
    pub end_offset: Option<i64>,
    /// The group's committed offset, when it has one.
    pub committed: Option<i64>,
    /// The timestamp (ms since epoch) of the oldest message not committed, when one is
    /// pending and was read in time.
    pub oldest_pending_ms: Option<i64>,
}

impl PartitionState {
    /// Where the group reads next: its committed offset, else the start of the log.
    pub fn position(&self) -> Option<i64> {
        self.committed.or(self.start_offset)
    }

    /// Messages not committed, when the end is known.
    pub fn lag_messages(&self) -> Option<i64> {
        Some((self.end_offset? - self.position().unwrap_or(0)).max(0))
    }

    /// How old the oldest uncommitted message is at `now_ms` (zero when none is pending).
    pub fn lag_at(&self, now_ms: i64) -> Option<Duration> {
        match self.lag_messages()? {
            0 => Some(Duration::ZERO),
            _ => self
                .oldest_pending_ms
                .map(|ts| Duration::from_millis((now_ms - ts).max(0) as u64)),
        }
    }
}

/// The group and topic at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSample {
    pub topic: String,
    pub group: String,
    /// The coordinator's name for the group's state (`Stable`, `PreparingRebalance`,
    /// `CompletingRebalance`, `Empty`, `Dead`), empty when it did not say.
    pub state: String,
    pub members: Vec<GroupMember>,
    /// Every partition of the topic, in order.
    pub partitions: Vec<PartitionState>,
}

impl GroupSample {
    /// The member holding `partition`, if any does.
    pub fn owner_of(&self, partition: i32) -> Option<&GroupMember> {
        self.members
            .iter()
            .find(|m| m.partitions.contains(&partition))
    }

    /// Whether the broker reported the members' assignments (a member holds something).
    /// tansu 0.6 lists members without them: then [`GroupSample::unowned`] knows nothing.
    pub fn assignments_known(&self) -> bool {
        self.members.iter().any(|m| !m.partitions.is_empty())
    }

    /// Whether every member is a Riffle ingest worker (by its client id, which Kafka and
    /// tansu also put at the front of the member id).
    pub fn only_riffle_members(&self) -> bool {
        self.members.iter().all(|m| {
            [&m.client_id, &m.member_id]
                .iter()
                .any(|id| id.starts_with(RIFFLE_CLIENT_PREFIX))
        })
    }

    /// Partitions no member holds, by the assignments the broker reported.
    pub fn unowned(&self) -> Vec<i32> {
        self.partitions
            .iter()
            .map(|p| p.partition)
            .filter(|&p| self.owner_of(p).is_none())
            .collect()
    }

    /// Whether the group is between rebalances (partitions may be briefly unowned).
    pub fn rebalancing(&self) -> bool {
        self.state.contains("Rebalance")
    }
}

/// How a Riffle ingest worker's client id starts (`riffle-ingest-<pid>`).
pub const RIFFLE_CLIENT_PREFIX: &str = "riffle-ingest-";

/// Reads a consumer group's state from outside it (see the module docs).
pub struct GroupProbe {
    topic: String,
    group: String,
    /// Carries the group id for `OffsetFetch` and `DescribeGroups`; never subscribes.
    admin: DeadlineConsumer<DefaultConsumerContext>,
    /// Assigned partitions to read from (a private group id, never joined), with statistics
    /// for their high watermark.
    reader: DeadlineConsumer<ReaderContext>,
}

/// High watermarks from the reader's statistics.
#[derive(Default)]
struct ReaderContext {
    topic: String,
    /// Per partition, the high watermark of the latest statistics and when they came.
    high: Mutex<HashMap<i32, (i64, Instant)>>,
}

impl ClientContext for ReaderContext {
    fn stats(&self, stats: Statistics) {
        let Some(topic) = stats.topics.get(&self.topic) else {
            return;
        };
        let now = Instant::now();
        let mut high = self.high.lock().unwrap_or_else(|p| p.into_inner());
        for p in topic.partitions.values() {
            if p.partition >= 0 && p.desired && p.hi_offset >= 0 {
                high.insert(p.partition, (p.hi_offset, now));
            }
        }
    }
}

impl ConsumerContext for ReaderContext {}

impl ReaderContext {
    /// The high watermarks the statistics have given so far.
    fn highs(&self) -> HashMap<i32, (i64, Instant)> {
        self.high.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// How often the reader's statistics come while it samples.
const READER_STATS: Duration = Duration::from_millis(100);

impl GroupProbe {
    /// Clients for the group and topic of `config` (its brokers; its group id is read,
    /// never joined).
    pub fn connect(config: &KafkaConfig) -> Result<Self, SourceError> {
        let base = || {
            let mut cfg = ClientConfig::new();
            cfg.set("bootstrap.servers", &config.brokers)
                .set("client.id", "riffle-lag-probe")
                .set("enable.auto.commit", "false")
                .set("enable.auto.offset.store", "false")
                // The log's end as Kafka's own tools read it (the AdminClient's ListOffsets
                // defaults to READ_UNCOMMITTED); tansu 0.6 on PostgreSQL before 16 also
                // fails the read-committed ListOffsets (a query PostgreSQL 15 rejects) and
                // closes the connection, which would leave every end unknown.
                .set("isolation.level", "read_uncommitted")
                .set("fetch.wait.max.ms", "20")
                .set("reconnect.backoff.ms", "100")
                .set("reconnect.backoff.max.ms", "1000");
            cfg.set_log_level(super::context::log_level());
            cfg
        };
        let admin: BaseConsumer = base()
            .set("group.id", &config.group_id)
            .create()
            .map_err(|e| SourceError::from_kafka("connect", e))?;
        // librdkafka assigns partitions only to a consumer with a group id; this one is the
        // reader's own, never joined and never committed to.
        let reader: BaseConsumer<ReaderContext> = base()
            .set("group.id", format!("{}.riffle-lag-reader", config.group_id))
            .set(
                "statistics.interval.ms",
                READER_STATS.as_millis().to_string(),
            )
            .set("enable.partition.eof", "false")
            .create_with_context(ReaderContext {
                topic: config.topic.clone(),
                high: Mutex::default(),
            })
            .map_err(|e| SourceError::from_kafka("connect", e))?;
        let wait = config.session_timeout;
        Ok(Self {
            topic: config.topic.clone(),
            group: config.group_id.clone(),
            admin: DeadlineConsumer::new(admin, wait, "group probe"),
            reader: DeadlineConsumer::new(reader, wait, "group probe's reader"),
        })
    }

    /// The group and topic now, within `timeout` in all (see the module docs).
    pub fn sample(&self, timeout: Duration) -> Result<GroupSample, SourceError> {
        let deadline = Instant::now() + timeout;
        let left = || deadline.saturating_duration_since(Instant::now());
        let metadata = self
            .admin
            .fetch_metadata(Some(&self.topic), left())
            .map_err(|e| SourceError::from_kafka("metadata", e))?;
        let count = metadata
            .topics()
            .iter()
            .find(|t| t.name() == self.topic)
            .map_or(0, |t| t.partitions().len());
        if count == 0 {
            return Err(SourceError::Fatal {
                op: "metadata",
                reason: format!("topic {} has no partitions (does it exist?)", self.topic),
            });
        }
        let (state, members) = self.describe(left())?;
        let committed = self.committed(count, left())?;
        let mut partitions: Vec<PartitionState> = (0..count as i32)
            .map(|p| PartitionState {
                partition: p,
                start_offset: self
                    .admin
                    .fetch_watermarks(&self.topic, p, left())
                    .ok()
                    .map(|(low, _)| low),
                end_offset: None,
                committed: committed.get(&p).copied(),
                oldest_pending_ms: None,
            })
            .collect();
        self.read_ends(&mut partitions, deadline)?;
        Ok(GroupSample {
            topic: self.topic.clone(),
            group: self.group.clone(),
            state,
            members,
            partitions,
        })
    }

    /// The group's state and members with their partitions of the topic.
    fn describe(&self, timeout: Duration) -> Result<(String, Vec<GroupMember>), SourceError> {
        let list = self
            .admin
            .fetch_group_list(Some(&self.group), timeout)
            .map_err(|e| SourceError::from_kafka("describe group", e))?;
        let Some(info) = list.groups().iter().find(|g| g.name() == self.group) else {
            return Ok((String::new(), Vec::new()));
        };
        let members = info
            .members()
            .iter()
            .map(|m| GroupMember {
                member_id: m.id().to_owned(),
                client_id: m.client_id().to_owned(),
                host: m.client_host().to_owned(),
                partitions: m
                    .assignment()
                    .and_then(|bytes| assignment::partitions_of(bytes, &self.topic))
                    .unwrap_or_default(),
            })
            .collect();
        Ok((info.state().to_owned(), members))
    }

    /// The group's committed offset per partition (partitions without one are absent).
    fn committed(&self, count: usize, timeout: Duration) -> Result<HashMap<i32, i64>, SourceError> {
        let mut tpl = TopicPartitionList::with_capacity(count);
        for p in 0..count as i32 {
            tpl.add_partition(&self.topic, p);
        }
        let committed = self
            .admin
            .committed_offsets(tpl, timeout)
            .map_err(|e| SourceError::from_kafka("committed offsets", e))?;
        Ok(committed
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some((e.partition(), o)),
                _ => None,
            })
            .collect())
    }

    /// Fetches every partition from the group's position until `deadline`: the first
    /// message of each is its oldest uncommitted one, and the statistics that follow a
    /// fetch give its end. Stops early once every partition is settled.
    fn read_ends(
        &self,
        partitions: &mut [PartitionState],
        deadline: Instant,
    ) -> Result<(), SourceError> {
        let mut tpl = TopicPartitionList::with_capacity(partitions.len());
        for p in partitions.iter() {
            let at = p.position().map_or(Offset::Beginning, Offset::Offset);
            tpl.add_partition_offset(&self.topic, p.partition, at)
                .map_err(|e| SourceError::from_kafka("assign", e))?;
        }
        self.reader
            .assign(&tpl)
            .map_err(|e| SourceError::from_kafka("assign", e))?;
        let started = Instant::now();
        let mut first: HashMap<i32, i64> = HashMap::new();
        while Instant::now() < deadline {
            if let Some(Ok(msg)) = self.reader.poll(Duration::from_millis(20)) {
                first
                    .entry(msg.partition())
                    .or_insert_with(|| msg.timestamp().to_millis().unwrap_or(0));
            }
            let high = self.reader.context().highs();
            let settled = partitions.iter().all(|p| {
                high.get(&p.partition).is_some_and(|&(end, at)| {
                    at > started && (first.contains_key(&p.partition) || p.position() >= Some(end))
                })
            });
            if settled {
                break;
            }
        }
        let high = self.reader.context().highs();
        for p in partitions.iter_mut() {
            p.end_offset = high
                .get(&p.partition)
                .filter(|(_, at)| *at > started)
                .map(|(end, _)| *end);
            p.oldest_pending_ms = first.get(&p.partition).copied();
        }
        let _ = self.reader.unassign();
        Ok(())
    }
}

/// Joins the group of `config` with a short-lived member of its own, waits until it is
/// handed partitions (or `within` passes), and leaves: two membership changes from outside
/// the workers. A remedy for a group a rejoin does not repair: tansu 0.6 can keep a group
/// forming under a leader that died, which a LeaveGroup from the last live member does not
/// clear, while a new member's join does. The partitions it briefly holds are neither read
/// into anything nor committed: their owners after it read them from the last commit.
pub fn nudge(config: &KafkaConfig, within: Duration) -> Result<(), SourceError> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &config.brokers)
        .set("group.id", &config.group_id)
        .set(
            "client.id",
            format!("{RIFFLE_CLIENT_PREFIX}nudge-{}", std::process::id()),
        )
        .set("enable.auto.commit", "false")
        .set("partition.assignment.strategy", "range,roundrobin")
        .set(
            "session.timeout.ms",
            config.session_timeout.as_millis().to_string(),
        )
        .set(
            "heartbeat.interval.ms",
            config.heartbeat_interval.as_millis().to_string(),
        )
        .create()
        .map_err(|e| SourceError::from_kafka("connect", e))?;
    let consumer = DeadlineConsumer::new(consumer, config.session_timeout, "short-lived member");
    consumer
        .subscribe(&[&config.topic])
        .map_err(|e| SourceError::from_kafka("subscribe", e))?;
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let _ = consumer.poll(Duration::from_millis(100));
        if consumer.assignment().is_ok_and(|a| a.count() > 0) {
            break;
        }
    }
    consumer.unsubscribe();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(committed: Option<i64>, end: Option<i64>, oldest: Option<i64>) -> PartitionState {
        PartitionState {
            partition: 0,
            start_offset: Some(0),
            end_offset: end,
            committed,
            oldest_pending_ms: oldest,
        }
    }

    #[test]
    fn lag_in_messages_and_in_time() {
        assert_eq!(state(Some(90), Some(100), None).lag_messages(), Some(10));
        assert_eq!(state(None, Some(100), None).lag_messages(), Some(100));
        // A commit past a short end (tansu's ListOffsets) is no negative lag.
        assert_eq!(state(Some(110), Some(100), None).lag_messages(), Some(0));
        assert_eq!(state(Some(90), None, None).lag_messages(), None);
        let s = state(Some(90), Some(100), Some(1_000));
        assert_eq!(s.lag_at(61_000), Some(Duration::from_secs(60)));
        assert_eq!(
            state(Some(100), Some(100), None).lag_at(5),
            Some(Duration::ZERO)
        );
        assert_eq!(state(Some(90), Some(100), None).lag_at(5), None);
    }

    #[test]
    fn owners_and_unowned_partitions() {
        let member = |id: &str, parts: Vec<i32>| GroupMember {
            member_id: id.into(),
            client_id: "riffle-ingest-7".into(),
            host: "/127.0.0.1".into(),
            partitions: parts,
        };
        let sample = GroupSample {
            topic: "t".into(),
            group: "g".into(),
            state: "Stable".into(),
            members: vec![member("a", vec![2]), member("b", vec![3])],
            partitions: (0..4)
                .map(|p| PartitionState {
                    partition: p,
                    ..state(None, None, None)
                })
                .collect(),
        };
        assert_eq!(sample.unowned(), vec![0, 1]);
        assert_eq!(sample.owner_of(3).unwrap().member_id, "b");
        assert_eq!(
            sample.owner_of(3).unwrap().name(),
            "riffle-ingest-7@/127.0.0.1"
        );
        assert!(!sample.rebalancing());
    }
}
