//! The Kafka source: one member of a consumer group reading one topic.
//!
//! # Delivery contract
//! Kafka delivers **at least once**. Offsets are never committed automatically
//! (`enable.auto.commit=false`, `enable.auto.offset.store=false`): the pipeline calls
//! [`KafkaSource::commit`] only after the features the messages produced are durable in the
//! store, together with its window state (`ARCHITECTURE.md`, "Ingest is exactly-once in
//! effect"). After a crash, a rebalance or a lost commit, messages after the last commit are
//! delivered again; the pipeline's writes are idempotent on replay, which makes ingestion
//! exactly-once *in effect*.
//!
//! # Rebalances
//! Partitions move between members inside [`KafkaSource::poll_batch`] (librdkafka serves the
//! rebalance on the polling thread). Before partitions are revoked the optional
//! [`RevokeHook`] runs and returns the offsets already durable, which are committed before
//! the partitions go. What happened is also kept as [`RebalanceEvent`]s for
//! [`KafkaSource::take_rebalance_events`]. A batch never spans a rebalance: it ends at the
//! poll that served one (a message that poll returned opens the next batch), so a caller
//! that takes the events after each batch sees messages of the old assignment, then the
//! events, then messages of the new one. Only the eager assignors (`range,roundrobin`) are
//! used: `cooperative-sticky` stalls a partition on tansu.
//!
//! # Broker loss
//! librdkafka reconnects by itself, backing off from 100 ms to 5 s between attempts. Errors
//! come back typed ([`SourceError`]); when [`SourceError::retryable`] is true they only
//! report that (one per failed attempt, queued): the caller polls again at once.
//!
//! # Lag
//! [`KafkaSource::lag`] comes from librdkafka's statistics (every `stats_interval`, served
//! while polling), not from `ListOffsets`, whose high watermark tansu gets wrong when
//! producers batch.
//!
//! The consumer is blocking: a pipeline runs it on its own thread (or `spawn_blocking`).
//!
//! # Resuming
//! A partition must resume at the group's committed offset. An assigned partition is
//! fetched from a little before it, and what comes before it dropped, because a broker
//! that fetches only whole producer batches (tansu) would skip the rest of the batch
//! holding it; the first message at or after it must be it, or the gap is logged and
//! counted (`resume.rs`).
//!
//! # Closing
//! Dropping a source leaves the group, but waits at most the session timeout and a few
//! seconds for librdkafka to finish: with the group's coordinator gone, librdkafka's close
//! can wait forever, and so would a worker shutting down (`close.rs`).
//!
//! [`group`] reads the whole group from outside it (members, committed offsets, lag in
//! messages and time per partition), for `riffle lag` and ingest's group monitor.

pub mod assignment;
mod close;
mod context;
mod error;
pub mod group;
mod resume;

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use riffle_registry::SourceKind;

pub use context::{PartitionLag, RebalanceEvent, RevokeHook};
pub use error::SourceError;

use close::DeadlineConsumer;
use context::SourceContext;
use resume::{Resume, Verdict};

/// How to join the group. [`KafkaConfig::new`] fills in the defaults.
#[derive(Clone)]
pub struct KafkaConfig {
    /// `bootstrap.servers`: `host:port[,host:port…]`.
    pub brokers: String,
    pub topic: String,
    pub group_id: String,
    pub client_id: String,
    /// How long the group waits for a silent member before moving its partitions.
    pub session_timeout: Duration,
    pub heartbeat_interval: Duration,
    /// How often librdkafka reports statistics (and so how fresh [`KafkaSource::lag`] is).
    pub stats_interval: Duration,
    /// How long the broker may hold a fetch that has too little to return
    /// (`fetch.wait.max.ms`): on a quiet partition, a floor under every event's time to be
    /// served. librdkafka's 500 ms is a throughput default; a broker that holds every fetch
    /// for the whole wait (tansu does) made event → served p50 473 ms at 50k events/s,
    /// 53 ms with [`FETCH_WAIT`] (`bench/ingest.sh`).
    pub fetch_wait: Duration,
    /// Flush hook run before partitions are revoked (see [`RevokeHook`]).
    pub on_revoke: Option<RevokeHook>,
    /// Further librdkafka settings, applied last (they win over the ones above).
    pub extra: Vec<(String, String)>,
}

