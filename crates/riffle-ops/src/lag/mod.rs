//! `riffle lag`: how far each source's ingest is behind, from two sides that fail
//! differently, joined per Kafka partition.
//!
//! - **The store** (`riffle_store::watermark`): the event-time watermarks the workers
//!   publish after each durable flush, per worker and per Kafka partition. A source read
//!   from Kafka is as far as its slowest partition, whatever its live workers say.
//! - **The broker** ([`BrokerView`], read by the binary from the consumer group, as Burrow
//!   or `kafka-consumer-groups` do): per partition the end offset, the group's committed
//!   offset, the lag in messages and in time (the age of the oldest message not committed),
//!   and the member that owns it. This side sees what the store cannot: a partition that
//!   nobody commits on shows growing lag even when no Riffle worker is alive, or when a
//!   member that does not progress (a stuck worker, another application under the same
//!   group id) holds it.
//!
//! Who owns a partition comes from the members' assignments when the broker reports them
//! (Kafka does); a broker that does not (tansu 0.6 describes members without their
//! assignments) leaves the partition marks to tell: a live worker marks every partition it
//! owns after each flush, so a partition not marked for 10 s has no live Riffle worker.
//!
//! A source fails the check ([`LagReport::ok`] false, exit 3) when its watermark or one of
//! its partitions is more than the threshold behind, when no worker publishes, when a
//! partition of its topic was never published, when the broker puts a partition's oldest
//! uncommitted message more than the threshold in the past, or when a partition is owned by
//! no member of a group that is not rebalancing. [`table`] and [`to_json`] print it.

mod render;

use std::time::Duration;

use riffle_core::Timestamp;
use riffle_registry::{FeatureGroup, Registry};
use riffle_store::watermark::SourceWatermark;

pub use render::{table, to_json};

/// The consumer group of a Kafka source as the broker sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerView {
    pub topic: String,
    pub group: String,
    /// The group's state as the coordinator names it (`Stable`, `PreparingRebalance`,
    /// `CompletingRebalance`, `Empty`, `Dead`), empty when it did not say.
    pub state: String,
    pub members: Vec<BrokerMember>,
    /// Every partition of the topic, in order.
    pub partitions: Vec<BrokerPartition>,
}

impl BrokerView {
    /// Whether the group is between rebalances (partitions may be briefly unowned while
    /// one runs).
    pub fn rebalancing(&self) -> bool {
        self.state.contains("Rebalance")
    }

    /// Whether the broker reported the members' assignments (a member holds something);
    /// when it did not, ownership is judged from the partition marks.
    pub fn assignments_known(&self) -> bool {
        self.members.iter().any(|m| !m.partitions.is_empty())
    }
}

/// A member of the group.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerMember {
    /// `client.id@host` as the member reported them (a Riffle worker's client id is
    /// `riffle-ingest-<pid>`).
    pub name: String,
    pub partitions: Vec<u32>,
}

/// One partition as the broker sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerPartition {
    pub partition: u32,
    /// The offset the next message will get, when known.
    pub end_offset: Option<i64>,
    /// The group's committed offset (the next message it will read), when it has one.
    pub committed: Option<i64>,
    /// Messages not committed (`end − committed`, or `end − start` before any commit).
    pub lag_messages: Option<i64>,
    /// How old the oldest message not committed is (0 when none is pending).
    pub lag: Option<Duration>,
    /// The member holding it, by [`BrokerMember::name`]; `None`: no member does.
    pub owner: Option<String>,
}

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

/// The group-wide part of a [`BrokerView`].
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

/// What is known of one source: its published watermarks, and for a Kafka source the
/// broker's view of its group (`Err`: it could not be read).
pub struct SourceInput {
    pub source: usize,
    pub watermark: SourceWatermark,
    pub broker: Option<Result<BrokerView, String>>,
}

