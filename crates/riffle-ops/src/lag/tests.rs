//! The lag verdicts on fixed inputs: live workers do not hide a stalled partition, the
//! broker's view fails a partition nobody commits on or nobody owns, and a rebalance in
//! progress is not a failure by itself.

use std::time::Duration;

use riffle_core::Timestamp;
use riffle_registry::Registry;
use riffle_store::watermark::{PartitionMark, SourceWatermark, WatermarkRecord};

use super::*;

const REGISTRY: &str = r#"
[[entities]]
name = "user"
[[sources]]
name = "tx"
entity = "user"
kind = "file"
path = "e.ndjson"
time_field = "t"
fields = [{ name = "amount", type = "float64" }]
[[feature_groups]]
name = "v"
entity = "user"
source = "tx"
ttl = "1h"
freshness_slo = "30s"
features = [{ name = "n", type = "int64", default = 0, aggregation = "count", window = "1h" }]
"#;

const MIN: i64 = 60_000;

fn now() -> Timestamp {
    Timestamp::from_millis(1_800_000_000_000).unwrap()
}

fn live_worker() -> WatermarkRecord {
    let n = now().millis();
    WatermarkRecord {
        watermark_ms: n - 1_000,
        published_at_ms: n - 500,
        events_applied_total: 10,
        publisher: "h:1".into(),
    }
}

/// A partition's mark `behind_ms` behind now; one more than a minute behind was last
/// published then (nobody marks it any more), others half a second ago.
fn mark(partition: u32, behind_ms: i64) -> PartitionMark {
    let n = now().millis();
    PartitionMark {
        topic: "t".into(),
        partition,
        partition_count: 4,
        watermark_ms: n - behind_ms,
        published_at_ms: if behind_ms > MIN {
            n - behind_ms
        } else {
            n - 500
        },
        publisher: "h:1".into(),
        next_offset: Some(5),
    }
}

fn partition(p: u32, lag: Option<u64>, owner: Option<&str>) -> BrokerPartition {
    BrokerPartition {
        partition: p,
        end_offset: Some(100),
        committed: Some(if lag.is_some_and(|l| l > 0) { 90 } else { 100 }),
        lag_messages: Some(if lag.is_some_and(|l| l > 0) { 10 } else { 0 }),
        lag: lag.map(Duration::from_millis),
        owner: owner.map(str::to_owned),
    }
}

fn view(state: &str, partitions: Vec<BrokerPartition>) -> BrokerView {
    BrokerView {
        topic: "t".into(),
        group: "g".into(),
        state: state.into(),
        members: vec![BrokerMember {
            name: "riffle-ingest-1@/127.0.0.1".into(),
            partitions: vec![2, 3],
        }],
        partitions,
    }
}

fn report(marks: Vec<PartitionMark>, broker: Option<Result<BrokerView, String>>) -> LagReport {
    let registry = Registry::from_toml(REGISTRY).unwrap();
    let watermark = SourceWatermark::from_records(vec![live_worker()], marks, now());
    let input = SourceInput {
        source: 0,
        watermark,
        broker,
    };
    LagReport::build(&registry, vec![input], Duration::from_secs(300), now())
}

#[test]
fn all_partitions_current_and_owned_is_ok() {
    let marks = (0..4).map(|p| mark(p, 1_000)).collect();
    let owner = Some("riffle-ingest-1@/127.0.0.1");
    let broker = view(
        "Stable",
        (0..4).map(|p| partition(p, Some(0), owner)).collect(),
    );
    let r = report(marks, Some(Ok(broker)));
    assert!(r.ok, "{:?}", r.sources[0].problems);
    assert_eq!(r.sources[0].partitions.len(), 4);
    assert_eq!(r.sources[0].groups[0].freshness, "fresh");
}

