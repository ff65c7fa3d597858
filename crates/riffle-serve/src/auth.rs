//! Bearer-token checks: writes need the token when one is configured; reads too when the
//! registry sets `serve.read_requires_token`. Compared in constant time. Applied by the data
//! routes' guard ([`crate::layers::guard_reads`], [`crate::layers::guard_writes`]).

use axum::extract::Request;
use axum::http::header::AUTHORIZATION;

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

/// Whether a write may go ahead: always when no token is configured, else with the token.
pub fn write_allowed(state: &AppState, req: &Request) -> bool {
    match &state.write_token {
        Some(token) => authorized(req, token),
        None => true,
    }
}

/// Whether a read may go ahead: the token is asked for only when the registry sets
/// `serve.read_requires_token`.
pub fn read_allowed(state: &AppState, req: &Request) -> bool {
    match &state.write_token {
        Some(token) if state.registry.serve.read_requires_token => authorized(req, token),
        _ => true,
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