/// The default [`KafkaConfig::fetch_wait`]: an idle consumer then sends ~50 small fetch
/// requests a second per broker, a cost worth a feature platform's freshness.
pub const FETCH_WAIT: Duration = Duration::from_millis(20);

/// How long librdkafka postpones a partition's next fetch once its local queue is over its
/// thresholds (`fetch.queue.backoff.ms`). Riffle consumes slower than a broker serves while
/// it catches up, so the queue fills; librdkafka's default of 1 s then left the queue to run
/// dry while no fetch was allowed, and the pipeline waited for input a third of the time:
/// a 1M-event backlog from tansu into Redis, alternating x2, 168k/217k events/s at 1 s,
/// 287k/304k at 10 ms (the wait for input 1.1-2.0 s -> 0.2-0.3 s of a 3.4-6.1 s run). A
/// postponed fetch is only a timer: no request goes out until the queue has room.
pub const FETCH_QUEUE_BACKOFF: Duration = Duration::from_millis(10);

/// How much longer than the session timeout (librdkafka's own bound on waiting for the
/// group's coordinator while closing) a consumer may take to close before it is left to
/// close in the background.
const CLOSE_MARGIN: Duration = Duration::from_secs(5);

impl KafkaConfig {
    pub fn new(brokers: &str, topic: &str, group_id: &str) -> Self {
        Self {
            brokers: brokers.to_owned(),
            topic: topic.to_owned(),
            group_id: group_id.to_owned(),
            client_id: "riffle".to_owned(),
            session_timeout: Duration::from_secs(10),
            heartbeat_interval: Duration::from_secs(1),
            stats_interval: Duration::from_secs(1),
            fetch_wait: FETCH_WAIT,
            on_revoke: None,
            extra: Vec::new(),
        }
    }

    /// The configuration of a registry source, when it is a Kafka source.
    pub fn from_source(kind: &SourceKind) -> Option<Self> {
        match kind {
            SourceKind::Kafka {
                brokers,
                topic,
                group_id,
            } => Some(Self::new(brokers, topic, group_id)),
            _ => None,
        }
    }

    fn client_config(&self) -> ClientConfig {
        let ms = |d: Duration| d.as_millis().to_string();
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", &self.brokers)
            .set("group.id", &self.group_id)
            .set("client.id", &self.client_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set("partition.assignment.strategy", "range,roundrobin")
            .set("session.timeout.ms", ms(self.session_timeout))
            .set("heartbeat.interval.ms", ms(self.heartbeat_interval))
            .set("statistics.interval.ms", ms(self.stats_interval))
            .set("fetch.wait.max.ms", ms(self.fetch_wait))
            .set("fetch.queue.backoff.ms", ms(FETCH_QUEUE_BACKOFF))
            .set("reconnect.backoff.ms", "100")
            .set("reconnect.backoff.max.ms", "5000");
        cfg.set_log_level(context::log_level());
        if let Some(contexts) = context::debug_contexts() {
            cfg.set("debug", contexts);
        }
        for (k, v) in &self.extra {
            cfg.set(k, v);
        }
        cfg
    }
}

impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field("group_id", &self.group_id)
            .field("client_id", &self.client_id)
            .field("session_timeout", &self.session_timeout)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("stats_interval", &self.stats_interval)
            .field("on_revoke", &self.on_revoke.is_some())
            .field("extra", &self.extra)
            .finish()
    }
}

/// One message, copied out of librdkafka's buffers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceMessage {
    pub partition: i32,
    pub offset: i64,
    /// The entity id, by convention of Riffle's Kafka sources.
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    /// Create or log-append time, when the message carries one.
    pub timestamp_ms: Option<i64>,
}

/// A consumer-group member reading one topic. Leaves the group when dropped (revoking its
/// partitions, so the [`RevokeHook`] runs one last time), waiting at most the session
/// timeout and a few seconds for it (see the module docs).
pub struct KafkaSource {
    consumer: DeadlineConsumer<SourceContext>,
    topic: String,
    /// An error met after some messages of a batch: returned by the next poll.
    pending: Option<SourceError>,
    /// A message received in the poll that served a rebalance: it opens the next batch.
    carry: Option<SourceMessage>,
    /// Whether each assigned partition resumed at its committed offset.
    resume: Resume,
}

