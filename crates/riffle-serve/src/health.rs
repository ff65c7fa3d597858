//! `GET /health`: what an on-call engineer asks first. Store kind and reachability (a ping
//! under the store timeout, cached for a second so a scraping load balancer cannot hammer
//! the store), breaker state, in-flight use against its bounds, cache hit rate, and the
//! freshness last observed per group, with what it is measured from (a stream group's
//! source watermark, or the row's event time) and the watermark's age, and where serving
//! reads go (the primary or a read replica) with each replica's health and lag.
//!
//! Per source, `sources` shows the watermark and, for a Kafka source, every partition's
//! mark with its age and who published it last, so a partition nobody processes is seen
//! even while live workers keep publishing.
//!
//! It answers **200 even when degraded**: Riffle keeps serving training defaults while the
//! store is down, so taking the server out of a load balancer would turn a degraded answer
//! into no answer. The `status` field says how things are (`healthy`; `stale` when a
//! stream group's source watermark, or one of its partitions, is older than the group's
//! freshness SLO or a partition was never published; `degraded` when the store cannot be
//! reached or the breaker is not closed); alert on it or on the metrics. Feast's `/health` answers an empty 200; a Feast client only looks
//! at the status code, so the JSON body does not disturb it.
//!
//! The store ping and its one-second reuse are [`Probe`]'s ([`crate::store_ping`]).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use riffle_core::Timestamp;
use serde::Serialize;

use crate::breaker::BreakerState;
use crate::state::AppState;
use crate::watermarks::Basis;

// Public here too, where it was before it had a module of its own.
pub use crate::store_ping::Probe;

#[derive(Serialize)]
pub struct Health {
    /// `degraded`: the store cannot be reached or the breaker is not closed; else `stale`:
    /// a stream group's values are older than its freshness SLO by its source's watermark
    /// (a partition stalled, or ingest behind or stopped); else `healthy`.
    pub status: &'static str,
    pub store: StoreHealth,
    pub breaker: BreakerHealth,
    pub requests: RequestHealth,
    pub cache: CacheHealth,
    pub groups: Vec<GroupHealth>,
    pub sources: Vec<SourceHealth>,
    /// How callers are known: `open` (anyone may read and write), `token` (the legacy
    /// write token), `principals` (`[auth]`).
    pub auth: &'static str,
}

/// One source's watermark as serve last read it.
#[derive(Serialize)]
pub struct SourceHealth {
    pub source: String,
    /// now − the source's watermark (its slowest partition for Kafka; null: none published).
    pub watermark_age_ms: Option<u64>,
    /// Ingest workers that published in the last 30 s.
    pub publishers_alive: usize,
    /// The Kafka topic its partition marks are of (null for other inputs).
    pub topic: Option<String>,
    /// Every partition of that topic, in order.
    pub partitions: Vec<PartitionHealth>,
}

/// One Kafka partition's mark.
#[derive(Serialize)]
pub struct PartitionHealth {
    pub partition: u32,
    /// now − its watermark (null: never published: no worker ever processed it).
    pub watermark_age_ms: Option<u64>,
    /// The worker that published it last.
    pub publisher: Option<String>,
    /// How long ago that was.
    pub published_ms_ago: Option<u64>,
}

#[derive(Serialize)]
pub struct StoreHealth {
    pub kind: &'static str,
    pub url: String,
    pub reachable: bool,
    pub ping_ms: Option<f64>,
    pub error: Option<String>,
    /// A Redis Cluster's nodes, each with its breaker state (empty for other stores).
    pub cluster_nodes: Vec<riffle_store::redis_cluster::NodeStatus>,
    pub in_flight: usize,
    pub max_in_flight: usize,
    pub timeout_ms: u64,
    /// Where serving reads go now: `primary`, or the URL of the replica read from.
    pub read_target: String,
    /// Each read replica as last measured by the store's monitor (`store.replicas`).
    pub replicas: Vec<riffle_store::ReplicaStatus>,
}

#[derive(Serialize)]
pub struct BreakerHealth {
    pub state: &'static str,
    /// Time left before a half-open trial (0 unless open).
    pub open_for_ms: u64,
}

