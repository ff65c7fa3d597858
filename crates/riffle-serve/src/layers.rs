//! HTTP middleware of our own: the concurrency limit that sheds load with a 503, and the
//! request metrics (by route template, never the raw path).

use std::sync::{Arc, RwLock};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::metrics::gauge::Gauge;

use crate::error::ApiError;
use crate::metrics::HttpLabels;
use crate::state::AppState;

/// Refuses a request at once with 503 when `serve.max_concurrent_requests` are in flight:
/// queueing would only turn overload into timeouts.
pub async fn shed_load(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    match state.concurrency.clone().try_acquire_owned() {
        Ok(_permit) => next.run(req).await,
        Err(_) => {
            state.metrics.http_shed.inc();
            ApiError::Overloaded(state.registry.serve.max_concurrent_requests).into_response()
        }
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
