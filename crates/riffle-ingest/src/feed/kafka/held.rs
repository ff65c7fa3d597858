//! What the Kafka feed's consumer thread has polled and the pipeline's channel has not taken
//! yet: handed over in order, the partitions paused while the channel is full, records of
//! revoked partitions dropped at a rebalance.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::feed::item::Feed;
use crate::feed::kafka::source::{KafkaSource, RebalanceEvent};

/// What the consumer thread has taken from the broker and the channel has not taken yet,
/// in order, and since when the channel has refused it.
#[derive(Default)]
pub(super) struct Held {
    items: VecDeque<Feed>,
    /// Since when the channel has been full with items held (the pipeline takes nothing).
    full_since: Option<Instant>,
    /// Whether the held partitions are paused.
    paused: bool,
}

impl Held {
    pub(super) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub(super) fn push(&mut self, item: Feed) {
        self.items.push_back(item);
    }

    /// Hands over as much as the channel takes, in order. `Err` when the pipeline is gone.
    pub(super) fn hand_over(&mut self, tx: &mpsc::Sender<std::io::Result<Feed>>) -> Result<(), ()> {
        while let Some(item) = self.items.pop_front() {
            match tx.try_send(Ok(item)) {
                Ok(()) => self.full_since = None,
                Err(mpsc::error::TrySendError::Full(Ok(item))) => {
                    self.items.push_front(item);
                    self.full_since.get_or_insert_with(Instant::now);
                    return Ok(());
                }
                Err(_) => return Err(()),
            }
        }
        self.full_since = None;
        Ok(())
    }

    /// How long the channel has refused what is held (`None`: nothing is held).
    pub(super) fn stalled_for(&self) -> Option<Duration> {
        self.full_since.map(|t| t.elapsed())
    }

    /// Pauses the held partitions while something is held (the pipeline is full), resumes
    /// them once everything is handed over: the thread keeps polling either way, so the
    /// group's heartbeats and rebalances are served whatever the pipeline does, and memory
    /// stays bounded by one poll's messages.
    pub(super) fn pause_while_full(&mut self, source: &KafkaSource) {
        let want = !self.items.is_empty();
        if want == self.paused {
            return;
        }
        let done = if want {
            source.pause()
        } else {
            source.resume()
        };
        match done {
            Ok(()) => self.paused = want,
            Err(error) => tracing::debug!(%error, "kafka pause/resume failed; retrying"),
        }
    }

    /// A rebalance moved partitions: records held of revoked ones are dropped (the next
    /// owner reads them from the last commit), and newly assigned partitions are not paused.
    pub(super) fn rebalanced(&mut self, events: &[RebalanceEvent]) {
        let mut revoked: Vec<i32> = Vec::new();
        let mut all = false;
        for e in events {
            match e {
                RebalanceEvent::Revoked(parts) => revoked.extend(parts),
                RebalanceEvent::Failed(_) => all = true,
                RebalanceEvent::Assigned(_) => {}
            }
        }
        if all {
            self.drop_records();
        } else if !revoked.is_empty() {
            for item in &mut self.items {
                if let Feed::Records(records) = item {
                    records.retain(|r| r.partition.is_none_or(|p| !revoked.contains(&p)));
                }
            }
            self.items
                .retain(|i| !matches!(i, Feed::Records(r) if r.is_empty()));
        }
        self.paused = false;
    }

    /// Drops every held record (the marks stay): the partitions are given up.
    pub(super) fn drop_records(&mut self) {
        self.items.retain(|i| !matches!(i, Feed::Records(_)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::item::Record;

    fn records(partition: i32, n: usize) -> Feed {
        Feed::Records(
            (0..n)
                .map(|i| Record {
                    stream: partition as u64,
                    offset: i as u64,
                    partition: Some(partition),
                    payload: Vec::new(),
                })
                .collect(),
        )
    }

    /// A full channel holds items in order; a revocation drops the held records of the
    /// revoked partitions (never handed over: the next owner reads them) and keeps marks.
    #[test]
    fn held_items_go_in_order_and_revoked_records_are_dropped() {
        let (tx, mut rx) = mpsc::channel(1);
        let mut held = Held::default();
        held.push(records(0, 2));
        held.push(records(1, 1));
        held.push(Feed::CaughtUp(vec![7]));
        held.hand_over(&tx).unwrap();
        assert!(
            held.stalled_for().is_some(),
            "the channel took one item of three"
        );
        held.rebalanced(&[RebalanceEvent::Revoked(vec![1])]);
        assert!(matches!(rx.try_recv(), Ok(Ok(Feed::Records(r))) if r.len() == 2));
        held.hand_over(&tx).unwrap();
        assert_eq!(rx.try_recv().unwrap().unwrap(), Feed::CaughtUp(vec![7]));
        assert!(held.is_empty() && held.stalled_for().is_none());
        drop(rx);
        held.push(records(0, 1));
        assert!(held.hand_over(&tx).is_err(), "the pipeline is gone");
    }
}
