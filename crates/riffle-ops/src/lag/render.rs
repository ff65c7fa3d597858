//! The lag report as JSON (field for field) and as the human table.

use std::fmt::Write as _;

use riffle_core::Timestamp;
use serde_json::{json, Value};

use super::report::{millis, show, LagReport, PartitionLag, SourceLag};

/// The report as JSON, field for field.
pub fn to_json(r: &LagReport) -> Value {
    let sources: Vec<Value> = r.sources.iter().map(source_json).collect();
    json!({
        "threshold_ms": millis(r.threshold),
        "ok": r.ok,
        "sources": sources,
    })
}

fn source_json(s: &SourceLag) -> Value {
    let publishers: Vec<Value> = s
        .publishers
        .iter()
        .map(|p| {
            json!({
                "publisher": p.publisher, "alive": p.alive,
                "watermark_ms": p.watermark_ms, "lag_ms": p.lag_ms,
                "published_ms_ago": p.published_ms_ago,
                "events_applied_total": p.events_applied_total,
            })
        })
        .collect();
    let partitions: Vec<Value> = s.partitions.iter().map(partition_json).collect();
    let groups: Vec<Value> = s
        .groups
        .iter()
        .map(|g| {
            json!({
                "group": g.group, "freshness_slo_ms": g.freshness_slo_ms,
                "staleness_limit_ms": g.staleness_limit_ms,
                "implied_staleness_ms": g.implied_staleness_ms,
                "freshness": g.freshness,
            })
        })
        .collect();
    let broker = match &s.broker {
        None => Value::Null,
        Some(Err(error)) => json!({ "error": error }),
        Some(Ok(b)) => {
            let members: Vec<Value> = b
                .members
                .iter()
                .map(|m| json!({ "member": m.name, "partitions": m.partitions }))
                .collect();
            json!({ "group": b.group, "state": b.state, "members": members })
        }
    };
    json!({
        "source": s.source, "status": s.status.as_str(), "problems": s.problems,
        "watermark_ms": s.watermark_ms, "lag_ms": s.lag_ms,
        "last_watermark_ms": s.last_watermark_ms,
        "publishers_alive": s.publishers_alive, "publishers": publishers,
        "topic": s.topic, "partitions": partitions, "consumer_group": broker,
        "groups": groups,
    })
}

fn partition_json(p: &PartitionLag) -> Value {
    json!({
        "partition": p.partition, "status": p.status,
        "watermark_ms": p.watermark_ms, "watermark_lag_ms": p.watermark_lag_ms,
        "publisher": p.publisher, "published_ms_ago": p.published_ms_ago,
        "end_offset": p.end_offset, "committed": p.committed,
        "lag_messages": p.lag_messages, "lag_ms": p.lag_ms, "owner": p.owner,
    })
}

fn ms(v: Option<u64>) -> String {
    v.map_or_else(|| "-".into(), show)
}

fn num(v: Option<i64>) -> String {
    v.map_or_else(|| "-".into(), |n| n.to_string())
}

/// The human table: one line per source, its problems, one line per partition, one per
/// group it feeds.
pub fn table(report: &LagReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "threshold {}", show(millis(report.threshold)));
    if report.sources.is_empty() {
        let _ = writeln!(out, "no feature group is fed by a source: nothing to check");
    }
    let _ = writeln!(
        out,
        "{:<20} {:<15} {:>12} {:<26} {:>10}",
        "SOURCE", "STATUS", "LAG", "WATERMARK", "PUBLISHERS"
    );
    for s in &report.sources {
        let watermark = s
            .watermark_ms
            .or(s.last_watermark_ms)
            .and_then(|m| Timestamp::from_millis(m).ok())
            .map_or_else(|| "-".into(), Timestamp::to_rfc3339);
        let _ = writeln!(
            out,
            "{:<20} {:<15} {:>12} {:<26} {:>10}",
            s.source,
            s.status.as_str(),
            ms(s.lag_ms),
            watermark,
            format!("{}/{}", s.publishers_alive, s.publishers.len())
        );
        for problem in &s.problems {
            let _ = writeln!(out, "  ! {problem}");
        }
        match &s.broker {
            Some(Ok(b)) => {
                let _ = writeln!(
                    out,
                    "  consumer group {} ({}), {} member(s), topic {}",
                    b.group,
                    if b.state.is_empty() {
                        "state unknown"
                    } else {
                        &b.state
                    },
                    b.members.len(),
                    s.topic.as_deref().unwrap_or("-")
                );
            }
            Some(Err(e)) => {
                let _ = writeln!(out, "  consumer group: not read ({e})");
            }
            None => {}
        }
        if !s.partitions.is_empty() {
            let _ = writeln!(
                out,
                "  {:>9} {:<8} {:>12} {:>10} {:>10} {:>9} {:>12}  OWNER",
                "PARTITION", "STATUS", "WATERMARK", "END", "COMMITTED", "MESSAGES", "OLDEST"
            );
        }
        for p in &s.partitions {
            let _ = writeln!(
                out,
                "  {:>9} {:<8} {:>12} {:>10} {:>10} {:>9} {:>12}  {}",
                p.partition,
                p.status,
                ms(p.watermark_lag_ms),
                num(p.end_offset),
                num(p.committed),
                num(p.lag_messages),
                ms(p.lag_ms),
                p.owner.as_deref().unwrap_or(match &s.broker {
                    Some(Ok(_)) => "(nobody)",
                    _ => "-",
                }),
            );
        }
        for g in &s.groups {
            let _ = writeln!(
                out,
                "  group {:<14} staleness {:>12} ({}; slo {}, limit {})",
                g.group,
                ms(g.implied_staleness_ms),
                g.freshness,
                show(g.freshness_slo_ms),
                show(g.staleness_limit_ms),
            );
        }
    }
    out
}
