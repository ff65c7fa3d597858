//! Which of the Kafka feed's owned partitions have been read to their end: told to the
//! pipeline once per catch-up, so an idle partition's watermark advances to now.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use crate::feed::kafka::source::PartitionLag;

/// Which owned partitions were told drained, and when each last brought a record.
#[derive(Default)]
pub(super) struct Drained {
    told: BTreeSet<i32>,
    last_record: HashMap<i32, Instant>,
}

impl Drained {
    pub(super) fn records_of(&mut self, partitions: &[i32]) {
        let now = Instant::now();
        for &p in partitions {
            self.told.remove(&p);
            self.last_record.insert(p, now);
        }
    }

    pub(super) fn rebalanced(&mut self) {
        // The pipeline forgets what it knew of its streams on a revocation.
        self.told.clear();
    }

    /// The owned partitions drained now and not told yet: the statistics (newer than the
    /// partition's last record) put its committed offset at its end. No statistics yet, or
    /// lag unknown, is not drained.
    pub(super) fn newly_drained(
        &mut self,
        owned: &[i32],
        lag: &[PartitionLag],
        reported_at: Option<Instant>,
    ) -> Vec<i32> {
        let Some(reported_at) = reported_at else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for &p in owned {
            let at_end = lag
                .iter()
                .any(|l| l.partition == p && l.consumer_lag == Some(0));
            let newer = self.last_record.get(&p).is_none_or(|t| *t < reported_at);
            if at_end && newer && self.told.insert(p) {
                out.push(p);
            }
        }
        out
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
    fn a_partition_is_drained_once_per_catch_up_by_statistics_newer_than_its_records() {
        let stats = [lag(0, Some(0)), lag(1, Some(0)), lag(2, Some(7))];
        let mut d = Drained::default();
        assert!(
            d.newly_drained(&[0, 1, 2], &stats, None).is_empty(),
            "no statistics yet"
        );
        let before = Instant::now();
        assert_eq!(d.newly_drained(&[0, 1, 2, 3], &stats, Some(before)), [0, 1]);
        assert!(
            d.newly_drained(&[0, 1], &stats, Some(before)).is_empty(),
            "told once"
        );
        // Partition 1 brings a record: statistics from before it do not drain it again.
        d.records_of(&[1]);
        assert!(d.newly_drained(&[0, 1], &stats, Some(before)).is_empty());
        assert_eq!(d.newly_drained(&[0, 1], &stats, Some(Instant::now())), [1]);
        assert!(d
            .newly_drained(&[0], &[lag(0, None)], Some(Instant::now()))
            .is_empty());
        // After a rebalance the pipeline forgot: tell again.
        d.rebalanced();
        assert_eq!(
            d.newly_drained(&[0, 1], &stats, Some(Instant::now())),
            [0, 1]
        );
    }
}
