//! Every metric `riffle ingest` exports on its own `/metrics`, in one place, fed from the
//! run's [`IngestSummary`] after every flush ([`IngestMetrics::observe`]) and from gauges
//! sampled at scrape ([`IngestMetrics::encode`]). Documented in `docs/metrics.md`.
//!
//! Labels are low-cardinality by construction: the source name, a rejection reason from a
//! fixed set, a Kafka partition number, an HTTP status code. No label carries an entity id.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry as PromRegistry;

use crate::pipeline::summary::{IngestSummary, LoopTime};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    pub source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub source: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    pub source: String,
    pub partition: i32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    pub source: String,
    pub phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabels {
    pub code: u16,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// One Kafka partition's lag, as sampled at scrape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PartitionSample {
    pub partition: i32,
    /// Messages behind (high watermark − committed), when known.
    pub messages: Option<i64>,
    /// now − the largest event time applied from the partition, when any was.
    pub seconds: Option<f64>,
}

/// One partition of the consumer group as the broker sees it (the group monitor's).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupPartitionSample {
    pub partition: i32,
    /// Messages not committed by the group, when known.
    pub messages: Option<i64>,
    /// Age of the oldest uncommitted message, when known (0 when none is pending).
    pub seconds: Option<f64>,
    /// Whether a member of the group holds it.
    pub owned: bool,
}

/// The consumer group as last sampled, and this worker's membership changes.
#[derive(Debug, Clone, Default)]
pub struct GroupSampled {
    /// Whether the latest sample succeeded.
    pub up: bool,
    pub members: usize,
    pub partitions: Vec<GroupPartitionSample>,
    /// Times this worker left the group for a stalled pipeline.
    pub left: u64,
    /// Times this worker rejoined the group for partitions owned by nobody.
    pub rejoined: u64,
    /// Offsets of this worker's partitions never delivered.
    pub offset_gaps: u64,
}

/// What is sampled at scrape rather than counted.
#[derive(Debug, Clone, Default)]
pub struct Sampled {
    /// now − watermark, when there is a watermark.
    pub lag_seconds: Option<f64>,
    /// Seconds since the last durable flush.
    pub since_flush_seconds: f64,
    pub partitions: Vec<PartitionSample>,
    /// Whether `/health` says healthy.
    pub healthy: bool,
    /// Kafka: the whole consumer group, from the group monitor.
    pub group: Option<GroupSampled>,
}

/// All of `riffle ingest`'s metrics.
pub struct IngestMetrics {
    registry: PromRegistry,
    source: String,
    events_read: Counter,
    applied: Counter,
    already_applied: Counter,
    dead_lettered: Family<ReasonLabels, Counter>,
    flushes: Counter,
    flush_duration: Histogram,
    rows_written: Counter,
    queue_depth: Gauge,
    watermark: FloatGauge,
    lag: FloatGauge,
    since_flush: FloatGauge,
    healthy: Gauge,
    partition_lag_messages: Family<PartitionLabels, Gauge>,
    partition_lag_seconds: Family<PartitionLabels, FloatGauge>,
    group: GroupFamilies,
    http_requests: Family<CodeLabels, Counter>,
    loop_seconds: Family<PhaseLabels, Counter<f64, AtomicU64>>,
    /// The totals last observed, to turn the summary's running totals into increments.
    last: Mutex<Totals>,
}

#[derive(Default)]
struct Totals {
    events_read: u64,
    applied: u64,
    already_applied: u64,
    flushes: u64,
    rows_written: u64,
    dead_lettered: BTreeMap<&'static str, u64>,
    loop_time: LoopTime,
}

