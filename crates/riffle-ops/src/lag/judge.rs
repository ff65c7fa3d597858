//! How each source is judged ([`LagReport::build`]): the store's watermarks and partition
//! marks and the broker's view of its group, joined per partition, against the threshold
//! (see the docs of [`crate::lag`]).

use std::time::Duration;

use riffle_core::Timestamp;
use riffle_registry::{FeatureGroup, Registry};
use riffle_store::watermark::SourceWatermark;

use super::broker::BrokerView;
use super::report::{
    millis, show, BrokerSummary, GroupLag, LagReport, PartitionLag, PublisherLag, SourceLag, Status,
};

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
}

fn since(now: Timestamp, ms: i64) -> u64 {
    (now.millis() - ms).max(0) as u64
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