impl KafkaSource {
    /// Creates the consumer and subscribes to the topic. Joining the group happens in the
    /// background while polling: the first messages may take a few seconds.
    pub fn connect(config: KafkaConfig) -> Result<Self, SourceError> {
        let context = SourceContext::new(config.topic.clone(), config.on_revoke.clone());
        let consumer: BaseConsumer<SourceContext> = config
            .client_config()
            .create_with_context(context)
            .map_err(|e| SourceError::from_kafka("connect", e))?;
        consumer
            .subscribe(&[&config.topic])
            .map_err(|e| SourceError::from_kafka("subscribe", e))?;
        let close_wait = config.session_timeout + CLOSE_MARGIN;
        Ok(Self {
            consumer: DeadlineConsumer::new(consumer, close_wait, "consumer"),
            topic: config.topic,
            pending: None,
            carry: None,
            resume: Resume::default(),
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Up to `max` messages: waits up to `wait` for the first one, then takes what is
    /// already fetched without waiting. An empty batch means nothing arrived in time.
    /// Rebalances, statistics and client errors are served during the call; a batch ends
    /// early at a rebalance, so all its messages come from one assignment (see the module
    /// docs).
    pub fn poll_batch(
        &mut self,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<SourceMessage>, SourceError> {
        if let Some(err) = self.pending.take() {
            return Err(err);
        }
        let deadline = Instant::now() + wait;
        let mut batch: Vec<SourceMessage> = self.carry.take().into_iter().collect();
        let rebalances = self.consumer.context().rebalances();
        while batch.len() < max {
            let timeout = if batch.is_empty() {
                deadline.saturating_duration_since(Instant::now())
            } else {
                Duration::ZERO
            };
            let polled = self.consumer.poll(timeout);
            let rebalanced = self.consumer.context().rebalances() != rebalances;
            if let Some(committed) = self.consumer.context().take_resume_from() {
                self.resume.assigned(committed);
            }
            match polled {
                Some(Ok(msg)) => {
                    if self.resume.check(msg.partition(), msg.offset()) == Verdict::Drop {
                        continue;
                    }
                    let msg = SourceMessage {
                        partition: msg.partition(),
                        offset: msg.offset(),
                        key: msg.key().map(<[u8]>::to_vec),
                        payload: msg.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                        timestamp_ms: msg.timestamp().to_millis(),
                    };
                    if rebalanced {
                        // Served after the rebalance: it belongs to the new assignment.
                        self.carry = Some(msg);
                        break;
                    }
                    batch.push(msg);
                }
                Some(Err(e)) => {
                    let err = SourceError::from_kafka("poll", e);
                    if err.retryable() {
                        // Already reported by the client's error callback.
                        tracing::debug!(topic = %self.topic, error = %err, "kafka poll error");
                    } else {
                        tracing::warn!(topic = %self.topic, error = %err, "kafka poll error");
                    }
                    if batch.is_empty() {
                        return Err(err);
                    }
                    self.pending = Some(err);
                    break;
                }
                None if rebalanced => break,
                None if batch.is_empty() && Instant::now() < deadline => {}
                None => break,
            }
        }
        Ok(batch)
    }

    /// Sends a commit of `(partition, next_offset)` pairs without waiting for it:
    /// `next_offset` is one past the last message whose effects are durable. Call it only
    /// for such offsets; everything after them will be delivered again after a restart or a
    /// rebalance. The answer comes while polling; a failure is logged (the next owner
    /// replays from the previous commit). Never waiting keeps the polling thread serving
    /// the group even when the coordinator cannot be reached (a synchronous commit then
    /// waits forever). `Err` only when the commit could not even be sent.
    pub fn commit(&self, offsets: &[(i32, i64)]) -> Result<(), SourceError> {
        if offsets.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::with_capacity(offsets.len());
        for &(partition, next) in offsets {
            tpl.add_partition_offset(&self.topic, partition, Offset::Offset(next))
                .map_err(|e| SourceError::from_kafka("commit", e))?;
        }
        self.consumer
            .commit(&tpl, CommitMode::Async)
            .map_err(|e| SourceError::from_kafka("commit", e))?;
        self.consumer.context().commit_sent();
        Ok(())
    }

    /// Polls (serving callbacks; messages polled meanwhile are dropped: they were never
    /// handed on, so the next owner reads them) until every commit sent is answered, or
    /// `timeout` passes. For the last commit before leaving the group.
    pub fn wait_for_commits(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.consumer.context().commits_pending() > 0 && Instant::now() < deadline {
            let _ = self.consumer.poll(Duration::from_millis(20));
        }
    }

    /// Offsets of an assigned partition never delivered so far (see `resume.rs`).
    pub fn offset_gaps(&self) -> u64 {
        self.resume.gaps()
    }

    /// Commits sent and not answered yet (librdkafka holds a commit while the group's
    /// coordinator cannot be reached).
    pub fn commits_pending(&self) -> usize {
        self.consumer.context().commits_pending()
    }

    /// The partitions this consumer holds now (sorted).
    pub fn assignment(&self) -> Vec<i32> {
        self.consumer.context().assigned()
    }

    /// Assignments and revocations since the last call, oldest first.
    pub fn take_rebalance_events(&mut self) -> Vec<RebalanceEvent> {
        self.consumer.context().take_events()
    }

    /// Lag of the partitions this consumer holds, from the latest statistics (empty until
    /// the first report, one `stats_interval` after joining).
    pub fn lag(&self) -> Vec<PartitionLag> {
        self.consumer.context().lag()
    }

    /// When the statistics behind [`KafkaSource::lag`] arrived (`None` before the first).
    pub fn lag_reported_at(&self) -> Option<Instant> {
        self.consumer.context().lag_at()
    }

    /// How many partitions the topic has, asked of the broker (at most `timeout`); `None`
    /// when it did not answer.
    pub fn partition_count(&self, timeout: Duration) -> Option<u32> {
        let metadata = self
            .consumer
            .fetch_metadata(Some(&self.topic), timeout)
            .ok()?;
        let topic = metadata.topics().iter().find(|t| t.name() == self.topic)?;
        u32::try_from(topic.partitions().len())
            .ok()
            .filter(|&n| n > 0)
    }

    /// Stops fetching from every partition held (while the pipeline cannot take more):
    /// polling goes on, serving heartbeats and rebalances, and returns no messages of them
    /// until [`KafkaSource::resume`]. Messages already fetched are fetched again then.
    pub fn pause(&self) -> Result<(), SourceError> {
        let held = self
            .consumer
            .assignment()
            .map_err(|e| SourceError::from_kafka("pause", e))?;
        if held.count() == 0 {
            return Ok(());
        }
        self.consumer
            .pause(&held)
            .map_err(|e| SourceError::from_kafka("pause", e))
    }

    /// Fetches again from every partition held (see [`KafkaSource::pause`]).
    pub fn resume(&self) -> Result<(), SourceError> {
        let held = self
            .consumer
            .assignment()
            .map_err(|e| SourceError::from_kafka("resume", e))?;
        if held.count() == 0 {
            return Ok(());
        }
        self.consumer
            .resume(&held)
            .map_err(|e| SourceError::from_kafka("resume", e))
    }

    /// Leaves the group (its partitions are revoked, the revoke hook runs, and the group
    /// rebalances them onto the other members) while staying connected; polling goes on and
    /// brings nothing until [`KafkaSource::join`].
    pub fn leave(&mut self) {
        self.carry = None;
        self.consumer.unsubscribe();
    }

    /// Joins the group again (after [`KafkaSource::leave`]): a new membership, which makes
    /// the group rebalance.
    pub fn join(&mut self) -> Result<(), SourceError> {
        self.consumer
            .subscribe(&[&self.topic])
            .map_err(|e| SourceError::from_kafka("subscribe", e))
    }

    /// A handle that reads [`KafkaSource::lag`] from another thread (the ingest process's
    /// `/metrics` while the consumer thread polls).
    pub fn lag_probe(&self) -> LagProbe {
        LagProbe(std::sync::Arc::downgrade(self.consumer.context()))
    }
}

/// Reads a [`KafkaSource`]'s partition lag from any thread for as long as the consumer
/// lives (empty once it is gone): see [`KafkaSource::lag_probe`].
#[derive(Clone)]
pub struct LagProbe(std::sync::Weak<SourceContext>);

impl LagProbe {
    /// The latest per-partition lag, as [`KafkaSource::lag`].
    pub fn lag(&self) -> Vec<PartitionLag> {
        self.0.upgrade().map(|c| c.lag()).unwrap_or_default()
    }
}
