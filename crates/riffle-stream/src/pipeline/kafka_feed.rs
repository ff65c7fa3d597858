//! The Kafka feed of the pipeline: a [`KafkaSource`] on a blocking thread of its own,
//! sending [`Feed`]s through a bounded channel (when the store is slow the channel fills, the
//! thread blocks and stops polling: memory stays flat, nothing is dropped).
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
//! assignment: it is passed on as `Revoked` then `Assigned([])`. When a whole poll brings
//! nothing and the latest statistics put every owned partition's committed offset at its
//! end, [`Feed::CaughtUp`] is passed on once (until records come again), so an idle topic's
//! watermark advances to now instead of ageing every row of its groups.
//!
//! Poll errors never end the feed. A broker that cannot be reached is librdkafka's to
//! reconnect, with its own back-off (100 ms doubling up to 5 s, see
//! [`KafkaConfig`](crate::source::kafka::KafkaConfig)): the reports it queues meanwhile are
//! drained without sleeping, so polling resumes as soon as the broker is back. Other errors
//! are logged (stderr) and polling resumes after a back-off of 100 ms doubling up to 5 s.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::mpsc;

use super::input::{kafka_stream_id, Feed, Record};
use super::run::OnDurable;
use crate::source::kafka::{KafkaConfig, KafkaSource, PartitionLag, RebalanceEvent, SourceError};

/// Messages per poll.
const POLL_MAX: usize = 500;
/// How long one poll waits for the first message (also the commit latency).
const POLL_WAIT: Duration = Duration::from_millis(100);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Offsets durable in the store, per partition (next offset to read).
type Durable = Arc<Mutex<HashMap<i32, i64>>>;

/// The running consumer thread; [`KafkaFeed::shutdown`] commits what is queued and leaves
/// the group.
pub struct KafkaFeed {
    durable: Durable,
    lag: crate::source::kafka::LagProbe,
    commits: std_mpsc::Sender<Vec<(i32, i64)>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl KafkaFeed {
    /// Connects and starts polling; records go to the returned receiver (`capacity` batches).
    pub fn start(
        mut config: KafkaConfig,
        capacity: usize,
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
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("riffle-kafka-feed".into())
            .spawn({
                let durable = durable.clone();
                move || consume(source, &tx, &queue, &durable, &flag)
            })
            .map_err(|e| SourceError::Config(format!("cannot start the consumer thread: {e}")))?;
        let feed = Self {
            durable,
            lag,
            commits,
            stop,
            thread: Some(thread),
        };
        Ok((feed, rx))
    }

    /// Reads the consumer's per-partition lag (librdkafka's statistics) from any thread.
    pub fn lag_probe(&self) -> crate::source::kafka::LagProbe {
        self.lag.clone()
    }

    /// A callback for [`super::run::Control::on_durable`].
    pub fn durable(&self) -> OnDurable {
        let durable = self.durable.clone();
        let commits = self.commits.clone();
        Box::new(move |offsets: &[(i32, i64)]| {
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
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::warn!("the kafka consumer thread panicked");
            }
        }
    }
}

/// The consumer thread: commit what is durable, poll, pass records and revocations on.
fn consume(
    mut source: KafkaSource,
    tx: &mpsc::Sender<std::io::Result<Feed>>,
    queue: &std_mpsc::Receiver<Vec<(i32, i64)>>,
    durable: &Durable,
    stop: &AtomicBool,
) {
    let topic = source.topic().to_owned();
    let mut backoff = BACKOFF_MIN;
    // A `CaughtUp` mark was sent and no record came since.
    let mut told_caught_up = false;
    loop {
        commit_queued(&source, queue, durable);
        if stop.load(Ordering::SeqCst) || tx.is_closed() {
            // The pipeline returned: its last offsets are queued (or it failed).
            commit_queued(&source, queue, durable);
            return;
        }
        let batch = match source.poll_batch(POLL_MAX, POLL_WAIT) {
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
        let records: Vec<Record> = batch
            .into_iter()
            .filter_map(|m| {
                Some(Record {
                    stream: kafka_stream_id(&topic, m.partition),
                    offset: u64::try_from(m.offset).ok()?,
                    partition: Some(m.partition),
                    payload: m.payload,
                })
            })
            .collect();
        // The batch ended at a rebalance, if any: its records come before the marks.
        let marks = rebalance_marks(source.take_rebalance_events());
        let idle = records.is_empty() && marks.is_empty();
        if !idle {
            told_caught_up = false;
        }
        if !records.is_empty() && tx.blocking_send(Ok(Feed::Records(records))).is_err() {
            continue; // the pipeline is gone: commit what it queued, then stop
        }
        for mark in marks {
            if tx.blocking_send(Ok(mark)).is_err() {
                break;
            }
        }
        if idle && !told_caught_up && caught_up(&source.assignment(), &source.lag()) {
            // Nothing arrived for a whole poll and every owned partition's committed offset
            // is at its end: the pipeline may publish a watermark of now.
            told_caught_up = tx.blocking_send(Ok(Feed::CaughtUp)).is_ok();
        }
    }
}

/// Whether every owned partition is drained: the latest statistics report each with a
/// consumer lag of zero (committed offset at the high watermark). No partition owned, or a
/// partition without statistics yet, is not caught up.
fn caught_up(owned: &[i32], lag: &[PartitionLag]) -> bool {
    !owned.is_empty()
        && owned.iter().all(|p| {
            lag.iter()
                .any(|l| l.partition == *p && l.consumer_lag == Some(0))
        })
}

/// The feed marks of rebalance events, in order.
fn rebalance_marks(events: Vec<RebalanceEvent>) -> Vec<Feed> {
    let mut marks = Vec::with_capacity(events.len());
    for event in events {
        match event {
            RebalanceEvent::Revoked(_) => marks.push(Feed::Revoked),
            RebalanceEvent::Assigned(parts) => marks.push(Feed::Assigned(parts)),
            RebalanceEvent::Failed(_) => {
                marks.push(Feed::Revoked);
                marks.push(Feed::Assigned(Vec::new()));
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

    fn lag(partition: i32, consumer_lag: Option<i64>) -> PartitionLag {
        PartitionLag {
            partition,
            high_watermark: None,
            committed: None,
            consumer_lag,
        }
    }

    #[test]
    fn caught_up_needs_every_owned_partition_at_zero_lag() {
        let drained = [lag(0, Some(0)), lag(1, Some(0)), lag(2, Some(7))];
        assert!(caught_up(&[0, 1], &drained));
        assert!(!caught_up(&[0, 1, 2], &drained), "partition 2 is behind");
        assert!(!caught_up(&[0, 3], &drained), "no statistics for 3 yet");
        assert!(!caught_up(&[0], &[lag(0, None)]), "lag unknown");
        assert!(!caught_up(&[], &drained), "owning nothing is not caught up");
    }

    #[test]
    fn marks_keep_the_order_of_the_rebalance() {
        let marks = rebalance_marks(vec![
            RebalanceEvent::Revoked(vec![0, 1]),
            RebalanceEvent::Assigned(vec![0, 1, 2, 3]),
            RebalanceEvent::Failed("boom".into()),
        ]);
        let shown: Vec<String> = marks
            .iter()
            .map(|m| match m {
                Feed::Revoked => "revoked".to_owned(),
                Feed::Assigned(p) => format!("assigned {p:?}"),
                _ => "other".to_owned(),
            })
            .collect();
        assert_eq!(
            shown,
            ["revoked", "assigned [0, 1, 2, 3]", "revoked", "assigned []"]
        );
    }
}
