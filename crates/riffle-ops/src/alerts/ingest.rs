//! The rules of stream ingest: the lag of a source (its watermark, and its consumer
//! group's lag from the broker), and the state of its workers (dead letters, stalls,
//! partitions owned by nobody, events never delivered).

use std::time::Duration;

use riffle_registry::{format_duration, Registry};

use super::promql::{q, secs};
use super::rule::{Rule, Severity};
use super::thresholds::{
    lag_threshold, stalled_after, DEAD_LETTER_SHARE, STALLED_FLOOR, STALLED_FLUSHES,
};
use crate::scenario::Scenario;

pub(super) fn lag_rule(registry: &Registry, source: &str, groups: &[&str]) -> Rule {
    let threshold = lag_threshold(registry);
    Rule {
        alert: "RiffleIngestLag",
        expr: format!(
            "max(riffle_source_watermark_age_seconds{{source={s}}}) > {t}\nor\nmax(riffle_ingest_lag_seconds{{source={s}}}) > {t}\nor\nmax(riffle_ingest_partition_lag_seconds{{source={s}}}) > {t}\nor\nmax(riffle_ingest_group_lag_seconds{{source={s}}}) > {t}",
            s = q(source),
            t = secs(threshold)
        ),
        hold: Duration::from_secs(60),
        severity: Severity::Critical,
        labels: vec![("source", source.to_owned())],
        summary: format!(
            "Ingest of source {source} is more than {} behind",
            format_duration(threshold)
        ),
        description: format!(
            "The event-time watermark of source {source} (riffle_source_watermark_age_seconds on serve: for Kafka its slowest partition, otherwise the MIN over live ingest workers, else the last published; riffle_ingest_lag_seconds on an ingest worker, riffle_ingest_partition_lag_seconds for one Kafka partition it holds), or the oldest message its consumer group has not committed on some partition, whoever holds it (riffle_ingest_group_lag_seconds, from the broker), is more than {} (ingest.lag_threshold) behind now. Groups fed by it: {}. Their values age with the watermark; `riffle lag` names the partitions and who holds them.",
            format_duration(threshold),
            groups.join(", ")
        ),
        scenario: Scenario::Staleness,
    }
}

fn ingest_rules(registry: &Registry, source: &str) -> Vec<Rule> {
    let s = q(source);
    let stalled = stalled_after(registry);
    vec![
        Rule {
            alert: "RiffleIngestDeadLetters",
            expr: format!(
                "sum(rate(riffle_ingest_dead_letters_total{{source={s}}}[5m])) / sum(rate(riffle_ingest_events_read_total{{source={s}}}[5m])) > {DEAD_LETTER_SHARE}"
            ),
            hold: Duration::from_secs(300),
            severity: Severity::Warning,
            labels: vec![("source", source.to_owned())],
            summary: format!("Events of source {source} go to the dead-letter sink"),
            description: format!(
                "More than {}% of the events read from source {source} over 5m were dead-lettered (riffle_ingest_dead_letters_total over riffle_ingest_events_read_total; the reason label says why).",
                DEAD_LETTER_SHARE * 100.0
            ),
            scenario: Scenario::DeadLetter,
        },
        Rule {
            alert: "RiffleIngestStalled",
            expr: format!(
                "min(riffle_ingest_healthy{{source={s}}}) == 0\nor\nmax(riffle_ingest_seconds_since_flush{{source={s}}}) > {}",
                secs(stalled)
            ),
            hold: Duration::from_secs(120),
            severity: Severity::Critical,
            labels: vec![("source", source.to_owned())],
            summary: format!("Ingest of source {source} cannot make its writes durable"),
            description: format!(
                "An ingest worker of source {source} reports unhealthy (riffle_ingest_healthy) or has not completed a durable flush for {} ({STALLED_FLUSHES}x ingest.flush_interval, at least {}; riffle_ingest_seconds_since_flush).",
                format_duration(stalled),
                format_duration(STALLED_FLOOR)
            ),
            scenario: Scenario::IngestState,
        },
        Rule {
            alert: "RiffleIngestPartitionsUnowned",
            expr: format!("min(riffle_ingest_group_partition_owned{{source={s}}}) == 0"),
            hold: Duration::from_secs(60),
            severity: Severity::Critical,
            labels: vec![("source", source.to_owned())],
            summary: format!("Partitions of source {source}'s topic are processed by nobody"),
            description: format!(
                "A live ingest worker of source {source} sees a partition of its topic owned by no member of the consumer group (riffle_ingest_group_partition_owned, from the broker's assignments or, where the broker does not report them, from the partition watermarks the workers renew). Its events are not processed and its entities turn stale. The workers rejoin the group when this lasts, to make the coordinator reassign it; if it does not pass, `riffle lag` names the partition and the members."
            ),
            scenario: Scenario::IngestState,
        },
        Rule {
            alert: "RiffleIngestEventsNeverDelivered",
            expr: format!("max(delta(riffle_ingest_kafka_offset_gaps{{source={s}}}[15m])) > 0"),
            hold: Duration::ZERO,
            severity: Severity::Critical,
            labels: vec![("source", source.to_owned())],
            summary: format!("Events of source {source} were never delivered to ingest"),
            description: format!(
                "An ingest worker of source {source} resumed a Kafka partition past offsets it had not processed, and reading it again from earlier did not bring them back (riffle_ingest_kafka_offset_gaps): they were removed by retention before ingest read them (it fell that far behind) or compacted. Their events are missing from the features; the worker's log names the partition and offsets. Replay them from their origin with `riffle ingest --from FILE` if they can be recovered, and keep the topic's retention well above the lag ingest can reach."
            ),
            scenario: Scenario::IngestState,
        },
    ]
}

/// The ingest rules of every source that feeds a group.
pub(super) fn rules(registry: &Registry) -> Vec<Rule> {
    registry
        .sources
        .iter()
        .enumerate()
        .filter(|(i, _)| registry.groups_of_source(*i).next().is_some())
        .flat_map(|(_, s)| ingest_rules(registry, &s.name))
        .collect()
}
