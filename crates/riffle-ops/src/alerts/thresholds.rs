//! Every number the rules alert at: the named constants (and the two patterns the rules
//! match route and status labels with), and the thresholds derived from the registry (a
//! group's refresh interval and staleness threshold, a source's lag threshold, the time
//! after which ingest counts as stalled). `riffle check`, the runbook and the dashboard
//! read the same numbers from here.

use std::time::Duration;

use riffle_registry::{FeatureGroup, Registry};

/// The staleness alert fires at this multiple of the refresh interval (the lesson's rule).
pub const STALENESS_FACTOR: u32 = 2;
/// The in-flight alerts fire above this share of their bound.
pub const IN_FLIGHT_SHARE: f64 = 0.8;
/// The cache alert fires below this hit rate.
pub const CACHE_HIT_FLOOR: f64 = 0.5;
/// The default-rate alert needs at least this share of a group's values served as defaults…
pub const DEFAULT_SHARE_FLOOR: f64 = 0.1;
/// …and at least this multiple of the share over the hour before (a spike, not cold start).
pub const DEFAULT_SPIKE_FACTOR: f64 = 2.0;
/// The store memory alert fires above this share of Redis `maxmemory`.
pub const REDIS_MEMORY_SHARE: f64 = 0.85;
/// The dead-letter alert fires above this share of a source's events read.
pub const DEAD_LETTER_SHARE: f64 = 0.01;
/// Ingest is stalled when no durable flush happened for this many flush intervals…
pub const STALLED_FLUSHES: u32 = 10;
/// …and at least this long.
pub const STALLED_FLOOR: Duration = Duration::from_secs(60);
/// Largest finite bucket of `riffle_value_age_seconds` (7 d; `docs/metrics.md`).
pub const AGE_HISTOGRAM_TOP_SECONDS: u64 = 604_800;

/// Route templates of the read endpoints (`riffle_http_request_duration_seconds{endpoint}`).
pub const READ_ENDPOINTS_REGEX: &str = "/v1/features.*|/get-online-features";
/// Per-value statuses that served the training default.
pub const DEFAULT_STATUSES_REGEX: &str = "expired|missing|null|unavailable";

/// The interval a group's values are refreshed at: its `freshness_slo` (see the docs of
/// [`crate::alerts`]).
pub fn refresh_interval(group: &FeatureGroup) -> Duration {
    group.freshness_slo
}

/// Age at which the group's staleness alert fires: 2 × its refresh interval.
pub fn staleness_threshold(group: &FeatureGroup) -> Duration {
    refresh_interval(group) * STALENESS_FACTOR
}

/// The age the staleness rule can actually see: the threshold, or the age histogram's top
/// bucket when the threshold lies beyond it.
pub fn staleness_alert_age(group: &FeatureGroup) -> Duration {
    staleness_threshold(group).min(Duration::from_secs(AGE_HISTOGRAM_TOP_SECONDS))
}

/// Ingest lag above which the lag alert fires (the registry's `ingest.lag_threshold`).
pub fn lag_threshold(registry: &Registry) -> Duration {
    registry.ingest.lag_threshold
}

/// Ingest is stalled after this long without a durable flush.
pub fn stalled_after(registry: &Registry) -> Duration {
    (registry.ingest.flush_interval * STALLED_FLUSHES).max(STALLED_FLOOR)
}