impl LagReport {
    /// Judges every source against `threshold` at `now`.
    pub fn build(
        registry: &Registry,
        inputs: Vec<SourceInput>,
        threshold: Duration,
        now: Timestamp,
    ) -> Self {
        let sources: Vec<SourceLag> = inputs
            .into_iter()
            .map(|input| source_lag(registry, input, threshold, now))
            .collect();
        Self {
            threshold,
            ok: sources.iter().all(|s| s.status == Status::Ok),
            sources,
        }
    }

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

fn since(now: Timestamp, ms: i64) -> u64 {
    (now.millis() - ms).max(0) as u64
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn group_lag(group: &FeatureGroup, age: Option<u64>) -> GroupLag {
    let slo = millis(group.freshness_slo);
    let limit = millis(group.staleness_limit);
    GroupLag {
        group: group.name.clone(),
        freshness_slo_ms: slo,
        staleness_limit_ms: limit,
        implied_staleness_ms: age,
        freshness: match age {
            None => "unknown",
            Some(a) if a <= slo => "fresh",
            Some(a) if a <= limit => "stale",
            Some(_) => "expired",
        },
    }
}

/// The store's partition marks and the broker's partitions, side by side, judged.
fn partitions(
    w: &SourceWatermark,
    broker: Option<&BrokerView>,
    threshold: u64,
    now: Timestamp,
    problems: &mut Vec<String>,
) -> Vec<PartitionLag> {
    let marks = w.partitions.as_ref();
    let by_assignment = broker.is_some_and(BrokerView::assignments_known);
    let count = marks
        .map_or(0, |m| m.marks.len())
        .max(broker.map_or(0, |b| b.partitions.len()));
    let mut out = Vec::with_capacity(count);
    for p in 0..count {
        let partition = p as u32;
        let mark = marks.and_then(|m| m.marks.get(p)).and_then(Option::as_ref);
        let seen = broker.and_then(|b| b.partitions.iter().find(|x| x.partition == partition));
        let mut row = PartitionLag {
            partition,
            watermark_ms: mark.map(|m| m.watermark_ms),
            watermark_lag_ms: mark.map(|m| since(now, m.watermark_ms)),
            publisher: mark.map(|m| m.publisher.clone()),
            published_ms_ago: mark.map(|m| since(now, m.published_at_ms)),
            end_offset: seen.and_then(|s| s.end_offset),
            committed: seen.and_then(|s| s.committed),
            lag_messages: seen.and_then(|s| s.lag_messages),
            lag_ms: seen.and_then(|s| s.lag).map(millis),
            owner: if by_assignment {
                seen.and_then(|s| s.owner.clone())
            } else {
                marks
                    .and_then(|m| m.live_owner(partition, now))
                    .map(|w| format!("riffle {w}"))
            },
            status: "ok",
        };
        if let Some(lag) = row.lag_ms.filter(|l| *l > threshold) {
            row.status = "behind";
            problems.push(format!(
                "partition {p}: its oldest uncommitted message is {} old",
                show(lag)
            ));
        } else if let Some(lag) = row.watermark_lag_ms.filter(|l| *l > threshold) {
            row.status = "behind";
            problems.push(format!("partition {p}: watermark {} behind", show(lag)));
        }
        let settled = broker.is_some_and(|b| !b.rebalancing());
        if by_assignment && seen.is_some() && row.owner.is_none() && settled {
            row.status = "unowned";
            problems.push(format!(
                "partition {p}: owned by no member of group {}",
                broker.map_or("", |b| b.group.as_str())
            ));
        } else if marks.is_some() && mark.is_none() {
            row.status = "unowned";
            problems.push(format!(
                "partition {p}: no worker ever published its watermark"
            ));
        } else if !by_assignment && mark.is_some() && row.owner.is_none() {
            row.status = "unowned";
            problems.push(format!(
                "partition {p}: no live worker marked it for {} (dead, stalled, or not its owner)",
                show(row.published_ms_ago.unwrap_or(0))
            ));
        }
        out.push(row);
    }
    out
}

fn source_lag(
    registry: &Registry,
    input: SourceInput,
    threshold: Duration,
    now: Timestamp,
) -> SourceLag {
    let w = input.watermark;
    let limit = millis(threshold);
    let mut problems = Vec::new();
    let broker = input.broker.as_ref().and_then(|b| b.as_ref().ok());
    let parts = partitions(&w, broker, limit, now, &mut problems);
    let current = w.current_ms();
    let lag_ms = current.map(|ms| since(now, ms));
    let mut status = Status::Ok;
    if lag_ms.is_none() && w.partitions.is_none() {
        status = Status::NotPublishing;
        problems.insert(0, "no ingest worker is publishing".to_owned());
    } else if parts.iter().any(|p| p.status == "unowned") {
        status = Status::Unowned;
    } else if parts.iter().any(|p| p.status == "behind") || lag_ms.is_some_and(|l| l > limit) {
        status = Status::Behind;
        if w.partitions.is_none() {
            problems.push(format!("watermark {} behind", show(lag_ms.unwrap_or(0))));
        }
    }
    if status == Status::Ok && matches!(input.broker, Some(Err(_))) {
        status = Status::Unverified;
    }
    let implied = w.basis_ms().map(|ms| since(now, ms));
    let publishers = w
        .records
        .iter()
        .map(|r| PublisherLag {
            publisher: r.publisher.clone(),
            alive: r.is_alive(now),
            watermark_ms: r.watermark_ms,
            lag_ms: since(now, r.watermark_ms),
            published_ms_ago: since(now, r.published_at_ms),
            events_applied_total: r.events_applied_total,
        })
        .collect();
    SourceLag {
        source: registry.sources[input.source].name.clone(),
        status,
        problems,
        watermark_ms: current,
        lag_ms,
        last_watermark_ms: w.last_ms,
        publishers_alive: w.alive,
        publishers,
        topic: w
            .partitions
            .as_ref()
            .map(|p| p.topic.clone())
            .or_else(|| broker.map(|b| b.topic.clone())),
        partitions: parts,
        broker: input.broker.map(|b| {
            b.map(|b| BrokerSummary {
                group: b.group,
                state: b.state,
                members: b.members,
            })
        }),
        groups: registry
            .groups_of_source(input.source)
            .map(|g| group_lag(g, implied))
            .collect(),
    }
}

/// A duration in ms as people read it.
pub(crate) fn show(ms: u64) -> String {
    riffle_registry::format_duration(Duration::from_millis(ms))
}

#[cfg(test)]
mod tests;
