//! The consumer's callbacks: who owns which partitions (rebalances), how far behind they
//! are (librdkafka's statistics), and the answers to commits sent without waiting.
//!
//! Everything here runs *inside* [`BaseConsumer::poll`], on the thread that polls: a
//! revocation is served while [`KafkaSource::poll_batch`](super::KafkaSource::poll_batch)
//! waits, which is why the flush hook ([`RevokeHook`]) is called from `pre_rebalance`, before
//! the partitions are given up. Every rebalance bumps a counter, so a batch can end where
//! the assignment changed.
//!
//! librdkafka's own log lines go to `tracing` under the target `librdkafka`; when that
//! target is enabled at debug level, the consumer is created with `debug=cgrp,fetch` (see
//! [`debug_contexts`]), e.g. `RUST_LOG=librdkafka=debug` shows every join, sync, heartbeat
//! and fetch.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::statistics::Statistics;
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::resume::Resume;

/// Called with the partitions about to be revoked, before they go. The pipeline flushes what
/// it holds for them and returns `(partition, next_offset)` for everything now durable; the
/// source commits those offsets synchronously before the rebalance proceeds, so the next
/// owner starts right after them instead of replaying.
pub type RevokeHook = Arc<dyn Fn(&[i32]) -> Vec<(i32, i64)> + Send + Sync>;

/// A change of this consumer's partitions, in the order they happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RebalanceEvent {
    /// The group gave this consumer these partitions (the whole new assignment).
    Assigned(Vec<i32>),
    /// These partitions were taken away (after the revoke hook ran).
    Revoked(Vec<i32>),
    /// The rebalance failed: librdkafka dropped the whole assignment (this consumer owns
    /// nothing until the next `Assigned`) and retries by itself.
    Failed(String),
}

/// How far one partition is behind, from the latest statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionLag {
    pub partition: i32,
    /// Offset the next produced message will get (`hi_offset`), when known.
    pub high_watermark: Option<i64>,
    /// The group's committed offset (next message to read), when there is one.
    pub committed: Option<i64>,
    /// Messages not yet committed: `high_watermark - committed`, or `high_watermark -
    /// low_watermark` before the first commit (we start from the earliest offset).
    pub consumer_lag: Option<i64>,
}

/// The [`ConsumerContext`] of a [`KafkaSource`](super::KafkaSource).
pub struct SourceContext {
    topic: String,
    on_revoke: Option<RevokeHook>,
    state: Mutex<State>,
    /// Rebalances served so far (assignments, revocations, failures).
    rebalances: AtomicU64,
}

#[derive(Default)]
struct State {
    assigned: Vec<i32>,
    events: Vec<RebalanceEvent>,
    lag: BTreeMap<i32, PartitionLag>,
    /// When the latest statistics came.
    lag_at: Option<Instant>,
    /// Commits sent and not answered yet.
    commits_pending: usize,
    /// The committed offsets of the latest assignment's partitions, for the source to
    /// drop what comes before them ([`super::resume`]).
    resume_from: Option<Vec<(i32, i64)>>,
}

impl SourceContext {
    pub(super) fn new(topic: String, on_revoke: Option<RevokeHook>) -> Self {
        Self {
            topic,
            on_revoke,
            state: Mutex::new(State::default()),
            rebalances: AtomicU64::new(0),
        }
    }

    /// How many rebalances were served so far: a change means the assignment moved.
    pub(super) fn rebalances(&self) -> u64 {
        self.rebalances.load(Ordering::SeqCst)
    }

