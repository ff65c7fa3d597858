//! HTTP middleware of our own: the data routes' guard (the concurrency limit that sheds
//! load with a 503, then who is calling, by the auth gate), the guard of `/metrics`, and
//! the request metrics (by route template, never the raw path).

use std::sync::{Arc, RwLock};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::metrics::gauge::Gauge;

use riffle_auth::Route;

use crate::error::ApiError;
use crate::metrics::HttpLabels;
use crate::state::AppState;

/// The guard of read routes: `guard` for [`Route::Read`].
pub async fn guard_reads(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    guard(&state, req, next, Route::Read).await
}

/// The guard of write routes: `guard` for [`Route::Write`].
pub async fn guard_writes(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    guard(&state, req, next, Route::Write).await
}

/// Load shedding, then who is calling, in one layer. Shedding refuses a request at once
/// with 503 when `serve.max_concurrent_requests` are in flight: queueing would only turn
/// overload into timeouts. Then the gate turns the `Authorization` header into a
/// [`riffle_auth::Caller`] (401 or 429 otherwise), put in the request's extensions for the
/// handler, which checks it against the groups the request names once it has read them
/// (403). One layer rather than two because every axum `from_fn` layer clones and drops a
/// boxed inner service per request (~5% of a cached read in perf).
async fn guard(state: &AppState, mut req: Request, next: Next, route: Route) -> Response {
    let Ok(_permit) = state.concurrency.try_acquire() else {
        state.metrics.http_shed.inc();
        return ApiError::Overloaded(state.registry.serve.max_concurrent_requests).into_response();
    };
    match state.gate.authenticate(req.headers(), route) {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(denial) => ApiError::Denied(denial).into_response(),
    }
}

/// The guard of `/metrics` and `/v1/distributions`: open for scrapers unless
/// `auth.protect_metrics`, then the `metrics` scope.
pub async fn guard_metrics(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let allowed = state
        .gate
        .authenticate(req.headers(), Route::Metrics)
        .and_then(|caller| state.gate.may_scrape(caller));
    match allowed {
        Ok(()) => next.run(req).await,
        Err(denial) => ApiError::Denied(denial).into_response(),
    }
}

/// Holds the in-flight gauge up for the life of a request, even one the client abandons.
struct InFlight<'a>(&'a Gauge);

impl<'a> InFlight<'a> {
    fn enter(gauge: &'a Gauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn status_class(code: u16) -> &'static str {
    match code {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// Route templates seen so far, each leaked once as a `&'static str`, so the per-request
/// metric labels need no allocation. Bounded: axum's `MatchedPath` is always one of the
/// router's templates, never a raw path.
static ROUTES: RwLock<Vec<&'static str>> = RwLock::new(Vec::new());

fn interned_route(template: &str) -> &'static str {
    let known = ROUTES
        .read()
        .ok()
        .and_then(|routes| routes.iter().copied().find(|r| *r == template));
    if let Some(route) = known {
        return route;
    }
    let Ok(mut routes) = ROUTES.write() else {
        return "unmatched";
    };
    if let Some(route) = routes.iter().copied().find(|r| *r == template) {
        return route;
    }
    let route: &'static str = Box::leak(template.to_owned().into_boxed_str());
    routes.push(route);
    route
}

fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// Counts and times every request by route template, method and status class.
pub async fn record_http(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let endpoint = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| interned_route(p.as_str()));
    let method = method_label(req.method());
    let started = tokio::time::Instant::now();
    let response = {
        let _in_flight = InFlight::enter(&state.metrics.http_in_flight);
        next.run(req).await
    };
    let labels = HttpLabels {
        endpoint,
        method,
        status_class: status_class(response.status().as_u16()),
    };
    state
        .metrics
        .http_duration
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    state.metrics.http_requests.get_or_create(&labels).inc();
    response
}
