//! The sources' event-time watermarks, as published by `riffle ingest` and combined by
//! `riffle_store::watermark`, held in memory for the read path and refreshed in the
//! background every [`REFRESH_EVERY`] — never read from the store on a request.
//!
//! A group fed by a source is exact as of how far its pipeline has processed, whatever the
//! entity's own last event: an idle entity's old row is still right, a busy entity's row is
//! wrong when the pipeline is behind. So [`WatermarkBoard::basis`] ages every row of such a
//! group from a watermark: a row written from Kafka by the mark of the partition its
//! entity's events arrive on (the row names it), so a stalled partition makes exactly its
//! entities stale; any other row by the source's watermark (the slowest partition of its
//! topic; for other inputs the MIN over live publishers, or with none live the last
//! published one); with none ever published, the row's own event time. Groups without a
//! source always use the row's event time.

use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use riffle_core::Timestamp;
use riffle_registry::Registry;
use riffle_store::watermark::{self, SourceWatermark};
use riffle_store::OnlineStore;

/// How often the watermarks are read from the store.
pub const REFRESH_EVERY: Duration = Duration::from_secs(1);

/// What a group's freshness is measured from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// The watermark of the Kafka partition the row's events arrive on.
    Partition(Timestamp),
    /// The source's watermark: its slowest partition, or its live workers' (ingest running).
    Watermark(Timestamp),
    /// The last watermark published before ingest stopped.
    LastWatermark(Timestamp),
    /// The row's own event time (no source, or no watermark ever published).
    EventTime,
}

impl Basis {
    pub fn as_str(self) -> &'static str {
        match self {
            Basis::Partition(_) => "partition_watermark",
            Basis::Watermark(_) => "watermark",
            Basis::LastWatermark(_) => "last_watermark",
            Basis::EventTime => "event_ts",
        }
    }

    /// The basis of a row read from the store under `read_at` and served now under
    /// `self`: the older of the two, as a copy kept since is only as new as the pipeline
    /// was when it was read. A watermark that has not moved keeps its present kind (such as
    /// `last_watermark` once ingest stopped).
    pub fn kept_since(self, read_at: Basis) -> Basis {
        match (self.watermark(), read_at.watermark()) {
            (Some(now), Some(then)) if then < now => read_at,
            _ => self,
        }
    }

    /// The watermark, for a basis that is one.
    pub fn watermark(self) -> Option<Timestamp> {
        match self {
            Basis::Partition(t) | Basis::Watermark(t) | Basis::LastWatermark(t) => Some(t),
            Basis::EventTime => None,
        }
    }

    /// The time a row with event time `event_ts` is aged from.
    pub fn time_for(self, event_ts: Timestamp) -> Timestamp {
        self.watermark().unwrap_or(event_ts)
    }
}

/// The last read watermark of every registry source, by source index.
pub struct WatermarkBoard {
    registry: Arc<Registry>,
    store: Arc<OnlineStore>,
    sources: RwLock<Vec<Option<SourceWatermark>>>,
}

impl WatermarkBoard {
    pub fn new(registry: Arc<Registry>, store: Arc<OnlineStore>) -> Self {
        let sources = RwLock::new(vec![None; registry.sources.len()]);
        Self {
            registry,
            store,
            sources,
        }
    }

    /// Reads every source's records from the store once. A failed read keeps the previous
    /// answer (the store may be briefly unavailable; the read path has its own fallbacks).
    pub async fn refresh(&self) {
        let now = Timestamp::now();
        for (i, source) in self.registry.sources.iter().enumerate() {
            match watermark::read_source(&self.store, &source.name, now).await {
                Ok(w) => {
                    let mut all = self.sources.write().unwrap_or_else(|p| p.into_inner());
                    if let Some(slot) = all.get_mut(i) {
                        *slot = Some(w);
                    }
                }
                Err(e) => {
                    tracing::debug!(source = %source.name, error = %e, "watermark refresh failed")
                }
            }
        }
    }

    /// Refreshes `board` every [`REFRESH_EVERY`] until it is dropped.
    pub fn spawn_refresher(board: &Arc<Self>) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let weak: Weak<Self> = Arc::downgrade(board);
        handle.spawn(async move {
            let mut tick = tokio::time::interval(REFRESH_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(board) = weak.upgrade() else { return };
                board.refresh().await;
            }
        });
    }

    /// The last read watermark of source `source`, if any was read.
    pub fn source(&self, source: usize) -> Option<SourceWatermark> {
        let all = self.sources.read().unwrap_or_else(|p| p.into_inner());
        all.get(source).cloned().flatten()
    }

    /// What rows of group `group` whose events arrive on `partition` (a row written from
    /// Kafka names it; `None` for the group as a whole) are aged from now (see the module
    /// docs).
    pub fn basis(&self, group: usize, partition: Option<u32>) -> Basis {
        let Some(source) = self.registry.groups.get(group).and_then(|g| g.source) else {
            return Basis::EventTime;
        };
        let all = self.sources.read().unwrap_or_else(|p| p.into_inner());
        let Some(Some(w)) = all.get(source) else {
            return Basis::EventTime;
        };
        let at = |ms: i64| Timestamp::from_millis(ms).ok();
        if let Some(marks) = &w.partitions {
            let own = partition.and_then(|p| marks.of(p)).and_then(at);
            return match (own, marks.min_ms().and_then(at)) {
                (Some(t), _) => Basis::Partition(t),
                (None, Some(t)) => Basis::Watermark(t),
                (None, None) => Basis::EventTime,
            };
        }
        match (w.live_ms.and_then(at), w.last_ms.and_then(at)) {
            (Some(t), _) => Basis::Watermark(t),
            (None, Some(t)) => Basis::LastWatermark(t),
            (None, None) => Basis::EventTime,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms).unwrap()
    }

    #[test]
    fn a_kept_copy_is_as_old_as_the_watermark_it_was_read_at() {
        let read_at = Basis::Watermark(at(1_000));
        assert_eq!(Basis::Watermark(at(5_000)).kept_since(read_at), read_at);
        assert_eq!(
            Basis::Partition(at(5_000)).kept_since(Basis::Partition(at(4_000))),
            Basis::Partition(at(4_000))
        );
        // Unmoved, it takes the present kind: ingest stopped since.
        assert_eq!(
            Basis::LastWatermark(at(1_000)).kept_since(read_at),
            Basis::LastWatermark(at(1_000))
        );
        // Read before any watermark was published: aged by the present basis.
        assert_eq!(
            Basis::Watermark(at(5_000)).kept_since(Basis::EventTime),
            Basis::Watermark(at(5_000))
        );
        assert_eq!(Basis::EventTime.kept_since(read_at), Basis::EventTime);
    }
}
