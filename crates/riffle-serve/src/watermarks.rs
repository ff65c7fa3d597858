//! The sources' event-time watermarks, as published by `riffle ingest` (see
//! `riffle_store::meta`), held in memory for the read path and refreshed in the background
//! every [`REFRESH_EVERY`] — never read from the store on a request.
//!
//! A group fed by a source is exact as of how far its pipeline has processed, whatever the
//! entity's own last event: an idle entity's old row is still right, a busy entity's row is
//! wrong when the pipeline is behind. So [`WatermarkBoard::basis`] ages every row of such a
//! group from the source's watermark: the MIN over live publishers; with no live publisher
//! (ingest stopped), the last published one; with none ever published, the row's own
//! event time. Groups without a source always use the row's event time.

use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use riffle_core::Timestamp;
use riffle_registry::Registry;
use riffle_store::meta::{watermark_name, SourceWatermark, WatermarkRecord};
use riffle_store::OnlineStore;

/// How often the watermarks are read from the store.
pub const REFRESH_EVERY: Duration = Duration::from_secs(1);

/// What a group's freshness is measured from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// The source's live watermark (ingest running).
    Watermark(Timestamp),
    /// The last watermark published before ingest stopped.
    LastWatermark(Timestamp),
    /// The row's own event time (no source, or no watermark ever published).
    EventTime,
}

impl Basis {
    pub fn as_str(self) -> &'static str {
        match self {
            Basis::Watermark(_) => "watermark",
            Basis::LastWatermark(_) => "last_watermark",
            Basis::EventTime => "event_ts",
        }
    }

    /// The time a row with event time `event_ts` is aged from.
    pub fn time_for(self, event_ts: Timestamp) -> Timestamp {
        match self {
            Basis::Watermark(t) | Basis::LastWatermark(t) => t,
            Basis::EventTime => event_ts,
        }
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
            match self.store.get_meta(&watermark_name(&source.name)).await {
                Ok(raw) => {
                    let records = raw
                        .iter()
                        .filter_map(|(_, bytes)| WatermarkRecord::decode(bytes))
                        .collect();
                    let w = SourceWatermark::from_records(records, now);
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

    /// What rows of group `group` are aged from now (see the module docs).
    pub fn basis(&self, group: usize) -> Basis {
        let Some(source) = self.registry.groups.get(group).and_then(|g| g.source) else {
            return Basis::EventTime;
        };
        let all = self.sources.read().unwrap_or_else(|p| p.into_inner());
        let Some(Some(w)) = all.get(source) else {
            return Basis::EventTime;
        };
        let at = |ms: i64| Timestamp::from_millis(ms).ok();
        match (w.live_ms.and_then(at), w.last_ms.and_then(at)) {
            (Some(t), _) => Basis::Watermark(t),
            (None, Some(t)) => Basis::LastWatermark(t),
            (None, None) => Basis::EventTime,
        }
    }
}