#[derive(Serialize)]
pub struct RequestHealth {
    pub in_flight: usize,
    pub max_concurrent: usize,
}

#[derive(Serialize)]
pub struct CacheHealth {
    pub enabled: bool,
    pub entries: u64,
    pub hits: u64,
    pub misses: u64,
    /// Hits over lookups since start (null before any lookup).
    pub hit_rate: Option<f64>,
}

#[derive(Serialize)]
pub struct GroupHealth {
    pub group: String,
    pub freshness_slo_ms: u64,
    pub staleness_limit_ms: u64,
    /// Age of the last stored value served (null: none served yet).
    pub last_age_ms: Option<u64>,
    /// How long ago that value was served.
    pub last_served_ms_ago: Option<u64>,
    /// `fresh` / `stale` / `expired` for that last age, or `unknown`.
    pub freshness: &'static str,
    /// What the group's ages are measured from as a whole: `watermark` (the source's: its
    /// slowest Kafka partition, or its live workers'), `last_watermark` (ingest stopped: its
    /// last one) or `event_ts` (the row's own). A row written from Kafka is aged by its own
    /// partition's watermark (`sources[].partitions`).
    pub freshness_basis: &'static str,
    /// The group's source, if it has one.
    pub source: Option<String>,
    /// now − the source's watermark (null: no watermark used).
    pub watermark_age_ms: Option<u64>,
}

pub async fn health(State(state): State<Arc<AppState>>) -> Json<Health> {
    let store = state.reader.store();
    let info = store.info();
    let ping = state.probe.ping(store, &state.metrics).await;
    let breaker = state.reader.breaker.state();
    let (hits, misses) = state.reader.cache.counts();
    let max_concurrent = state.registry.serve.max_concurrent_requests.max(1);
    let now = Timestamp::now().millis();
    let groups = state
        .registry
        .groups
        .iter()
        .map(|g| {
            let obs = &state.reader.observed[g.id];
            let basis = state.reader.watermarks.basis(g.id, None);
            let age = obs.last_age_ms.load(Ordering::Relaxed);
            let at = obs.last_served_at_ms.load(Ordering::Relaxed);
            let last_age_ms = (age != u64::MAX).then_some(age);
            let freshness = match last_age_ms {
                None => "unknown",
                Some(a) if a <= g.freshness_slo.as_millis() as u64 => "fresh",
                Some(a) if a <= g.staleness_limit.as_millis() as u64 => "stale",
                Some(_) => "expired",
            };
            GroupHealth {
                group: g.name.clone(),
                freshness_slo_ms: g.freshness_slo.as_millis() as u64,
                staleness_limit_ms: g.staleness_limit.as_millis() as u64,
                last_age_ms,
                last_served_ms_ago: (at > 0).then(|| now.saturating_sub(at).max(0) as u64),
                freshness,
                freshness_basis: basis.as_str(),
                source: g.source.map(|s| state.registry.sources[s].name.clone()),
                watermark_age_ms: match basis {
                    Basis::Partition(t) | Basis::Watermark(t) | Basis::LastWatermark(t) => {
                        Some(now.saturating_sub(t.millis()).max(0) as u64)
                    }
                    Basis::EventTime => None,
                },
            }
        })
        .collect();
    let (target, replicas) = store.replicas();
    let read_target = match target {
        riffle_store::ReadNode::Primary => "primary".to_owned(),
        riffle_store::ReadNode::Replica(i) => replicas
            .get(i)
            .map_or_else(|| format!("replica {i}"), |r| r.url.clone()),
    };
    let sources = source_health(&state, now);
    let reachable = ping.is_ok() && breaker == BreakerState::Closed;
    let stale = behind_slo(&state, &sources);
    Json(Health {
        status: match (reachable, stale) {
            (false, _) => "degraded",
            (true, true) => "stale",
            (true, false) => "healthy",
        },
        store: StoreHealth {
            kind: info.kind,
            url: info.url,
            reachable: ping.is_ok(),
            ping_ms: ping.as_ref().ok().map(|d| d.as_secs_f64() * 1000.0),
            error: ping.err(),
            cluster_nodes: store.cluster_nodes(),
            in_flight: store.in_flight(),
            max_in_flight: info.max_in_flight,
            timeout_ms: info.timeout_ms,
            read_target,
            replicas,
        },
        breaker: BreakerHealth {
            state: breaker.as_str(),
            open_for_ms: state.reader.breaker.open_for().as_millis() as u64,
        },
        requests: RequestHealth {
            in_flight: max_concurrent - state.concurrency.available_permits(),
            max_concurrent,
        },
        cache: CacheHealth {
            enabled: state.reader.cache.enabled(),
            entries: state.reader.cache.entries(),
            hits,
            misses,
            hit_rate: (hits + misses > 0).then(|| hits as f64 / (hits + misses) as f64),
        },
        groups,
        sources,
        auth: state.gate.mode(),
    })
}