/// The issue's silent failure: the live worker publishes a fresh record, but two
/// partitions are owned by nobody and their marks fall behind.
#[test]
fn live_workers_do_not_hide_unowned_partitions() {
    let marks = vec![
        mark(0, 10 * MIN),
        mark(1, 10 * MIN),
        mark(2, 1_000),
        mark(3, 1_000),
    ];
    let owner = Some("riffle-ingest-1@/127.0.0.1");
    let broker = view(
        "Stable",
        vec![
            partition(0, Some(9 * MIN as u64), None),
            partition(1, Some(9 * MIN as u64), None),
            partition(2, Some(0), owner),
            partition(3, Some(0), owner),
        ],
    );
    let r = report(marks, Some(Ok(broker)));
    assert!(!r.ok);
    let s = &r.sources[0];
    assert_eq!(s.status, Status::Unowned);
    assert_eq!(s.lag_ms, Some(10 * MIN as u64), "the slowest partition");
    let statuses: Vec<&str> = s.partitions.iter().map(|p| p.status).collect();
    assert_eq!(statuses, ["unowned", "unowned", "ok", "ok"]);
    assert!(
        r.failures().contains("partition 0: owned by no member"),
        "{}",
        r.failures()
    );
    assert_eq!(
        s.groups[0].freshness, "stale",
        "aged by the slowest partition"
    );
    // The table shows who owns what.
    let text = table(&r);
    assert!(
        text.contains("(nobody)") && text.contains("riffle-ingest-1"),
        "{text}"
    );
    let json = to_json(&r);
    assert_eq!(
        json["sources"][0]["partitions"][0]["owner"],
        serde_json::Value::Null
    );
    assert_eq!(json["sources"][0]["consumer_group"]["state"], "Stable");
}

/// A member that holds a partition and never commits: owned, but its oldest uncommitted
/// message ages past the threshold.
#[test]
fn an_owned_partition_nobody_commits_on_is_behind() {
    let marks = (0..4).map(|p| mark(p, 1_000)).collect();
    let broker = view(
        "Stable",
        vec![
            partition(0, Some(6 * MIN as u64), Some("rdkafka@/127.0.0.1")),
            partition(1, Some(0), Some("riffle-ingest-1@/127.0.0.1")),
            partition(2, Some(0), Some("riffle-ingest-1@/127.0.0.1")),
            partition(3, Some(0), Some("riffle-ingest-1@/127.0.0.1")),
        ],
    );
    let r = report(marks, Some(Ok(broker)));
    assert_eq!(r.sources[0].status, Status::Behind);
    assert_eq!(r.sources[0].partitions[0].status, "behind");
    assert!(r.failures().contains("oldest uncommitted message"));
}

/// A broker that describes members without their assignments (tansu): who owns a
/// partition is judged from the marks, so a partition no live worker marks fails.
#[test]
fn without_assignments_from_the_broker_the_marks_tell_who_owns_what() {
    let marks = vec![
        mark(0, 10 * MIN),
        mark(1, 1_000),
        mark(2, 1_000),
        mark(3, 1_000),
    ];
    let mut broker = view(
        "Stable",
        (0..4).map(|p| partition(p, Some(0), None)).collect(),
    );
    broker.members[0].partitions.clear();
    let r = report(marks, Some(Ok(broker)));
    let s = &r.sources[0];
    assert_eq!(s.status, Status::Unowned);
    let owners: Vec<Option<&str>> = s.partitions.iter().map(|p| p.owner.as_deref()).collect();
    assert_eq!(
        owners,
        [
            None,
            Some("riffle h:1"),
            Some("riffle h:1"),
            Some("riffle h:1")
        ]
    );
    assert!(
        r.failures()
            .contains("partition 0: no live worker marked it"),
        "{}",
        r.failures()
    );
}

#[test]
fn a_rebalance_in_progress_is_not_a_failure_by_itself() {
    let marks = (0..4).map(|p| mark(p, 1_000)).collect();
    let broker = view(
        "PreparingRebalance",
        (0..4).map(|p| partition(p, Some(0), None)).collect(),
    );
    assert!(report(marks, Some(Ok(broker))).ok);
}

#[test]
fn a_partition_never_published_or_an_unreadable_group_fails() {
    let marks = vec![mark(0, 1_000), mark(1, 1_000), mark(2, 1_000)];
    let r = report(marks.clone(), None);
    assert_eq!(r.sources[0].status, Status::Unowned);
    assert!(r
        .failures()
        .contains("partition 3: no worker ever published"));
    let mut all = marks;
    all.push(mark(3, 1_000));
    let r = report(all, Some(Err("broker unreachable".into())));
    assert!(!r.ok);
    assert!(
        r.failures().contains("could not be read"),
        "{}",
        r.failures()
    );
}

#[test]
fn without_partition_marks_the_live_workers_decide() {
    let r = report(Vec::new(), None);
    assert!(r.ok);
    assert_eq!(r.sources[0].lag_ms, Some(1_000));
    let registry = Registry::from_toml(REGISTRY).unwrap();
    let nobody = SourceInput {
        source: 0,
        watermark: SourceWatermark::from_records(Vec::new(), Vec::new(), now()),
        broker: None,
    };
    let r = LagReport::build(&registry, vec![nobody], Duration::from_secs(300), now());
    assert_eq!(r.sources[0].status, Status::NotPublishing);
}