    /// A poisoned lock only means a callback panicked mid-update; the data is still usable.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn assigned(&self) -> Vec<i32> {
        self.state().assigned.clone()
    }

    pub(super) fn take_events(&self) -> Vec<RebalanceEvent> {
        std::mem::take(&mut self.state().events)
    }

    pub(super) fn lag(&self) -> Vec<PartitionLag> {
        self.state().lag.values().copied().collect()
    }

    /// When the statistics behind [`SourceContext::lag`] came (`None` before the first).
    pub(super) fn lag_at(&self) -> Option<Instant> {
        self.state().lag_at
    }

    /// A commit was sent; its answer comes to [`ConsumerContext::commit_callback`].
    pub(super) fn commit_sent(&self) {
        self.state().commits_pending += 1;
    }

    /// Commits sent and not answered yet.
    pub(super) fn commits_pending(&self) -> usize {
        self.state().commits_pending
    }

    /// The committed offsets of the partitions of the latest assignment, once.
    pub(super) fn take_resume_from(&self) -> Option<Vec<(i32, i64)>> {
        self.state().resume_from.take()
    }
}

fn partitions(tpl: &TopicPartitionList) -> Vec<i32> {
    let mut parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
    parts.sort_unstable();
    parts
}

/// How long the committed offsets of a new assignment may take to be read.
const COMMITTED_WAIT: Duration = Duration::from_secs(5);

/// The group's committed offsets of the partitions in `tpl` (those without one left out;
/// none when the coordinator did not answer in time: then nothing is checked).
fn committed(consumer: &BaseConsumer<SourceContext>, tpl: &TopicPartitionList) -> Vec<(i32, i64)> {
    match consumer.committed_offsets(tpl.clone(), COMMITTED_WAIT) {
        Ok(done) => done
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some((e.partition(), o)),
                _ => None,
            })
            .collect(),
        Err(error) => {
            tracing::warn!(%error, "the committed offsets of a new assignment could not be read; resume points go unchecked");
            Vec::new()
        }
    }
}

fn known(offset: i64) -> Option<i64> {
    (offset >= 0).then_some(offset)
}

/// librdkafka's `debug` contexts to turn on: `cgrp,fetch` when the `librdkafka` tracing
/// target is enabled at debug level, none otherwise.
pub(super) fn debug_contexts() -> Option<&'static str> {
    tracing::enabled!(target: "librdkafka", tracing::Level::DEBUG).then_some("cgrp,fetch")
}

/// The most verbose level the `librdkafka` tracing target listens to (librdkafka does not
/// format what nobody reads).
pub(super) fn log_level() -> RDKafkaLogLevel {
    use tracing::Level;
    if tracing::enabled!(target: "librdkafka", Level::DEBUG) {
        RDKafkaLogLevel::Debug
    } else if tracing::enabled!(target: "librdkafka", Level::INFO) {
        RDKafkaLogLevel::Info
    } else if tracing::enabled!(target: "librdkafka", Level::WARN) {
        RDKafkaLogLevel::Warning
    } else {
        RDKafkaLogLevel::Error
    }
}

impl ClientContext for SourceContext {
    fn stats(&self, stats: Statistics) {
        let Some(topic) = stats.topics.get(&self.topic) else {
            return;
        };
        let mut lag = BTreeMap::new();
        // Partition -1 is librdkafka's internal "unassigned" partition; `desired` marks the
        // partitions this consumer was assigned.
        for p in topic.partitions.values() {
            if p.partition < 0 || !p.desired {
                continue;
            }
            let high_watermark = known(p.hi_offset);
            let committed = known(p.committed_offset);
            let consumer_lag = match (high_watermark, committed) {
                (Some(hi), Some(c)) => Some((hi - c).max(0)),
                (Some(hi), None) => Some((hi - known(p.lo_offset).unwrap_or(0)).max(0)),
                (None, _) => None,
            };
            lag.insert(
                p.partition,
                PartitionLag {
                    partition: p.partition,
                    high_watermark,
                    committed,
                    consumer_lag,
                },
            );
        }
        let mut state = self.state();
        state.lag = lag;
        state.lag_at = Some(Instant::now());
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // Broker loss shows up here first; librdkafka reconnects by itself.
        tracing::warn!(topic = %self.topic, %error, reason, "kafka client error");
    }

    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", fac, "{log_message}");
            }
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", fac, "{log_message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", fac, "{log_message}");
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", fac, "{log_message}"),
        }
    }
}