/// Every source's watermark and partition marks, as last read.
fn source_health(state: &AppState, now: i64) -> Vec<SourceHealth> {
    let age = |ms: i64| now.saturating_sub(ms).max(0) as u64;
    state
        .registry
        .sources
        .iter()
        .enumerate()
        .map(|(i, source)| {
            let w = state.reader.watermarks.source(i);
            let marks = w.as_ref().and_then(|w| w.partitions.as_ref());
            SourceHealth {
                source: source.name.clone(),
                watermark_age_ms: w.as_ref().and_then(|w| w.basis_ms()).map(age),
                publishers_alive: w.as_ref().map_or(0, |w| w.alive),
                topic: marks.map(|m| m.topic.clone()),
                partitions: marks
                    .map(|m| {
                        (0u32..)
                            .zip(&m.marks)
                            .map(|(partition, mark)| PartitionHealth {
                                partition,
                                watermark_age_ms: mark.as_ref().map(|m| age(m.watermark_ms)),
                                publisher: mark.as_ref().map(|m| m.publisher.clone()),
                                published_ms_ago: mark.as_ref().map(|m| age(m.published_at_ms)),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        })
        .collect()
}

/// Whether some stream group's values are older than its freshness SLO by its source's
/// watermark, or its source has a partition no worker ever published.
fn behind_slo(state: &AppState, sources: &[SourceHealth]) -> bool {
    state.registry.groups.iter().any(|g| {
        let Some(source) = g.source.and_then(|s| sources.get(s)) else {
            return false;
        };
        let slo = g.freshness_slo.as_millis() as u64;
        source.watermark_age_ms.is_some_and(|a| a > slo)
            || source
                .partitions
                .iter()
                .any(|p| p.watermark_age_ms.is_none())
    })
}

/// `GET /metrics`: samples the gauges that are cheaper to read than to track, then encodes.
pub async fn metrics(State(state): State<Arc<AppState>>) -> impl axum::response::IntoResponse {
    let m = &state.metrics;
    m.store_in_flight
        .set(state.reader.store().in_flight() as i64);
    m.cache_entries.set(state.reader.cache.entries() as i64);
    m.breaker_state.set(state.reader.breaker.state().gauge());
    state.reader.drift.publish(&state.registry, m);
    m.replicas(&state.reader.store().replicas().1);
    let now = Timestamp::now().millis();
    for (i, source) in state.registry.sources.iter().enumerate() {
        let w = state.reader.watermarks.source(i);
        let age = |ms: i64| (now - ms).max(0) as f64 / 1000.0;
        if let Some(ms) = w.as_ref().and_then(|w| w.basis_ms()) {
            m.source_watermark_age(&source.name, age(ms));
        }
        let marks = w.as_ref().and_then(|w| w.partitions.as_ref());
        for (partition, mark) in marks.into_iter().flat_map(|m| (0u32..).zip(&m.marks)) {
            if let Some(mark) = mark {
                m.partition_watermark_age(&source.name, partition, age(mark.watermark_ms));
            }
        }
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.encode(),
    )
}

/// `GET /v1/distributions`: the sampled distribution of every feature served
/// ([`crate::drift::Snapshot`]), what `riffle baseline save` stores.
pub async fn distributions(
    State(state): State<Arc<AppState>>,
) -> axum::Json<crate::drift::Snapshot> {
    axum::Json(state.reader.drift.snapshot(&state.registry))
}
