//! The Kafka feed of the pipeline: a [`KafkaSource`] on a blocking thread of its own,
//! sending [`Feed`]s through a bounded channel.
//!
//! # The member stays alive whatever the pipeline does
//!
//! The thread never blocks on the channel. When it is full (the store is slow, the pipeline
//! busy) the thread holds what it polled and offers it again every millisecond; once the
//! channel has refused it for a second, the thread pauses its partitions and goes back to
//! polling, so the group's heartbeats and rebalances are served (a rebalance never waits
//! more than a second on a busy worker) while memory stays bounded by one poll's messages.
//! (Pausing at once would make librdkafka drop what it prefetched at every short wait of a
//! catch-up.) Records held for partitions a
//! rebalance takes away are dropped: the next owner reads them from the last commit. When
//! the pipeline takes nothing for `max_stall` (`ingest.max_stall`), the worker leaves the
//! group rather than hold partitions it does not process, and joins again once the
//! pipeline has taken everything held and completed a flush (its store answers again). And when the group monitor
//! ([`group_monitor`]) sees partitions of the topic owned by no member, the worker
//! rejoins, which makes the group rebalance them.
//!
//! Offsets are committed on this thread (the consumer is not shared): after each flush the
//! pipeline hands `(partition, next_offset)` pairs to [`KafkaFeed::durable`], which records
//! them in a shared map and queues them; the thread commits the queue before its next poll,
//! for the partitions it still owns. The revoke hook answers from the shared map only (it
//! never flushes): what is not durable yet is replayed by the next owner and deduplicated
//! by the per-entity positions. A revocation is passed on as [`Feed::Revoked`], so the
//! pipeline flushes and forgets its in-memory entity state; each assignment as
//! [`Feed::Assigned`] with every partition this process now owns. The marks keep the order
//! of the rebalance: records of the old assignment, `Revoked`, `Assigned`, then records of
//! the new one (a polled batch never spans a rebalance). A failed rebalance drops the whole
//! assignment: it is passed on as `Revoked` then `Assigned([])`. When the latest statistics
//! (newer than a partition's last record) put an owned partition's committed offset at its
//! end, [`Feed::CaughtUp`] names it once (until its records come again), so an idle
//! partition's watermark advances to now instead of ageing its entities' rows.
//!
//! Poll errors never end the feed. A broker that cannot be reached is librdkafka's to
//! reconnect, with its own back-off (100 ms doubling up to 5 s, see
//! [`KafkaConfig`]): the reports it queues meanwhile are
//! drained without sleeping, so polling resumes as soon as the broker is back. Other errors
//! are logged (stderr) and polling resumes after a back-off of 100 ms doubling up to 5 s.

mod drained;
pub mod group_monitor;
mod held;
pub mod source;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::feed::item::{Feed, Record};
use crate::feed::kafka::source::{KafkaConfig, KafkaSource, RebalanceEvent, SourceError};
use crate::feed::stream_id::kafka_stream_id;
use crate::pipeline::OnDurable;
use drained::Drained;
use held::Held;

/// Messages per poll.
const POLL_MAX: usize = 500;
/// How long one poll waits for the first message (also the commit latency).
const POLL_WAIT: Duration = Duration::from_millis(100);
/// How long one poll waits while records are held for a full channel (how soon they are
/// offered again).
const HELD_WAIT: Duration = Duration::from_millis(20);
/// How long the channel may refuse what is held before the partitions are paused and
/// polling resumes (serving rebalances); until then the items are offered again every
/// [`OFFER_AGAIN`] without polling.
const PAUSE_AFTER: Duration = Duration::from_secs(1);
const OFFER_AGAIN: Duration = Duration::from_millis(1);
/// How long the last commit before leaving may take to be answered.
const LAST_COMMIT_WAIT: Duration = Duration::from_secs(5);
/// How long the broker may take to say how many partitions the topic has, at a rebalance.
const METADATA_WAIT: Duration = Duration::from_secs(2);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Offsets durable in the store, per partition (next offset to read).
type Durable = Arc<Mutex<HashMap<i32, i64>>>;