impl ConsumerContext for SourceContext {
    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        let mut state = self.state();
        state.commits_pending = state.commits_pending.saturating_sub(1);
        match result {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(error) => {
                // The next owner replays from the previous commit: duplicates, never a loss.
                tracing::warn!(topic = %self.topic, %error, partitions = ?partitions(offsets), "kafka commit failed");
            }
        }
    }

    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else {
            return;
        };
        let revoked = partitions(tpl);
        tracing::info!(topic = %self.topic, partitions = ?revoked, "kafka partitions revoked");
        let Some(hook) = &self.on_revoke else {
            return;
        };
        let durable = hook(&revoked);
        if durable.is_empty() {
            return;
        }
        let mut commit = TopicPartitionList::new();
        for (partition, next) in durable {
            if let Err(e) =
                commit.add_partition_offset(&self.topic, partition, Offset::Offset(next))
            {
                tracing::warn!(partition, next, error = %e, "bad offset from revoke hook");
            }
        }
        if let Err(error) = consumer.commit(&commit, CommitMode::Sync) {
            // The next owner replays from the previous commit: duplicates, never a loss.
            tracing::warn!(topic = %self.topic, %error, "commit on revoke failed");
        }
    }

    /// rdkafka's eager rebalance (the assignors in use are eager), except that an assigned
    /// partition with a committed offset is fetched from [`Resume::fetch_from`] it rather
    /// than from it (see [`super::resume`]): its committed offsets are read here and handed
    /// to the source, which drops what comes before them.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        if err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS {
            let committed = committed(consumer, tpl);
            for &(partition, offset) in &committed {
                let from = Offset::Offset(Resume::fetch_from(offset));
                if let Err(error) = tpl.set_partition_offset(&self.topic, partition, from) {
                    tracing::warn!(partition, %error, "cannot set where the partition is fetched from");
                }
            }
            self.state().resume_from = Some(committed);
            let rebalance = Rebalance::Assign(tpl);
            self.pre_rebalance(consumer, &rebalance);
            if let Err(error) = consumer.assign(tpl) {
                tracing::error!(topic = %self.topic, %error, "kafka assignment failed");
            }
            self.post_rebalance(consumer, &rebalance);
            return;
        }
        let rebalance = if err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS {
            Rebalance::Revoke(tpl)
        } else {
            Rebalance::Error(KafkaError::Rebalance(err.into()))
        };
        self.pre_rebalance(consumer, &rebalance);
        if let Err(error) = consumer.unassign() {
            tracing::error!(topic = %self.topic, %error, "kafka unassignment failed");
        }
        self.post_rebalance(consumer, &rebalance);
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.rebalances.fetch_add(1, Ordering::SeqCst);
        let mut state = self.state();
        match rebalance {
            Rebalance::Assign(tpl) => {
                let parts = partitions(tpl);
                tracing::info!(topic = %self.topic, partitions = ?parts, "kafka partitions assigned");
                state.assigned = parts.clone();
                state.events.push(RebalanceEvent::Assigned(parts));
            }
            Rebalance::Revoke(tpl) => {
                let parts = partitions(tpl);
                state.assigned.retain(|p| !parts.contains(p));
                state.lag.retain(|p, _| !parts.contains(p));
                state.events.push(RebalanceEvent::Revoked(parts));
            }
            Rebalance::Error(e) => {
                // rdkafka answers a failed rebalance by dropping the whole assignment.
                tracing::warn!(topic = %self.topic, error = %e, "kafka rebalance failed");
                state.assigned.clear();
                state.lag.clear();
                state.events.push(RebalanceEvent::Failed(e.to_string()));
            }
        }
    }
}
