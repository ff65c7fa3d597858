//! The ingest process's own HTTP listener (`ingest.listen`, default `127.0.0.1:6567`):
//! `GET /metrics` (Prometheus text, [`metrics`](mod@metrics)), `GET /health`, and — when the
//! input is HTTP — `POST /v1/events` ([`crate::feed::http`]).
//!
//! [`IngestStatus`] is what both read: the run's summary after its last flush (fed by the
//! pipeline's `progress` callback), when that flush happened, and for Kafka a way to sample
//! per-partition lag. `/health` answers `{"status": "healthy"|"unhealthy", "reasons": [...]}`,
//! 503 when unhealthy:
//!
//! - no durable flush for `max(10 s, 50 × flush_interval)` (the loop flushes every interval
//!   even when idle, so this means store writes are failing or hanging);
//! - lag (now − event-time watermark) above `ingest.lag_threshold`;
//! - Kafka: no partition assigned 30 s after start (broker unreachable, or more consumers in
//!   the group than partitions), or a partition's lag above the threshold;
//! - Kafka, the whole group as the broker sees it ([`crate::feed::kafka::group_monitor`]): partitions
//!   owned by no member of a settled group for 30 s, or a partition whose oldest
//!   uncommitted message is older than the threshold (whoever holds it), so every live
//!   worker reports a partition nobody processes.

pub mod metrics;

use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use riffle_auth::{Gate, Route};
use riffle_core::Timestamp;
use riffle_listener::Listener;
use riffle_registry::IngestSettings;
use serde::Serialize;

use crate::feed::kafka::group_monitor::GroupWatch;
use crate::feed::kafka::FeedControl;
use crate::pipeline::summary::IngestSummary;
use metrics::{GroupPartitionSample, GroupSampled, IngestMetrics, PartitionSample, Sampled};

/// Samples Kafka partitions: `(partition, messages behind, stream id)` for every partition
/// this process holds.
pub type PartitionProbe = Box<dyn Fn() -> Vec<(i32, Option<i64>, u64)> + Send + Sync>;

/// How long a Kafka consumer may hold no partition before `/health` says so.
const ASSIGNMENT_GRACE: Duration = Duration::from_secs(30);

/// What `/metrics` and `/health` read, shared with the run's progress callback.
pub struct IngestStatus {
    pub metrics: IngestMetrics,
    started: Instant,
    last: Mutex<Last>,
    lag_threshold: Duration,
    stall_after: Duration,
    partitions: OnceLock<PartitionProbe>,
    group: OnceLock<(Arc<GroupWatch>, Arc<FeedControl>)>,
}

#[derive(Default)]
struct Last {
    flushed_at: Option<Instant>,
    summary: IngestSummary,
}

/// The `/health` answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Health {
    pub status: &'static str,
    pub reasons: Vec<String>,
    pub source: String,
    pub events_read: u64,
    pub applied: u64,
    pub dead_lettered: u64,
    pub flushes: u64,
    /// now − watermark, when there is one.
    pub lag_seconds: Option<f64>,
    pub seconds_since_flush: f64,
}

impl IngestStatus {
    /// The status of an ingest run of `source` with these settings and queue bound.
    pub fn new(source: &str, settings: &IngestSettings, queue_capacity: usize) -> Self {
        Self {
            metrics: IngestMetrics::new(source, queue_capacity),
            started: Instant::now(),
            last: Mutex::new(Last {
                flushed_at: None,
                summary: IngestSummary {
                    source: source.to_owned(),
                    ..IngestSummary::default()
                },
            }),
            lag_threshold: settings.lag_threshold,
            stall_after: (settings.flush_interval * 50).max(Duration::from_secs(10)),
            partitions: OnceLock::new(),
            group: OnceLock::new(),
        }
    }

    /// With Kafka: how to sample the partitions' lag (set once; later calls are ignored).
    pub fn set_partitions(&self, probe: PartitionProbe) {
        let _ = self.partitions.set(probe);
    }

    /// With Kafka: the group monitor's samples and the consumer's membership counts (set
    /// once; later calls are ignored).
    pub fn set_group(&self, watch: Arc<GroupWatch>, feed: Arc<FeedControl>) {
        let _ = self.group.set((watch, feed));
    }

    /// Takes the summary after a flush (the pipeline's `progress` callback).
    pub fn observe(&self, summary: &IngestSummary) {
        self.metrics.observe(summary);
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        last.flushed_at = Some(Instant::now());
        last.summary = summary.clone();
    }