impl IngestMetrics {
    /// The metrics of an ingest run of `source`, whose queue holds `queue_capacity` items.
    /// Per-source metrics carry the `source` label even though a process runs one source, so
    /// dashboards over many workers and sources can sum or split them.
    pub fn new(source: &str, queue_capacity: usize) -> Self {
        let mut r = PromRegistry::with_prefix("riffle_ingest");
        let l = SourceLabels {
            source: source.to_owned(),
        };
        let events_read = counter(
            &mut r,
            &l,
            "events_read",
            "Events read from the input (every record, whatever became of it)",
        );
        let applied = counter(
            &mut r,
            &l,
            "events_applied",
            "Events the window engine took",
        );
        let already_applied = counter(&mut r, &l, "events_already_applied", "Events skipped because their entity's stored position shows an earlier run applied them");
        let dead_lettered = Family::<ReasonLabels, Counter>::default();
        r.register(
            "dead_letters",
            "Events sent to the dead-letter sink, by reason",
            dead_lettered.clone(),
        );
        let flushes = counter(
            &mut r,
            &l,
            "flushes",
            "Durable flushes (rows, state and dead letters written)",
        );
        let durations: Family<SourceLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(flush_histogram);
        let flush_duration = durations.get_or_create(&l).clone();
        r.register("flush_duration_seconds", "Time one flush took (rows and state of every moved entity written, dead letters synced)", durations);
        let rows_written = counter(
            &mut r,
            &l,
            "rows_written",
            "Feature-group rows written to the store",
        );
        let queue_depth = gauge(&mut r, &l, "queue_depth", "Items (chunks of up to 256 records, or one pushed request) waiting between the input and the pipeline, sampled after each flush");
        let capacity = gauge(&mut r, &l, "queue_capacity", "The bound of that queue: when it is full the input pauses (backpressure) and POST /v1/events answers 503");
        capacity.set(i64::try_from(queue_capacity).unwrap_or(i64::MAX));
        let watermark = float_gauge(&mut r, &l, "watermark_seconds", "Event-time watermark: the largest event time applied, capped at now (Unix seconds; 0 before any event)");
        let lag = float_gauge(
            &mut r,
            &l,
            "lag_seconds",
            "now - the event-time watermark, sampled at scrape (0 before any event)",
        );
        let since_flush = float_gauge(&mut r, &l, "seconds_since_flush", "Seconds since the last durable flush, sampled at scrape (a flush runs every flush_interval even when idle)");
        let healthy = gauge(
            &mut r,
            &l,
            "healthy",
            "1 when /health says healthy, else 0 (sampled at scrape)",
        );
        let partition_lag_messages = Family::<PartitionLabels, Gauge>::default();
        r.register("partition_lag_messages", "Kafka: messages of a partition not yet committed (high watermark - committed offset), from librdkafka's statistics", partition_lag_messages.clone());
        let partition_lag_seconds = Family::<PartitionLabels, FloatGauge>::default();
        r.register(
            "partition_lag_seconds",
            "Kafka: now - the largest event time applied from a partition, sampled at scrape",
            partition_lag_seconds.clone(),
        );
        let group = GroupFamilies::register(&mut r, &l);
        let http_requests = Family::<CodeLabels, Counter>::default();
        r.register(
            "http_requests",
            "POST /v1/events requests answered, by status code",
            http_requests.clone(),
        );
        let loop_seconds = Family::<PhaseLabels, Counter<f64, AtomicU64>>::default();
        r.register(
            "loop_seconds",
            "Time of the pipeline loop by phase (waiting_for_input, applying, loading_state, preparing_flushes, waiting_for_store): the largest names what limits ingest",
            loop_seconds.clone(),
        );
        Self {
            registry: r,
            source: source.to_owned(),
            events_read,
            applied,
            already_applied,
            dead_lettered,
            flushes,
            flush_duration,
            rows_written,
            queue_depth,
            watermark,
            lag,
            since_flush,
            healthy,
            partition_lag_messages,
            partition_lag_seconds,
            group,
            http_requests,
            loop_seconds,
            last: Mutex::new(Totals::default()),
        }
    }

