//! What `riffle lag` reports ([`LagReport`]): per source its [`Status`], its problems, its
//! watermarks, its partitions from both sides and its groups' implied staleness; and how
//! durations in milliseconds are shown.

use std::time::Duration;

use super::broker::BrokerMember;

/// The whole report.
#[derive(Debug, Clone)]
pub struct LagReport {
    pub threshold: Duration,
    /// True when every source passes (see the module docs).
    pub ok: bool,
    pub sources: Vec<SourceLag>,
}

/// How a source stands; when several apply, the last listed wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// Nothing wrong in the store, but the consumer group could not be read, so nothing
    /// vouches for the partitions the broker alone sees.
    Unverified,
    /// Above the threshold (its watermark, a partition's mark, or the broker's lag).
    Behind,
    /// A partition is owned by no member of a settled group, or was never published.
    Unowned,
    /// No ingest worker publishes (and no partition marks say more).
    NotPublishing,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Unverified => "unverified",
            Status::Behind => "behind",
            Status::Unowned => "unowned",
            Status::NotPublishing => "not_publishing",
        }
    }
}

/// One source.
#[derive(Debug, Clone)]
pub struct SourceLag {
    pub source: String,
    pub status: Status,
    /// Why it is not `ok`, one line per problem (the group's read error aside: `broker`).
    pub problems: Vec<String>,
    /// How far it is processed now (its slowest partition, else its live workers).
    pub watermark_ms: Option<i64>,
    /// now − that.
    pub lag_ms: Option<u64>,
    /// The newest watermark a worker ever published (also when none is live).
    pub last_watermark_ms: Option<i64>,
    pub publishers_alive: usize,
    pub publishers: Vec<PublisherLag>,
    /// The Kafka topic of the partition marks or of the broker view.
    pub topic: Option<String>,
    pub partitions: Vec<PartitionLag>,
    /// The consumer group, as the broker sees it; `Err` when it could not be read.
    pub broker: Option<Result<BrokerSummary, String>>,
    pub groups: Vec<GroupLag>,
}

/// The group-wide part of a [`BrokerView`](super::broker::BrokerView).
#[derive(Debug, Clone)]
pub struct BrokerSummary {
    pub group: String,
    pub state: String,
    pub members: Vec<BrokerMember>,
}

#[derive(Debug, Clone)]
pub struct PublisherLag {
    pub publisher: String,
    pub alive: bool,
    pub watermark_ms: i64,
    pub lag_ms: u64,
    pub published_ms_ago: u64,
    pub events_applied_total: u64,
}

/// One Kafka partition, from the store and the broker.
#[derive(Debug, Clone, Default)]
pub struct PartitionLag {
    pub partition: u32,
    /// Its published watermark (`None`: no worker ever published it).
    pub watermark_ms: Option<i64>,
    /// now − that.
    pub watermark_lag_ms: Option<u64>,
    /// The worker that published it last, and how long ago.
    pub publisher: Option<String>,
    pub published_ms_ago: Option<u64>,
    pub end_offset: Option<i64>,
    pub committed: Option<i64>,
    pub lag_messages: Option<i64>,
    /// The broker's lag in time: the age of the oldest message not committed.
    pub lag_ms: Option<u64>,
    /// Who holds it: the member, by the broker's assignments; else the Riffle worker that
    /// marked it in the last 10 s (`riffle <host>:<pid>`); `None`: nobody that can be seen.
    pub owner: Option<String>,
    /// `ok`, `behind` or `unowned`.
    pub status: &'static str,
}

#[derive(Debug, Clone)]
pub struct GroupLag {
    pub group: String,
    pub freshness_slo_ms: u64,
    pub staleness_limit_ms: u64,
    /// The age `riffle serve` gives this group's values now, by the source's watermark
    /// (null: nothing published).
    pub implied_staleness_ms: Option<u64>,
    /// `fresh`, `stale` or `expired` for that age, or `unknown`.
    pub freshness: &'static str,
}

impl LagReport {
    /// One line naming every source that failed and why (for the error message).
    pub fn failures(&self) -> String {
        self.sources
            .iter()
            .filter(|s| s.status != Status::Ok)
            .map(|s| {
                let mut why = s.problems.clone();
                if let Some(Err(e)) = &s.broker {
                    why.push(format!("the consumer group could not be read: {e}"));
                }
                format!("{}: {}", s.source, why.join("; "))
            })
            .collect::<Vec<_>>()
            .join(" | ")
    }
}

/// A duration as whole milliseconds (saturating).
pub(super) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A duration in ms as people read it.
pub(super) fn show(ms: u64) -> String {
    riffle_registry::format_duration(Duration::from_millis(ms))
}
