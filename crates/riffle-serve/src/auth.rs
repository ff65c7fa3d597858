//! Bearer-token checks: writes need the token when one is configured; reads too when the
//! registry sets `serve.read_requires_token`. Compared in constant time.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::AppState;

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// True when `req` carries `Authorization: Bearer <token>`.
fn authorized(req: &Request, token: &str) -> bool {
    req.headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| constant_time_eq(given.trim().as_bytes(), token.as_bytes()))
}

/// Middleware on write routes.
pub async fn require_write(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    match &state.write_token {
        Some(token) if !authorized(&req, token) => ApiError::Unauthorized.into_response(),
        _ => next.run(req).await,
    }
}

/// Middleware on read routes.
pub async fn require_read(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    match &state.write_token {
        Some(token) if state.registry.serve.read_requires_token && !authorized(&req, token) => {
            ApiError::Unauthorized.into_response()
        }
        _ => next.run(req).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_whole_tokens() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
    }
}
