//! `riffle serve`: the HTTP feature server.
//!
//! - [`api::v1`]: Riffle's own API under `/v1/` (described by [`openapi`] at `/openapi.json`).
//! - [`api::feast`]: Feast 0.67's feature-server API (`/get-online-features`, `/push`,
//!   `/write-to-online-store`).
//! - [`selection`] and [`ids`]: what a request asks for, checked against the registry.
//! - [`lookup`]: the layered read path — hot cache → breaker → store → decode → freshness
//!   → fallback → unsafe policy — in one function that reads top to bottom.
//! - [`cache`], [`breaker`], [`freshness`]: the layers themselves; [`watermarks`]: the
//!   sources' published watermarks that stream groups' freshness is measured from.
//! - [`push`]: the write path shared by the three write endpoints.
//! - [`feature_log`]: the values served to a sample of entities, as Parquet files for the
//!   consistency validator (`[serve.logging]`), written by a background task off the
//!   request path.
//! - [`drift`]: sampled distributions of the values served per feature (`/v1/distributions`),
//!   and their PSI against a baseline.
//! - [`health`] (`/health`, `/metrics`, `/v1/distributions`), [`store_ping`] (the store ping
//!   `/health` reuses for a second), [`metrics`] (every metric name, in one table),
//!   [`layers`] (load shedding, who is calling by [`riffle_auth::Gate`], request metrics), [`error`]
//!   (the one JSON error shape).
//! - [`state`]: what every handler shares ([`AppState`]), built from [`ServeDeps`].
//!
//! [`run`] takes a bound listener and a shutdown future, so tests bind `127.0.0.1:0`;
//! [`serve_state`] a [`riffle_listener::Listener`] (TLS, connection limits) as the CLI
//! configures it.
#![forbid(unsafe_code)]

pub mod api;
pub mod breaker;
pub mod cache;
pub mod drift;
pub mod error;
pub mod feature_log;
pub mod freshness;
pub mod health;
pub mod ids;
pub mod layers;
pub mod lookup;
pub mod metrics;
pub mod openapi;
pub mod push;
pub mod selection;
pub mod state;
pub mod store_ping;
pub mod watermarks;

use std::future::Future;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::Uri;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use axum::Router;
use riffle_listener::Listener;

pub use error::ApiError;
pub use state::{AppState, ServeDeps};

/// The whole HTTP surface. The request limits are composed here, outermost first:
///
/// 1. request metrics (every route, by template);
/// 2. the data routes' guard, one layer ([`layers::guard_reads`], [`layers::guard_writes`]):
///    the concurrency limit — `serve.max_concurrent_requests`, beyond it 503 at once (data
///    routes only: `/health` and `/metrics` must answer under overload) — then who is
///    calling ([`riffle_auth::Gate`]: 401, 429); each handler checks the caller may read or
///    write the groups its request names (403);
/// 3. body size limit — `serve.max_body_bytes`, 413 when the body is read;
/// 4. batch size — `serve.max_batch`, checked by the handler as it reads the ids (400);
///
/// then the read path of [`lookup::Reader::read`].
pub fn router(state: Arc<AppState>) -> Router {
    let reads = Router::new()
        .route("/v1/features", post(api::v1::post_features))
        .route("/v1/features/{entity}/{id}", get(api::v1::get_features))
        .route(
            "/get-online-features",
            post(api::feast::get_online_features),
        )
        .route_layer(from_fn_with_state(state.clone(), layers::guard_reads));
    let writes = Router::new()
        .route("/v1/push", post(api::v1::push))
        .route("/push", post(api::feast::push))
        .route(
            "/write-to-online-store",
            post(api::feast::write_to_online_store),
        )
        .route_layer(from_fn_with_state(state.clone(), layers::guard_writes));
    let data = reads
        .merge(writes)
        .layer(DefaultBodyLimit::max(state.max_body()));
    let scraped = Router::new()
        .route("/metrics", get(health::metrics))
        .route("/v1/distributions", get(health::distributions))
        .route_layer(from_fn_with_state(state.clone(), layers::guard_metrics));
    Router::new()
        .merge(data)
        .merge(scraped)
        .route("/health", get(health::health))
        .route("/openapi.json", get(openapi::serve))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(state.clone(), layers::record_http))
        .with_state(state)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(uri.path().chars().take(200).collect())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Serves on `listener` (plain HTTP, the listener's default limits) until `shutdown`
/// completes, then finishes the requests in flight and the feature log's last file.
pub async fn run(
    listener: tokio::net::TcpListener,
    deps: ServeDeps,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let state = Arc::new(AppState::new(deps));
    serve_state(Listener::new(listener), state, shutdown).await
}

/// [`run`] with a state the caller prepared (e.g. a drift baseline loaded into
/// `state.reader.drift`).
pub async fn serve_state(
    listener: Listener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // The first answer already ages stream groups from their watermarks, unless the store
    // is slow to say: a hung store must not hold the server's start back.
    let first = state.reader.watermarks.refresh();
    let _ = tokio::time::timeout(watermarks::REFRESH_EVERY, first).await;
    let info = state.reader.store().info();
    let log_state = state.clone();
    tracing::info!(
        addr = %listener.local_addr()?,
        store = info.kind,
        cache = state.reader.cache.enabled(),
        "riffle serve listening"
    );
    let served = listener
        .metrics(log_state.listener_metrics.clone())
        .serve(router(state), shutdown)
        .await;
    // Every request has been answered: write what the feature log holds, complete its file.
    if let Some(log) = &log_state.feature_log {
        log.close().await;
    }
    served
}
