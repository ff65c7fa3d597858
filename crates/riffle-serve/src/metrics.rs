//! Every metric `riffle serve` exports, in one place, and the `/metrics` text encoder.
//!
//! Labels are low-cardinality by construction: route templates (never raw paths), group
//! names from the registry, fixed enums. No label ever carries an entity id.
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `riffle_http_requests_total` | counter | `endpoint`, `method`, `status_class` | HTTP requests answered, by route template and `2xx`/`4xx`/`5xx` |
//! | `riffle_http_request_duration_seconds` | histogram | `endpoint`, `method`, `status_class` | time to answer a request |
//! | `riffle_http_in_flight` | gauge | — | requests being handled now |
//! | `riffle_http_shed_total` | counter | — | requests refused with 503 at the concurrency limit |
//! | `riffle_responses_total` | counter | `endpoint`, `degradation` | read responses by degradation level (`healthy`/`stale`/`degraded`/`critical`) |
//! | `riffle_store_call_duration_seconds` | histogram | `op` | store call latency (`read`, `write`, `ping`) |
//! | `riffle_store_errors_total` | counter | `op`, `kind` | failed store calls by kind (`timeout`, `unavailable`, `overloaded`, `embedded`, `config`) |
//! | `riffle_store_timeouts_total` | counter | `op` | store calls that hit the per-call timeout |
//! | `riffle_store_in_flight` | gauge | — | store calls in flight (sampled at scrape) |
//! | `riffle_store_in_flight_limit` | gauge | — | the store's in-flight bound |
//! | `riffle_cache_hits_total` | counter | — | hot-cache lookups answered from the cache (including cached "missing") |
//! | `riffle_cache_misses_total` | counter | — | hot-cache lookups that went to the store |
//! | `riffle_cache_entries` | gauge | — | rows held in the hot cache (sampled at scrape) |
//! | `riffle_breaker_state` | gauge | — | circuit breaker: 0 closed, 1 half-open, 2 open |
//! | `riffle_breaker_transitions_total` | counter | `from`, `to` | breaker state changes |
//! | `riffle_breaker_rejections_total` | counter | — | store calls skipped because the breaker was open |
//! | `riffle_values_served_total` | counter | `group`, `status` | feature values served, by per-value status |
//! | `riffle_value_age_seconds` | histogram | `group` | age (now − event time) of stored values served |
//! | `riffle_corrupt_rows_total` | counter | `group` | stored rows that did not decode (default served) |
//! | `riffle_rows_written_total` | counter | `group` | rows written through the push/write endpoints |
//! | `riffle_feature_samples` | gauge | `group`, `feature` | values sampled for the distribution (one request in `--drift-sample-every`) |
//! | `riffle_feature_value_mean` | gauge | `group`, `feature` | mean of the sampled stored values (numeric features) |
//! | `riffle_feature_value_p99` | gauge | `group`, `feature` | p99 of the sampled stored values (upper bound of its log bucket, within 19%) |
//! | `riffle_feature_default_ratio` | gauge | `group`, `feature` | share of sampled values served as the training default (`missing`, `null`, `expired`, `unavailable`) |
//! | `riffle_feature_psi` | gauge | `group`, `feature` | population stability index against the baseline (`riffle serve --baseline`; absent without one or under 100 samples) |
//! | `riffle_feature_psi_threshold` | gauge | `group`, `feature` | the PSI above which the feature counts as drifted (`--psi-threshold`, 0.2 by default) |
//! | `riffle_source_watermark_age_seconds` | gauge | `source` | now − the source's published event-time watermark (for Kafka the MIN over every partition of its topic; otherwise over live ingest workers, else the last published; sampled at scrape; absent until one is published) |
//! | `riffle_partition_watermark_age_seconds` | gauge | `source`, `partition` | now − one Kafka partition's watermark, as its owner last published it (a partition nobody processes keeps ageing; sampled at scrape) |
//! | `riffle_store_reads_total` | counter | `target` | serving reads answered, by the node that answered: `primary` or a replica's URL (without password) |
//! | `riffle_store_replica_failovers_total` | counter | `replica` | reads that failed or timed out on the replica and were retried on the primary |
//! | `riffle_store_replica_lag_seconds` | gauge | `replica` | the replica's replication lag, by the heartbeat (sampled at scrape; absent while unknown: link down, unreachable) |
//! | `riffle_store_replica_healthy` | gauge | `replica` | 1 when the replica may be read from (reachable, link up, lag within `store.replica_max_lag`), else 0 |
//! | `riffle_feature_log_rows_total` | counter | — | feature-log rows in completed files (`[serve.logging]`; [`crate::feature_log::counters`]) |
//! | `riffle_feature_log_dropped_rows_total` | counter | `reason` | feature-log rows dropped: `queue_full` (the writer's queue was full), `write_failed` (lost with a failed write), `stopped` (offered after shutdown) |
//! | `riffle_feature_log_files_total` | counter | — | feature-log files completed and renamed into place |
//! | `riffle_feature_log_write_errors_total` | counter | — | feature-log writes that failed (folder, file, Parquet, sync or rename) |

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry as PromRegistry;
use riffle_core::{Degradation, ValueStatus};
use riffle_registry::Registry;

