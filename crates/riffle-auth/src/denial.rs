//! Refusals as HTTP answers, in the JSON error shape every Riffle listener uses
//! (`{"error": {"code": "...", "message": "..."}}`): 401 with `WWW-Authenticate: Bearer`
//! for a missing, malformed or unknown credential; 403 naming the scope the caller lacks;
//! 429 with `Retry-After` past a principal's rate. No message repeats what was presented.

use std::time::Duration;

use axum::http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// No `Authorization` header where one is needed.
    Missing,
    /// An `Authorization` header that is not `Bearer <token>`.
    Malformed,
    /// A token no principal has.
    Unknown,
    /// A JWT that is not to be believed (signature, key, algorithm, expiry, issuer or
    /// audience); which check failed is not said.
    Invalid,
    /// A known caller without the scope the action needs (as written: `read:user_velocity`).
    Forbidden { principal: String, scope: String },
    /// A principal past its `rate`.
    Limited {
        principal: String,
        retry_after: Duration,
    },
}

impl Denial {
    pub fn status(&self) -> StatusCode {
        match self {
            Denial::Missing | Denial::Malformed | Denial::Unknown | Denial::Invalid => {
                StatusCode::UNAUTHORIZED
            }
            Denial::Forbidden { .. } => StatusCode::FORBIDDEN,
            Denial::Limited { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Denial::Missing | Denial::Malformed | Denial::Unknown | Denial::Invalid => {
                "unauthorized"
            }
            Denial::Forbidden { .. } => "forbidden",
            Denial::Limited { .. } => "rate_limited",
        }
    }

    /// What the audit log and metrics call the outcome.
    pub fn outcome(&self) -> &'static str {
        match self {
            Denial::Missing => "no_token",
            Denial::Malformed => "malformed_token",
            Denial::Unknown => "unknown_token",
            Denial::Invalid => "invalid_token",
            Denial::Forbidden { .. } => "forbidden",
            Denial::Limited { .. } => "rate_limited",
        }
    }

    pub fn message(&self) -> String {
        match self {
            Denial::Missing => {
                "this route needs a bearer token: send Authorization: Bearer <token>".into()
            }
            Denial::Malformed => "the Authorization header is not \"Bearer <token>\"".into(),
            Denial::Unknown => "the bearer token is not one this server knows".into(),
            Denial::Invalid => {
                "the bearer token is not a JWT this server accepts (signature, key, expiry, issuer or audience)".into()
            }
            Denial::Forbidden { principal, scope } => {
                format!("principal {principal:?} lacks scope {scope}")
            }
            Denial::Limited {
                principal,
                retry_after,
            } => format!(
                "principal {principal:?} is over its request rate; retry after {} ms",
                retry_after.as_millis()
            ),
        }
    }
}

impl IntoResponse for Denial {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code(), "message": self.message() } });
        let mut response = (self.status(), axum::Json(body)).into_response();
        let headers = response.headers_mut();
        match &self {
            Denial::Missing | Denial::Malformed => {
                headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Denial::Unknown | Denial::Invalid => {
                headers.insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
            }
            Denial::Limited { retry_after, .. } => {
                // Whole seconds, rounded up: `Retry-After` has no fractions.
                let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                headers.insert(RETRY_AFTER, HeaderValue::from(seconds.max(1)));
            }
            Denial::Forbidden { .. } => {}
        }
        response
    }
}
