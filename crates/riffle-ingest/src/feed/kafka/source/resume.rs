//! Resuming an assigned partition exactly at the group's committed offset, and saying so
//! when messages are never delivered.
//!
//! A broker that fetches only whole producer batches starting at or after the fetch offset
//! (tansu 0.6) skips the rest of a batch when the committed offset falls inside it, which
//! it does whenever a flush ended mid-batch; when that batch is the newest, the fetch brings
//! nothing at all. So an assigned partition with a committed offset `c` is fetched from
//! [`REWIND`] messages earlier (librdkafka's producer batches hold at most that many, so the
//! batch holding `c` starts within it), and its messages before `c` are dropped here, never
//! handed on. On a broker that serves the batch holding `c` (Kafka) this costs fetching
//! those messages once per assignment.
//!
//! The first message at or after `c` must be at `c`. One beyond it means offsets
//! `c..first` were never delivered: removed by retention before they were read (the
//! pipeline fell that far behind), compacted, or a batch larger than [`REWIND`]. That is
//! logged with the offsets and counted ([`Resume::gaps`]), never passed over silently.

use std::collections::HashMap;

/// How many messages before the committed offset an assigned partition is fetched from.
pub const REWIND: i64 = 10_000;

/// What to do with a message just polled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Hand it on.
    Keep,
    /// Drop it: it comes before the committed offset (fetched only to reach it).
    Drop,
}

/// Every assigned partition's committed offset until its first message at or after it,
/// and the gaps met.
#[derive(Debug, Default)]
pub struct Resume {
    committed: HashMap<i32, i64>,
    gaps: u64,
}

impl Resume {
    /// A new assignment: the committed offset of each partition that has one.
    pub fn assigned(&mut self, committed: impl IntoIterator<Item = (i32, i64)>) {
        self.committed = committed.into_iter().collect();
    }

    /// Where to fetch a partition committed at `committed` from.
    pub fn fetch_from(committed: i64) -> i64 {
        (committed - REWIND).max(0)
    }

    /// Judges a message at `offset` of `partition` (see the module docs).
    pub fn check(&mut self, partition: i32, offset: i64) -> Verdict {
        if self.committed.is_empty() {
            return Verdict::Keep;
        }
        let Some(&c) = self.committed.get(&partition) else {
            return Verdict::Keep;
        };
        if offset < c {
            return Verdict::Drop;
        }
        self.committed.remove(&partition);
        if offset > c {
            self.gaps += 1;
            tracing::error!(
                partition,
                from = c,
                to = offset,
                "kafka offsets were never delivered (removed by retention or compaction before they were read?): their events are missing"
            );
        }
        Verdict::Keep
    }

    /// Gaps met so far: offsets of an assigned partition never delivered.
    pub fn gaps(&self) -> u64 {
        self.gaps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_before_the_commit_are_dropped_and_the_commit_kept() {
        let mut r = Resume::default();
        r.assigned([(0, 12_345), (1, 50)]);
        assert_eq!(Resume::fetch_from(12_345), 2_345);
        assert_eq!(Resume::fetch_from(50), 0);
        assert_eq!(
            r.check(0, 12_300),
            Verdict::Drop,
            "fetched only to reach the commit"
        );
        assert_eq!(r.check(0, 12_345), Verdict::Keep);
        assert_eq!(r.check(0, 12_346), Verdict::Keep);
        assert_eq!(
            r.check(0, 12_000),
            Verdict::Keep,
            "judged once per assignment"
        );
        assert_eq!(r.check(1, 50), Verdict::Keep);
        // Partitions without a commit are not judged.
        assert_eq!(r.check(2, 9_999), Verdict::Keep);
        assert_eq!(r.gaps(), 0);
    }

    /// Retention removed messages before they were read: the first message after the
    /// commit is beyond it; the gap is counted and the reading goes on.
    #[test]
    fn a_gap_is_counted_and_passed() {
        let mut r = Resume::default();
        r.assigned([(0, 100)]);
        assert_eq!(r.check(0, 5_000), Verdict::Keep);
        assert_eq!(r.gaps(), 1);
        assert_eq!(r.check(0, 5_001), Verdict::Keep);
        assert_eq!(r.gaps(), 1);
    }
}