    /// Takes the run's totals after a flush: counters move by what changed since the last
    /// call, and the flush duration is recorded once per new flush.
    pub fn observe(&self, s: &IngestSummary) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        self.events_read
            .inc_by(s.events_read.saturating_sub(last.events_read));
        self.applied.inc_by(s.applied.saturating_sub(last.applied));
        self.already_applied
            .inc_by(s.already_applied.saturating_sub(last.already_applied));
        self.rows_written
            .inc_by(s.rows_written.saturating_sub(last.rows_written));
        if s.flushes > last.flushes {
            self.flushes.inc_by(s.flushes - last.flushes);
            self.flush_duration.observe(s.last_flush.as_secs_f64());
        }
        for (reason, &n) in &s.dead_lettered {
            let before = last.dead_lettered.get(reason).copied().unwrap_or(0);
            self.dead_lettered
                .get_or_create(&ReasonLabels {
                    source: self.source.clone(),
                    reason: (*reason).to_owned(),
                })
                .inc_by(n.saturating_sub(before));
        }
        self.queue_depth
            .set(i64::try_from(s.queued).unwrap_or(i64::MAX));
        if let Some(w) = s.watermark_ms {
            self.watermark.set(w as f64 / 1000.0);
        }
        for ((phase, now), (_, before)) in s
            .loop_time
            .phases()
            .into_iter()
            .zip(last.loop_time.phases())
        {
            self.loop_seconds
                .get_or_create(&PhaseLabels {
                    source: self.source.clone(),
                    phase: phase.to_owned(),
                })
                .inc_by(now.saturating_sub(before).as_secs_f64());
        }
        *last = Totals {
            events_read: s.events_read,
            applied: s.applied,
            already_applied: s.already_applied,
            flushes: s.flushes,
            rows_written: s.rows_written,
            dead_lettered: s.dead_lettered.clone(),
            loop_time: s.loop_time,
        };
    }

    /// Counts one answered `POST /v1/events`.
    pub fn http_request(&self, code: u16) {
        self.http_requests.get_or_create(&CodeLabels { code }).inc();
    }

    /// The Prometheus text exposition, with the sampled gauges set first.
    /// The Prometheus registry `/metrics` encodes (prefix `riffle_ingest`), for metrics
    /// owned elsewhere (the auth gate's).
    pub fn registry_mut(&mut self) -> &mut PromRegistry {
        &mut self.registry
    }

    pub fn encode(&self, sampled: &Sampled) -> String {
        if let Some(lag) = sampled.lag_seconds {
            self.lag.set(lag);
        }
        self.since_flush.set(sampled.since_flush_seconds);
        self.healthy.set(i64::from(sampled.healthy));
        self.partition_lag_messages.clear();
        self.partition_lag_seconds.clear();
        for p in &sampled.partitions {
            let labels = PartitionLabels {
                source: self.source.clone(),
                partition: p.partition,
            };
            if let Some(m) = p.messages {
                self.partition_lag_messages.get_or_create(&labels).set(m);
            }
            if let Some(s) = p.seconds {
                self.partition_lag_seconds.get_or_create(&labels).set(s);
            }
        }
        if let Some(group) = &sampled.group {
            self.group.set(&self.source, group);
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// The consumer group's gauges, as the broker sees it (set from each scrape's sample).
struct GroupFamilies {
    up: Gauge,
    members: Gauge,
    lag_messages: Family<PartitionLabels, Gauge>,
    lag_seconds: Family<PartitionLabels, FloatGauge>,
    owned: Family<PartitionLabels, Gauge>,
    left: Gauge,
    rejoined: Gauge,
    offset_gaps: Gauge,
}

impl GroupFamilies {
    fn register(r: &mut PromRegistry, l: &SourceLabels) -> Self {
        let up = gauge(
            r,
            l,
            "group_up",
            "Kafka: 1 when the consumer group was last sampled from the broker, else 0",
        );
        let members = gauge(
            r,
            l,
            "group_members",
            "Kafka: members of the consumer group, as the broker lists them",
        );
        let lag_messages = Family::<PartitionLabels, Gauge>::default();
        r.register("group_lag_messages", "Kafka: messages of a partition the group has not committed (end offset - committed offset), as the broker says, whoever holds it", lag_messages.clone());
        let lag_seconds = Family::<PartitionLabels, FloatGauge>::default();
        r.register("group_lag_seconds", "Kafka: age of a partition's oldest message the group has not committed (0 when none is pending), as the broker says, whoever holds it", lag_seconds.clone());
        let owned = Family::<PartitionLabels, Gauge>::default();
        r.register(
            "group_partition_owned",
            "Kafka: 1 when a member of the group holds the partition, 0 when none does",
            owned.clone(),
        );
        let left = gauge(r, l, "group_left", "Kafka: times this worker left the group because its pipeline took nothing for ingest.max_stall");
        let rejoined = gauge(r, l, "group_rejoined", "Kafka: remedies this worker took because partitions were owned by no member (rejoining the group, or a short-lived member joining and leaving)");
        let offset_gaps = gauge(r, l, "kafka_offset_gaps", "Kafka: gaps met by this worker: offsets of an assigned partition never delivered (removed by retention before they were read, or compacted); their events are missing");
        Self {
            up,
            members,
            lag_messages,
            lag_seconds,
            owned,
            left,
            rejoined,
            offset_gaps,
        }
    }

    fn set(&self, source: &str, g: &GroupSampled) {
        self.up.set(i64::from(g.up));
        self.left.set(i64::try_from(g.left).unwrap_or(i64::MAX));
        self.rejoined
            .set(i64::try_from(g.rejoined).unwrap_or(i64::MAX));
        self.offset_gaps
            .set(i64::try_from(g.offset_gaps).unwrap_or(i64::MAX));
        if !g.up {
            // A failed sample says nothing new: the last figures stay until the next one.
            return;
        }
        self.members
            .set(i64::try_from(g.members).unwrap_or(i64::MAX));
        self.lag_messages.clear();
        self.lag_seconds.clear();
        self.owned.clear();
        for p in &g.partitions {
            let labels = PartitionLabels {
                source: source.to_owned(),
                partition: p.partition,
            };
            if let Some(m) = p.messages {
                self.lag_messages.get_or_create(&labels).set(m);
            }
            if let Some(s) = p.seconds {
                self.lag_seconds.get_or_create(&labels).set(s);
            }
            self.owned.get_or_create(&labels).set(i64::from(p.owned));
        }
    }
}

fn flush_histogram() -> Histogram {
    // 1 ms … ~4 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 13))
}

/// A counter of one source, registered as a labelled family.
fn counter(r: &mut PromRegistry, l: &SourceLabels, name: &str, help: &str) -> Counter {
    let family = Family::<SourceLabels, Counter>::default();
    let metric = family.get_or_create(l).clone();
    r.register(name, help, family);
    metric
}

fn gauge(r: &mut PromRegistry, l: &SourceLabels, name: &str, help: &str) -> Gauge {
    let family = Family::<SourceLabels, Gauge>::default();
    let metric = family.get_or_create(l).clone();
    r.register(name, help, family);
    metric
}

fn float_gauge(r: &mut PromRegistry, l: &SourceLabels, name: &str, help: &str) -> FloatGauge {
    let family = Family::<SourceLabels, FloatGauge>::default();
    let metric = family.get_or_create(l).clone();
    r.register(name, help, family);
    metric
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_follow_the_running_totals_and_reasons_are_labelled() {
        let m = IngestMetrics::new("transactions", 40);
        let mut s = IngestSummary {
            events_read: 10,
            applied: 7,
            flushes: 1,
            rows_written: 5,
            ..IngestSummary::default()
        };
        s.dead_lettered.insert("undecodable", 3);
        s.loop_time.applying = std::time::Duration::from_millis(1_500);
        m.observe(&s);
        s.loop_time.applying = std::time::Duration::from_millis(2_250);
        s.events_read = 15;
        s.applied = 12;
        s.flushes = 2;
        m.observe(&s);
        m.http_request(200);
        let text = m.encode(&Sampled {
            lag_seconds: Some(1.5),
            partitions: vec![PartitionSample {
                partition: 3,
                messages: Some(42),
                seconds: Some(2.0),
            }],
            healthy: true,
            ..Sampled::default()
        });
        for line in [
            "riffle_ingest_events_read_total{source=\"transactions\"} 15",
            "riffle_ingest_events_applied_total{source=\"transactions\"} 12",
            "riffle_ingest_dead_letters_total{source=\"transactions\",reason=\"undecodable\"} 3",
            "riffle_ingest_flushes_total{source=\"transactions\"} 2",
            "riffle_ingest_flush_duration_seconds_count{source=\"transactions\"} 2",
            "riffle_ingest_queue_capacity{source=\"transactions\"} 40",
            "riffle_ingest_lag_seconds{source=\"transactions\"} 1.5",
            "riffle_ingest_partition_lag_messages{source=\"transactions\",partition=\"3\"} 42",
            "riffle_ingest_http_requests_total{code=\"200\"} 1",
            "riffle_ingest_healthy{source=\"transactions\"} 1",
            "riffle_ingest_loop_seconds_total{source=\"transactions\",phase=\"applying\"} 2.25",
            "riffle_ingest_loop_seconds_total{source=\"transactions\",phase=\"waiting_for_store\"} 0.0",
        ] {
            assert!(text.contains(line), "{line} not in\n{text}");
        }
    }
}
