//! The state every handler shares: registry, read path, metrics, the auth gate, limits,
//! feature log; and [`ServeDeps`], what the caller builds it from.

use std::sync::Arc;

use riffle_auth::Gate;
use riffle_listener::ListenerMetrics;
use riffle_registry::Registry;
use tokio::sync::Semaphore;

use crate::api::json::JsonNames;
use riffle_store::OnlineStore;

use crate::feature_log::FeatureLog;
use crate::lookup::Reader;
use crate::metrics::Metrics;
use crate::selection::SelectionCache;
use crate::store_ping::Probe;

/// Everything the server needs, built by the caller (the CLI or a test).
pub struct ServeDeps {
    pub registry: Arc<Registry>,
    pub store: Arc<OnlineStore>,
    /// `false` turns the hot cache off (`--no-cache`).
    pub cache_enabled: bool,
    /// Who may read and write ([`riffle_auth::Gate`]): the registry's principals and the
    /// legacy write token.
    pub gate: Arc<Gate>,
}

pub struct AppState {
    pub registry: Arc<Registry>,
    pub reader: Reader,
    pub metrics: Arc<Metrics>,
    pub gate: Arc<Gate>,
    pub probe: Probe,
    /// Permits for data requests in flight (`serve.max_concurrent_requests`).
    pub concurrency: Arc<Semaphore>,
    /// The registry's names as JSON fragments, for writing responses.
    pub json_names: JsonNames,
    /// Resolved selections of `GET` reads by (entity, raw query).
    pub selections: SelectionCache,
    /// The feature log (`[serve.logging]`); `None`: nothing is logged.
    pub feature_log: Option<FeatureLog>,
    /// The listener's connections (`riffle_listener_*` in `/metrics`).
    pub listener_metrics: ListenerMetrics,
}

impl AppState {
    pub fn new(deps: ServeDeps) -> Self {
        let mut metrics = Metrics::new(&deps.registry);
        deps.gate.metrics.register(metrics.registry_mut());
        let listener_metrics = ListenerMetrics::default();
        listener_metrics.register(metrics.registry_mut().sub_registry_with_prefix("listener"));
        let metrics = Arc::new(metrics);
        metrics
            .store_in_flight_limit
            .set(deps.store.limits().max_in_flight as i64);
        let reader = Reader::new(
            deps.registry.clone(),
            deps.store,
            deps.cache_enabled,
            metrics.clone(),
        );
        let concurrency = Arc::new(Semaphore::new(
            deps.registry.serve.max_concurrent_requests.max(1),
        ));
        let feature_log = FeatureLog::start(deps.registry.clone(), metrics.feature_log.clone());
        Self {
            feature_log,
            json_names: JsonNames::new(&deps.registry),
            selections: SelectionCache::new(1024),
            registry: deps.registry,
            reader,
            metrics,
            gate: deps.gate,
            probe: Probe::default(),
            concurrency,
            listener_metrics,
        }
    }

    pub fn max_batch(&self) -> usize {
        self.registry.serve.max_batch
    }

    pub fn max_body(&self) -> usize {
        self.registry.serve.max_body_bytes
    }
}