    fn sample(&self) -> (Sampled, Health) {
        let now = Timestamp::now().millis();
        let last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let s = &last.summary;
        let since_flush = last
            .flushed_at
            .unwrap_or(self.started)
            .elapsed()
            .as_secs_f64();
        let lag_seconds = s.watermark_ms.map(|w| (now - w).max(0) as f64 / 1000.0);
        let mut reasons = Vec::new();
        if since_flush > self.stall_after.as_secs_f64() {
            reasons.push(format!(
                "no durable flush for {since_flush:.0} s: store writes are failing or hanging"
            ));
        }
        let threshold = self.lag_threshold.as_secs_f64();
        if let Some(lag) = lag_seconds.filter(|l| *l > threshold) {
            reasons.push(format!(
                "lag {lag:.0} s is above ingest.lag_threshold ({threshold:.0} s)"
            ));
        }
        let mut partitions = Vec::new();
        if let Some(probe) = self.partitions.get() {
            for (partition, messages, stream) in probe() {
                let seconds = s
                    .stream_watermarks
                    .get(&stream)
                    .map(|w| (now - w).max(0) as f64 / 1000.0);
                if let Some(lag) = seconds.filter(|l| *l > threshold) {
                    reasons.push(format!(
                        "kafka partition {partition}: lag {lag:.0} s is above ingest.lag_threshold"
                    ));
                }
                partitions.push(PartitionSample {
                    partition,
                    messages,
                    seconds,
                });
            }
            if partitions.is_empty() && self.started.elapsed() > ASSIGNMENT_GRACE {
                reasons.push(
                    "kafka: no partition assigned (broker unreachable, or more consumers than partitions)"
                        .to_owned(),
                );
            }
        }
        let group = self.group_sample(&mut reasons);
        let healthy = reasons.is_empty();
        let health = Health {
            status: if healthy { "healthy" } else { "unhealthy" },
            reasons,
            source: s.source.clone(),
            events_read: s.events_read,
            applied: s.applied,
            dead_lettered: s.dead_lettered_total(),
            flushes: s.flushes,
            lag_seconds,
            seconds_since_flush: since_flush,
        };
        let sampled = Sampled {
            lag_seconds,
            since_flush_seconds: since_flush,
            partitions,
            healthy,
            group,
        };
        (sampled, health)
    }

    /// The group monitor's latest sample for `/metrics`, adding what is wrong with the
    /// group to `reasons`.
    fn group_sample(&self, reasons: &mut Vec<String>) -> Option<GroupSampled> {
        let (watch, feed) = self.group.get()?;
        let (left, rejoined) = feed.membership_changes();
        let mut out = GroupSampled {
            up: false,
            members: 0,
            partitions: Vec::new(),
            left,
            rejoined,
            offset_gaps: feed.offset_gaps(),
        };
        let Some(latest) = watch.latest() else {
            return Some(out);
        };
        let Ok(sample) = &latest.sample else {
            return Some(out);
        };
        out.up = true;
        out.members = sample.members.len();
        let now = Timestamp::now().millis();
        let threshold = self.lag_threshold.as_secs_f64();
        for p in &sample.partitions {
            let seconds = p.lag_at(now).map(|d| d.as_secs_f64());
            if let Some(lag) = seconds.filter(|l| *l > threshold) {
                reasons.push(format!(
                    "kafka partition {}: its oldest uncommitted message is {lag:.0} s old, above ingest.lag_threshold (held by {})",
                    p.partition,
                    sample
                        .owner_of(p.partition)
                        .map_or("an unknown member".to_owned(), |m| m.name())
                ));
            }
            out.partitions.push(GroupPartitionSample {
                partition: p.partition,
                messages: p.lag_messages(),
                seconds,
                owned: !latest.unowned.contains(&p.partition),
            });
        }
        if let Some(since) = latest
            .unowned_since
            .filter(|s| s.elapsed() > ASSIGNMENT_GRACE)
        {
            reasons.push(format!(
                "kafka group {}: partitions {:?} owned by no member for {} s",
                sample.group,
                latest.unowned,
                since.elapsed().as_secs()
            ));
        }
        Some(out)
    }

    /// The `/health` answer now.
    pub fn health(&self) -> Health {
        self.sample().1
    }

    /// The `/metrics` text now.
    pub fn metrics_text(&self) -> String {
        let (sampled, _) = self.sample();
        self.metrics.encode(&sampled)
    }
}

/// `/metrics` and `/health` over `status`; merge the events route into it for HTTP input.
/// `/metrics` is open for scrapers unless `auth.protect_metrics` (then the `metrics`
/// scope, by `gate`).
pub fn router(status: Arc<IngestStatus>, gate: Arc<Gate>) -> Router {
    let scraped = Router::new()
        .route("/metrics", get(metrics))
        .route_layer(from_fn_with_state(gate, guard_metrics));
    Router::new()
        .merge(scraped)
        .route("/health", get(health))
        .with_state(status)
}

async fn guard_metrics(State(gate): State<Arc<Gate>>, req: Request, next: Next) -> Response {
    let allowed = gate
        .authenticate(req.headers(), Route::Metrics)
        .and_then(|caller| gate.may_scrape(caller));
    match allowed {
        Ok(()) => next.run(req).await,
        Err(denial) => denial.into_response(),
    }
}

/// Serves `router` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: Listener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    listener.serve(router, shutdown).await
}

async fn metrics(State(status): State<Arc<IngestStatus>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        status.metrics_text(),
    )
        .into_response()
}

async fn health(State(status): State<Arc<IngestStatus>>) -> Response {
    let health = status.health();
    let code = if health.reasons.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(health)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_above_the_threshold_is_unhealthy_with_a_reason() {
        let settings = IngestSettings::default();
        let status = IngestStatus::new("tx", &settings, 10);
        assert_eq!(status.health().status, "healthy");
        let old = Timestamp::now().millis() - 600_000;
        status.observe(&IngestSummary {
            source: "tx".into(),
            flushes: 1,
            watermark_ms: Some(old),
            ..IngestSummary::default()
        });
        let health = status.health();
        assert_eq!(health.status, "unhealthy");
        assert!(
            health.reasons[0].contains("ingest.lag_threshold"),
            "{health:?}"
        );
        assert!(status
            .metrics_text()
            .contains("riffle_ingest_healthy{source=\"tx\"} 0"));
    }
}