use crate::feature_log::counters::LogCounters;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// A route template, interned ([`crate::layers`]): labels cost no allocation.
    pub endpoint: &'static str,
    pub method: &'static str,
    pub status_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    pub source: String,
    pub partition: u32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResponseLabels {
    pub endpoint: &'static str,
    pub degradation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabels {
    pub op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub op: &'static str,
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransitionLabels {
    pub from: &'static str,
    pub to: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupLabels {
    pub group: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServedLabels {
    pub group: String,
    pub status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FeatureLabels {
    pub group: String,
    pub feature: String,
}

/// The distribution gauges of one feature (set at scrape time by `drift::Drift::publish`).
pub struct FeatureGauges {
    pub samples: FloatGauge,
    pub mean: FloatGauge,
    pub p99: FloatGauge,
    pub default_ratio: FloatGauge,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetLabels {
    pub target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReplicaLabels {
    pub replica: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    pub source: String,
}

type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 100 µs … ~3.3 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

fn age_histogram() -> Histogram {
    Histogram::new([
        1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 600.0, 1800.0, 3600.0, 21600.0, 86400.0, 604800.0,
    ])
}

/// Counters of one group, resolved once so the hot path never builds label sets.
pub struct GroupMetrics {
    /// Indexed like [`ValueStatus::ALL`].
    pub served: [Counter; 6],
    pub age: Histogram,
    pub corrupt: Counter,
    pub written: Counter,
}

/// All of `riffle serve`'s metrics.
pub struct Metrics {
    registry: PromRegistry,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_duration: HistogramFamily<HttpLabels>,
    pub http_in_flight: Gauge,
    pub http_shed: Counter,
    pub responses: Family<ResponseLabels, Counter>,
    pub store_duration: HistogramFamily<OpLabels>,
    pub store_errors: Family<ErrorLabels, Counter>,
    pub store_timeouts: Family<OpLabels, Counter>,
    pub store_in_flight: Gauge,
    pub store_in_flight_limit: Gauge,
    pub cache_hits: Counter,
    pub cache_misses: Counter,
    pub cache_entries: Gauge,
    pub breaker_state: Gauge,
    pub breaker_transitions: Family<TransitionLabels, Counter>,
    pub breaker_rejections: Counter,
    /// One entry per registry group, by `GroupId`.
    pub groups: Vec<GroupMetrics>,
    pub source_watermark_age: Family<SourceLabels, FloatGauge>,
    partition_watermark_age: Family<PartitionLabels, FloatGauge>,
    /// Reads by the node that answered: `[primary, replica 0, replica 1, …]`.
    pub store_reads: Vec<Counter>,
    /// Failovers to the primary, by replica index.
    pub replica_failovers: Vec<Counter>,
    replica_lag: Family<ReplicaLabels, FloatGauge>,
    replica_healthy: Family<ReplicaLabels, Gauge>,
    /// `[samples, mean, p99, default_ratio, psi, psi_threshold]`.
    feature_families: [Family<FeatureLabels, FloatGauge>; 6],
    /// The feature log's counters (zero without `[serve.logging]`).
    pub feature_log: LogCounters,
}

pub(crate) fn status_index(status: ValueStatus) -> usize {
    match status {
        ValueStatus::Fresh => 0,
        ValueStatus::Stale => 1,
        ValueStatus::Expired => 2,
        ValueStatus::Missing => 3,
        ValueStatus::Null => 4,
        ValueStatus::Unavailable => 5,
    }
}

impl Metrics {
    /// The Prometheus registry `/metrics` encodes (prefix `riffle`), for metrics owned
    /// elsewhere (the auth gate's).
    pub fn registry_mut(&mut self) -> &mut PromRegistry {
        &mut self.registry
    }

    pub fn new(reg: &Registry) -> Self {
        let mut registry = PromRegistry::with_prefix("riffle");
        let http_requests = Family::<HttpLabels, Counter>::default();
        let http_duration: HistogramFamily<HttpLabels> =
            Family::new_with_constructor(latency_histogram);
        let http_in_flight = Gauge::default();
        let http_shed = Counter::default();
        let responses = Family::<ResponseLabels, Counter>::default();
        let store_duration: HistogramFamily<OpLabels> =
            Family::new_with_constructor(latency_histogram);
        let store_errors = Family::<ErrorLabels, Counter>::default();
        let store_timeouts = Family::<OpLabels, Counter>::default();
        let store_in_flight = Gauge::default();
        let store_in_flight_limit = Gauge::default();
        let cache_hits = Counter::default();
        let cache_misses = Counter::default();
        let cache_entries = Gauge::default();
        let breaker_state = Gauge::default();
        let breaker_transitions = Family::<TransitionLabels, Counter>::default();
        let breaker_rejections = Counter::default();
        let served = Family::<ServedLabels, Counter>::default();
        let ages: HistogramFamily<GroupLabels> = Family::new_with_constructor(age_histogram);
        let corrupt = Family::<GroupLabels, Counter>::default();
        let written = Family::<GroupLabels, Counter>::default();
        let source_watermark_age = Family::<SourceLabels, FloatGauge>::default();
        let partition_watermark_age = Family::<PartitionLabels, FloatGauge>::default();
        let reads = Family::<TargetLabels, Counter>::default();
        let failovers = Family::<ReplicaLabels, Counter>::default();
        let replica_lag = Family::<ReplicaLabels, FloatGauge>::default();
        let replica_healthy = Family::<ReplicaLabels, Gauge>::default();
        let replica_names: Vec<String> = reg
            .store
            .replicas
            .iter()
            .map(|u| riffle_store::StoreUrl::Redis(u.clone()).redacted())
            .collect();
        let store_reads = std::iter::once("primary".to_owned())
            .chain(replica_names.iter().cloned())
            .map(|target| reads.get_or_create(&TargetLabels { target }).clone())
            .collect();
        let replica_failovers = replica_names
            .iter()
            .map(|r| {
                failovers
                    .get_or_create(&ReplicaLabels { replica: r.clone() })
                    .clone()
            })
            .collect();
        let feature_families: [Family<FeatureLabels, FloatGauge>; 6] = Default::default();
        for (family, (name, help)) in feature_families.iter().zip([
            (
                "feature_samples",
                "Served values sampled for the feature's distribution",
            ),
            ("feature_value_mean", "Mean of the sampled stored values"),
            (
                "feature_value_p99",
                "p99 of the sampled stored values (bucket upper bound)",
            ),
            (
                "feature_default_ratio",
                "Share of sampled values served as the training default",
            ),
            (
                "feature_psi",
                "Population stability index against the baseline",
            ),
            (
                "feature_psi_threshold",
                "PSI above which the feature counts as drifted",
            ),
        ]) {
            registry.register(name, help, family.clone());
        }

        let groups = reg
            .groups
            .iter()
            .map(|g| {
                let labels = GroupLabels {
                    group: g.name.clone(),
                };
                GroupMetrics {
                    served: ValueStatus::ALL.map(|s| {
                        served
                            .get_or_create(&ServedLabels {
                                group: g.name.clone(),
                                status: s.as_str(),
                            })
                            .clone()
                    }),
                    age: ages.get_or_create(&labels).clone(),
                    corrupt: corrupt.get_or_create(&labels).clone(),
                    written: written.get_or_create(&labels).clone(),
                }
            })
            .collect();

        registry.register(
            "http_requests",
            "HTTP requests answered, by route template and status class",
            http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request",
            http_duration.clone(),
        );
        registry.register(
            "http_in_flight",
            "HTTP requests being handled",
            http_in_flight.clone(),
        );
        registry.register(
            "http_shed",
            "Requests refused with 503 at the concurrency limit",
            http_shed.clone(),
        );
        registry.register(
            "responses",
            "Read responses by degradation level",
            responses.clone(),
        );
        registry.register(
            "store_call_duration_seconds",
            "Online store call latency",
            store_duration.clone(),
        );
        registry.register(
            "store_errors",
            "Failed store calls by kind",
            store_errors.clone(),
        );
        registry.register(
            "store_timeouts",
            "Store calls that hit the per-call timeout",
            store_timeouts.clone(),
        );
        registry.register(
            "store_in_flight",
            "Store calls in flight",
            store_in_flight.clone(),
        );
        registry.register(
            "store_in_flight_limit",
            "The store's bound on calls in flight",
            store_in_flight_limit.clone(),
        );
        registry.register("cache_hits", "Hot-cache hits", cache_hits.clone());
        registry.register("cache_misses", "Hot-cache misses", cache_misses.clone());
        registry.register(
            "cache_entries",
            "Rows in the hot cache",
            cache_entries.clone(),
        );
        registry.register(
            "breaker_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open",
            breaker_state.clone(),
        );
        registry.register(
            "breaker_transitions",
            "Circuit breaker state changes",
            breaker_transitions.clone(),
        );
        registry.register(
            "breaker_rejections",
            "Store calls skipped because the breaker was open",
            breaker_rejections.clone(),
        );
        registry.register(
            "values_served",
            "Feature values served, by group and status",
            served,
        );
        registry.register(
            "value_age_seconds",
            "Age of stored values served (now minus event time)",
            ages,
        );
        registry.register("corrupt_rows", "Stored rows that did not decode", corrupt);
        registry.register(
            "rows_written",
            "Rows written through the push and write endpoints",
            written,
        );
        registry.register(
            "source_watermark_age_seconds",
            "Now minus the source's published event-time watermark",
            source_watermark_age.clone(),
        );
        registry.register(
            "partition_watermark_age_seconds",
            "Now minus one Kafka partition's published event-time watermark",
            partition_watermark_age.clone(),
        );

        registry.register(
            "store_reads",
            "Serving reads by the node that answered (primary or a replica)",
            reads,
        );
        registry.register(
            "store_replica_failovers",
            "Reads that failed on a replica and were retried on the primary",
            failovers,
        );
        registry.register(
            "store_replica_lag_seconds",
            "Replication lag of the replica, measured by the heartbeat",
            replica_lag.clone(),
        );
        registry.register(
            "store_replica_healthy",
            "1 when the replica may be read from, else 0",
            replica_healthy.clone(),
        );

        let feature_log = LogCounters::register(&mut registry);

        Self {
            registry,
            feature_log,
            store_reads,
            replica_failovers,
            replica_lag,
            replica_healthy,
            http_requests,
            http_duration,
            http_in_flight,
            http_shed,
            responses,
            store_duration,
            store_errors,
            store_timeouts,
            store_in_flight,
            store_in_flight_limit,
            cache_hits,
            cache_misses,
            cache_entries,
            breaker_state,
            breaker_transitions,
            breaker_rejections,
            groups,
            source_watermark_age,
            partition_watermark_age,
            feature_families,
        }
    }

    /// The distribution gauges of `group:feature` (scrape time only: builds label sets).
    pub fn feature(&self, group: &str, feature: &str) -> FeatureGauges {
        let labels = FeatureLabels {
            group: group.to_owned(),
            feature: feature.to_owned(),
        };
        let [samples, mean, p99, default_ratio] =
            [0, 1, 2, 3].map(|i| self.feature_families[i].get_or_create(&labels).clone());
        FeatureGauges {
            samples,
            mean,
            p99,
            default_ratio,
        }
    }

    /// Sets the PSI of `group:feature` and the threshold it is judged by (only features
    /// compared with a baseline have these series).
    pub fn feature_psi(&self, group: &str, feature: &str, psi: f64, threshold: f64) {
        let labels = FeatureLabels {
            group: group.to_owned(),
            feature: feature.to_owned(),
        };
        self.feature_families[4].get_or_create(&labels).set(psi);
        self.feature_families[5]
            .get_or_create(&labels)
            .set(threshold);
    }

    /// Sets the watermark age of one source.
    pub fn source_watermark_age(&self, source: &str, seconds: f64) {
        self.source_watermark_age
            .get_or_create(&SourceLabels {
                source: source.to_owned(),
            })
            .set(seconds);
    }

    /// Sets the watermark age of one Kafka partition of a source.
    pub fn partition_watermark_age(&self, source: &str, partition: u32, seconds: f64) {
        self.partition_watermark_age
            .get_or_create(&PartitionLabels {
                source: source.to_owned(),
                partition,
            })
            .set(seconds);
    }

    /// Sets the replicas' lag and health gauges (at scrape); a lag not known now has no
    /// series rather than a stale one.
    pub fn replicas(&self, replicas: &[riffle_store::ReplicaStatus]) {
        for r in replicas {
            let labels = ReplicaLabels {
                replica: r.url.clone(),
            };
            self.replica_healthy
                .get_or_create(&labels)
                .set(i64::from(r.healthy));
            match r.lag_ms {
                Some(ms) => {
                    self.replica_lag
                        .get_or_create(&labels)
                        .set(ms as f64 / 1000.0);
                }
                None => {
                    self.replica_lag.remove(&labels);
                }
            }
        }
    }

    /// Counts one served value.
    pub fn served(&self, group: usize, status: ValueStatus) {
        if let Some(g) = self.groups.get(group) {
            g.served[status_index(status)].inc();
        }
    }

    /// Counts `n` values of `group` served with `status`.
    pub fn served_n(&self, group: usize, status: ValueStatus, n: u64) {
        if let Some(g) = self.groups.get(group) {
            g.served[status_index(status)].inc_by(n);
        }
    }

    /// Counts one read response's degradation level.
    pub fn response(&self, endpoint: &'static str, level: Degradation) {
        self.responses
            .get_or_create(&ResponseLabels {
                endpoint,
                degradation: level.as_str(),
            })
            .inc();
    }

    /// Records one failed store call.
    pub fn store_error(&self, op: &'static str, e: &riffle_store::StoreError) {
        self.store_errors
            .get_or_create(&ErrorLabels { op, kind: e.kind() })
            .inc();
        if matches!(e, riffle_store::StoreError::Timeout(_)) {
            self.store_timeouts.get_or_create(&OpLabels { op }).inc();
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_prefixed_and_never_carry_ids() {
        let reg = Registry::from_toml(
            r#"
[[entities]]
name = "user"
[[feature_groups]]
name = "g"
entity = "user"
ttl = "1h"
freshness_slo = "1m"
staleness_limit = "10m"
[[feature_groups.features]]
name = "f"
type = "int64"
default = 0
"#,
        )
        .unwrap();
        let m = Metrics::new(&reg);
        m.served(0, ValueStatus::Fresh);
        m.served_n(0, ValueStatus::Null, 3);
        m.response("/v1/features", Degradation::Healthy);
        let text = m.encode();
        assert!(text.contains("riffle_values_served_total{group=\"g\",status=\"fresh\"} 1"));
        assert!(text.contains("riffle_values_served_total{group=\"g\",status=\"null\"} 3"));
        // The read path counts by `ValueStatus::ALL`'s position.
        for (i, status) in ValueStatus::ALL.into_iter().enumerate() {
            assert_eq!(status_index(status), i);
        }
        assert!(text.contains("riffle_breaker_state"));
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            assert!(line.starts_with("riffle_"), "{line}");
        }
    }
}