/// How the consumer thread is steered from outside, and what it tells.
pub struct FeedControl {
    /// Set to stop polling (after the pipeline returned).
    stop: AtomicBool,
    /// How long the pipeline may take nothing before the worker leaves the group.
    max_stall: Duration,
    /// Set by the group monitor when partitions of the topic are owned by no member.
    rejoin: AtomicBool,
    /// Times the worker left the group because the pipeline was stalled.
    left: AtomicU64,
    /// Remedies for partitions owned by no member: rejoins, and short-lived members.
    rejoined: AtomicU64,
    /// Offsets of assigned partitions never delivered (the consumer's count).
    gaps: AtomicU64,
    /// Flushes the pipeline completed: a worker that left the group for a stalled pipeline
    /// joins again only after one more (the store answers again).
    flushes: AtomicU64,
}

impl FeedControl {
    /// Asks the consumer to rejoin its group (once; it clears the request).
    pub fn request_rejoin(&self) {
        self.rejoin.store(true, Ordering::SeqCst);
    }

    /// Counts a remedy made from outside the consumer (a short-lived member that joined
    /// and left), with the rejoins.
    pub fn count_nudge(&self) {
        self.rejoined.fetch_add(1, Ordering::Relaxed);
    }

    /// `(left, rejoined)`: times the worker left the group for a stalled pipeline, and
    /// rejoined it for partitions owned by nobody.
    pub fn membership_changes(&self) -> (u64, u64) {
        (
            self.left.load(Ordering::Relaxed),
            self.rejoined.load(Ordering::Relaxed),
        )
    }

    /// Gaps met so far: offsets of an assigned partition never delivered (their events are
    /// missing: removed by retention before they were read, or compacted).
    pub fn offset_gaps(&self) -> u64 {
        self.gaps.load(Ordering::Relaxed)
    }
}

/// The running consumer thread; [`KafkaFeed::shutdown`] commits what is queued and leaves
/// the group.
pub struct KafkaFeed {
    durable: Durable,
    lag: crate::feed::kafka::source::LagProbe,
    commits: std_mpsc::Sender<Vec<(i32, i64)>>,
    control: Arc<FeedControl>,
    thread: Option<JoinHandle<()>>,
}

impl KafkaFeed {
    /// Connects and starts polling; records go to the returned receiver (`capacity`
    /// batches). When the pipeline takes nothing for `max_stall`, the worker leaves the
    /// group until it does again.
    pub fn start(
        mut config: KafkaConfig,
        capacity: usize,
        max_stall: Duration,
    ) -> Result<(Self, mpsc::Receiver<std::io::Result<Feed>>), SourceError> {
        let durable: Durable = Arc::default();
        let shared = durable.clone();
        config.on_revoke = Some(Arc::new(move |revoked: &[i32]| {
            // Answered once, then forgotten: should a partition come back after another
            // owner moved it on, an old offset here must not be committed over theirs.
            let mut map = shared.lock().unwrap_or_else(|p| p.into_inner());
            revoked
                .iter()
                .filter_map(|p| map.remove(p).map(|next| (*p, next)))
                .collect()
        }));
        let source = KafkaSource::connect(config)?;
        let lag = source.lag_probe();
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let (commits, queue) = std_mpsc::channel();
        let control = Arc::new(FeedControl {
            stop: AtomicBool::new(false),
            max_stall,
            rejoin: AtomicBool::new(false),
            left: AtomicU64::new(0),
            rejoined: AtomicU64::new(0),
            gaps: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
        });
        let thread = std::thread::Builder::new()
            .name("riffle-kafka-feed".into())
            .spawn({
                let durable = durable.clone();
                let control = control.clone();
                move || consume(source, &tx, &queue, &durable, &control)
            })
            .map_err(|e| SourceError::Config(format!("cannot start the consumer thread: {e}")))?;
        let feed = Self {
            durable,
            lag,
            commits,
            control,
            thread: Some(thread),
        };
        Ok((feed, rx))
    }

    /// Reads the consumer's per-partition lag (librdkafka's statistics) from any thread.
    pub fn lag_probe(&self) -> crate::feed::kafka::source::LagProbe {
        self.lag.clone()
    }

    /// Steers the consumer thread from any thread (the group monitor asks it to rejoin).
    pub fn control(&self) -> Arc<FeedControl> {
        self.control.clone()
    }

