//! The one error type of the HTTP surface, [`ApiError`], and its JSON shape:
//! `{"error": {"code": "...", "message": "..."}}` (plus `group`/`reason` and a
//! `degradation` of `critical` when a group is unsafe to serve on defaults).
//!
//! Every variant decides its own status code: bad input is a 4xx, never a 5xx; only the
//! store's health (a failed write, an unsafe group during an outage) and load shedding
//! answer 503. Axum's own rejections (bad JSON, too-large body, bad query or path) are
//! converted here too, so clients only ever see one error shape.

use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use riffle_core::Degradation;
use serde::Serialize;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("request body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("request body does not have the expected shape: {0}")]
    InvalidRequest(String),
    #[error("request body is larger than the {limit}-byte limit")]
    BodyTooLarge { limit: usize },
    #[error("unknown entity {0:?}")]
    UnknownEntity(String),
    #[error("unknown feature group (feature view) {0:?}")]
    UnknownGroup(String),
    #[error("unknown feature {feature:?} in group {group:?}")]
    UnknownFeature { group: String, feature: String },
    #[error("unknown feature service {0:?}")]
    UnknownService(String),
    #[error("feature reference {0:?} is not of the form group:feature")]
    BadFeatureRef(String),
    #[error("unknown push source {0:?}")]
    UnknownPushSource(String),
    #[error("bad entity id at position {index}: {reason}")]
    BadEntityId { index: usize, reason: String },
    #[error("no entities given: send at least one id")]
    EmptyBatch,
    #[error("batch of {got} entities is larger than the limit of {max}")]
    BatchTooLarge { got: usize, max: usize },
    #[error("bad value: {0}")]
    BadValue(String),
    #[error("{0}")]
    Unsupported(String),
    /// Refused by the auth gate: 401, 403 or 429 with their headers.
    #[error("{}", .0.message())]
    Denied(riffle_auth::Denial),
    #[error("server is at its limit of {0} concurrent requests; retry shortly")]
    Overloaded(usize),
    #[error("group {group:?} is marked unsafe to serve on defaults and its values are {reason}")]
    Unsafe { group: String, reason: &'static str },
    #[error("the store did not accept the write: {0}")]
    WriteFailed(String),
    #[error("no route for {0}")]
    NotFound(String),
    #[error("method not allowed on this route")]
    MethodNotAllowed,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        use ApiError::*;
        match self {
            MalformedJson(_)
            | BadFeatureRef(_)
            | BadEntityId { .. }
            | EmptyBatch
            | BatchTooLarge { .. }
            | BadValue(_)
            | Unsupported(_) => StatusCode::BAD_REQUEST,
            InvalidRequest(_) => StatusCode::UNPROCESSABLE_ENTITY,
            BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            UnknownEntity(_)
            | UnknownGroup(_)
            | UnknownFeature { .. }
            | UnknownService(_)
            | UnknownPushSource(_)
            | NotFound(_) => StatusCode::NOT_FOUND,
            Denied(d) => d.status(),
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Overloaded(_) | Unsafe { .. } | WriteFailed(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A stable machine-readable code, documented in the OpenAPI file.
    pub fn code(&self) -> &'static str {
        use ApiError::*;
        match self {
            MalformedJson(_) => "malformed_json",
            InvalidRequest(_) => "invalid_request",
            BodyTooLarge { .. } => "body_too_large",
            UnknownEntity(_) => "unknown_entity",
            UnknownGroup(_) => "unknown_group",
            UnknownFeature { .. } => "unknown_feature",
            UnknownService(_) => "unknown_service",
            BadFeatureRef(_) => "bad_feature_ref",
            UnknownPushSource(_) => "unknown_push_source",
            BadEntityId { .. } => "bad_entity_id",
            EmptyBatch => "empty_batch",
            BatchTooLarge { .. } => "batch_too_large",
            BadValue(_) => "bad_value",
            Unsupported(_) => "unsupported",
            Denied(d) => d.code(),
            Overloaded(_) => "overloaded",
            Unsafe { .. } => "unsafe_to_serve",
            WriteFailed(_) => "store_unavailable",
            NotFound(_) => "not_found",
            MethodNotAllowed => "method_not_allowed",
        }
    }

    /// Maps a body-reading rejection: too large is 413, anything else a bad request.
    pub fn from_body(rejection: BytesRejection, limit: usize) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::BodyTooLarge { limit }
        } else {
            ApiError::MalformedJson(rejection.body_text())
        }
    }

    /// Maps a `serde_json` failure: syntax errors are malformed JSON (400); well-formed JSON
    /// of the wrong shape (missing field, wrong type) is 422, as FastAPI answers it.
    pub fn from_json(e: serde_json::Error) -> Self {
        match e.classify() {
            serde_json::error::Category::Data => ApiError::InvalidRequest(e.to_string()),
            _ => ApiError::MalformedJson(e.to_string()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::InvalidRequest(r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::InvalidRequest(r.body_text())
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    degradation: Option<Degradation>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'static str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Denied(denial) = self {
            // The denial adds its own headers (`WWW-Authenticate`, `Retry-After`).
            return denial.into_response();
        }
        let (group, reason, degradation) = match &self {
            ApiError::Unsafe { group, reason } => (
                Some(group.as_str()),
                Some(*reason),
                Some(Degradation::Critical),
            ),
            _ => (None, None, None),
        };
        let body = Body {
            error: Inner {
                code: self.code(),
                message: self.to_string(),
                group,
                reason,
            },
            degradation,
        };
        (self.status(), axum::Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_input_is_never_a_server_error() {
        let cases = [
            ApiError::MalformedJson("x".into()),
            ApiError::InvalidRequest("x".into()),
            ApiError::BodyTooLarge { limit: 1 },
            ApiError::UnknownGroup("g".into()),
            ApiError::BadEntityId {
                index: 0,
                reason: "empty".into(),
            },
            ApiError::EmptyBatch,
            ApiError::BatchTooLarge { got: 2, max: 1 },
        ];
        for e in cases {
            assert!(e.status().is_client_error(), "{e}");
        }
    }

    #[test]
    fn json_syntax_and_shape_errors_differ() {
        let syntax = serde_json::from_str::<Vec<u8>>("[1,").unwrap_err();
        assert_eq!(
            ApiError::from_json(syntax).status(),
            StatusCode::BAD_REQUEST
        );
        let shape = serde_json::from_str::<Vec<u8>>("{}").unwrap_err();
        assert_eq!(
            ApiError::from_json(shape).status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }
}