    /// A callback for [`Control::on_durable`](crate::pipeline::Control::on_durable).
    pub fn durable(&self) -> OnDurable {
        let durable = self.durable.clone();
        let commits = self.commits.clone();
        let control = self.control.clone();
        Box::new(move |offsets: &[(i32, i64)]| {
            control.flushes.fetch_add(1, Ordering::SeqCst);
            if offsets.is_empty() {
                return;
            }
            {
                let mut map = durable.lock().unwrap_or_else(|p| p.into_inner());
                for &(p, next) in offsets {
                    let e = map.entry(p).or_insert(next);
                    *e = (*e).max(next);
                }
            }
            let _ = commits.send(offsets.to_vec());
        })
    }

    /// Stops polling, commits the queued offsets and leaves the group. Call after the
    /// pipeline returned (its receiver dropped), from a blocking context.
    pub fn shutdown(mut self) {
        self.control.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::warn!("the kafka consumer thread panicked");
            }
        }
    }
}

/// The consumer thread: commit what is durable, hand over what is held, poll, hold what
/// came (records, rebalance marks, drained partitions) until the channel takes it.
fn consume(
    mut source: KafkaSource,
    tx: &mpsc::Sender<std::io::Result<Feed>>,
    queue: &std_mpsc::Receiver<Vec<(i32, i64)>>,
    durable: &Durable,
    control: &FeedControl,
) {
    let topic = source.topic().to_owned();
    let mut backoff = BACKOFF_MIN;
    let mut drained = Drained::default();
    let mut held = Held::default();
    let mut member = true;
    // Flushes completed when the worker left the group for a stalled pipeline.
    let mut left_at_flush = 0;
    loop {
        commit_queued(&source, queue, durable);
        if control.stop.load(Ordering::SeqCst) || tx.is_closed() {
            // The pipeline returned: its last offsets are queued (or it failed).
            commit_queued(&source, queue, durable);
            source.wait_for_commits(LAST_COMMIT_WAIT);
            return;
        }
        if held.hand_over(tx).is_err() {
            continue; // the pipeline is gone: commit what it queued, then stop
        }
        if held.stalled_for().is_some_and(|d| d < PAUSE_AFTER) {
            // A busy pipeline (a catch-up): offer the held items again at once rather than
            // pause, which would make librdkafka drop its prefetched messages and fetch
            // them again. Heartbeats go on in librdkafka's own thread meanwhile.
            std::thread::sleep(OFFER_AGAIN);
            continue;
        }
        held.pause_while_full(&source);
        if member && held.stalled_for().is_some_and(|d| d > control.max_stall) {
            // The pipeline took nothing for `max_stall`: let the group give the partitions
            // to members that process them. What is held was never handed over; the next
            // owner reads it from the last commit.
            tracing::warn!(%topic, stalled_s = control.max_stall.as_secs(), "the pipeline is stalled: leaving the consumer group until it takes records again");
            held.drop_records();
            source.leave();
            member = false;
            left_at_flush = control.flushes.load(Ordering::SeqCst);
            control.left.fetch_add(1, Ordering::Relaxed);
        } else if !member
            && held.is_empty()
            && control.flushes.load(Ordering::SeqCst) > left_at_flush
        {
            // Everything held was handed over and a flush completed since: the store
            // answers and the pipeline moves again.
            tracing::info!(%topic, "the pipeline is flushing again: rejoining the consumer group");
            rejoin(&mut source, &mut member);
        } else if member && control.rejoin.swap(false, Ordering::SeqCst) {
            // The group monitor saw partitions nobody owns: a new membership makes the
            // group rebalance them (a broker that forgot to can be nudged this way).
            tracing::warn!(%topic, "partitions of the topic are owned by no member: rejoining the consumer group");
            source.leave();
            rejoin(&mut source, &mut member);
            control.rejoined.fetch_add(1, Ordering::Relaxed);
        }
        let wait = if held.is_empty() {
            POLL_WAIT
        } else {
            HELD_WAIT
        };
        let batch = match source.poll_batch(POLL_MAX, wait) {
            Ok(batch) => {
                backoff = BACKOFF_MIN;
                batch
            }
            Err(error) if error.retryable() => {
                // librdkafka reconnects on its own, with its own back-off; what poll returns
                // is a queued report per failed attempt. Sleeping on each would leave the
                // feed draining old reports long after the broker is back.
                tracing::debug!(%topic, %error, "kafka broker unavailable; librdkafka reconnects");
                continue;
            }
            Err(error) => {
                tracing::warn!(%topic, %error, backoff_ms = backoff.as_millis() as u64, "kafka poll failed; retrying");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        control.gaps.store(source.offset_gaps(), Ordering::Relaxed);
        let mut partitions_seen = Vec::new();
        let records: Vec<Record> = batch
            .into_iter()
            .filter_map(|m| {
                if !partitions_seen.contains(&m.partition) {
                    partitions_seen.push(m.partition);
                }
                Some(Record {
                    stream: kafka_stream_id(&topic, m.partition),
                    offset: u64::try_from(m.offset).ok()?,
                    partition: Some(m.partition),
                    payload: m.payload,
                })
            })
            .collect();
        drained.records_of(&partitions_seen);
        if !records.is_empty() {
            held.push(Feed::Records(records));
        }
        // The batch ended at a rebalance, if any: its records come before the marks.
        let events = source.take_rebalance_events();
        if !events.is_empty() {
            drained.rebalanced();
            held.rebalanced(&events);
            let count = source.partition_count(METADATA_WAIT);
            for mark in rebalance_marks(events, count) {
                held.push(mark);
            }
        }
        let now_drained = drained.newly_drained(
            &source.assignment(),
            &source.lag(),
            source.lag_reported_at(),
        );
        if !now_drained.is_empty() {
            // Every record of these partitions up to their end is durable: the pipeline may
            // publish their watermarks as of now.
            let streams = now_drained
                .iter()
                .map(|&p| kafka_stream_id(&topic, p))
                .collect();
            held.push(Feed::CaughtUp(streams));
        }
    }
}

/// Joins the group again; a failure (the broker away) is retried on the next turn.
fn rejoin(source: &mut KafkaSource, member: &mut bool) {
    match source.join() {
        Ok(()) => *member = true,
        Err(error) => tracing::warn!(%error, "could not rejoin the consumer group; retrying"),
    }
}

/// The feed marks of rebalance events, in order; `partition_count`: the topic's.
fn rebalance_marks(events: Vec<RebalanceEvent>, partition_count: Option<u32>) -> Vec<Feed> {
    let mut marks = Vec::with_capacity(events.len());
    let assigned = |partitions| Feed::Assigned {
        partitions,
        partition_count,
    };
    for event in events {
        match event {
            RebalanceEvent::Revoked(_) => marks.push(Feed::Revoked),
            RebalanceEvent::Assigned(parts) => marks.push(assigned(parts)),
            RebalanceEvent::Failed(_) => {
                marks.push(Feed::Revoked);
                marks.push(assigned(Vec::new()));
            }
        }
    }
    marks
}

/// Commits every queued `(partition, next_offset)` of a partition this consumer owns (the
/// highest per partition), and drops the durable offsets of partitions it does not own
/// (reported after their revocation), which the revoke hook must never answer later.
fn commit_queued(
    source: &KafkaSource,
    queue: &std_mpsc::Receiver<Vec<(i32, i64)>>,
    durable: &Durable,
) {
    let mut next: HashMap<i32, i64> = HashMap::new();
    while let Ok(offsets) = queue.try_recv() {
        for (p, o) in offsets {
            let e = next.entry(p).or_insert(o);
            *e = (*e).max(o);
        }
    }
    let owned = source.assignment();
    durable
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .retain(|p, _| owned.contains(p));
    let mut offsets: Vec<(i32, i64)> = next
        .into_iter()
        .filter(|(p, _)| owned.contains(p))
        .collect();
    offsets.sort_unstable();
    if let Err(error) = source.commit(&offsets) {
        tracing::warn!(%error, "kafka commit failed; the next owner replays (deduplicated)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_keep_the_order_of_the_rebalance() {
        let marks = rebalance_marks(
            vec![
                RebalanceEvent::Revoked(vec![0, 1]),
                RebalanceEvent::Assigned(vec![0, 1, 2, 3]),
                RebalanceEvent::Failed("boom".into()),
            ],
            Some(4),
        );
        let shown: Vec<String> = marks
            .iter()
            .map(|m| match m {
                Feed::Revoked => "revoked".to_owned(),
                Feed::Assigned {
                    partitions,
                    partition_count,
                } => format!("assigned {partitions:?} of {partition_count:?}"),
                _ => "other".to_owned(),
            })
            .collect();
        assert_eq!(
            shown,
            [
                "revoked",
                "assigned [0, 1, 2, 3] of Some(4)",
                "revoked",
                "assigned [] of Some(4)"
            ]
        );
    }
}
