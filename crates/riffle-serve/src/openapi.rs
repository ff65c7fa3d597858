//! `GET /openapi.json`: the OpenAPI 3 description of `/v1` (and the operational routes),
//! hand-written in `openapi.json` beside this file and embedded at build time. A test
//! checks that every route it documents is served.

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

/// The document, as served.
pub const DOCUMENT: &str = include_str!("openapi.json");

pub async fn serve() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], DOCUMENT)
}

#[cfg(test)]
mod tests {
    #[test]
    fn is_valid_json_with_the_v1_paths() {
        let doc: serde_json::Value = serde_json::from_str(super::DOCUMENT).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        for path in [
            "/v1/features",
            "/v1/features/{entity}/{id}",
            "/v1/push",
            "/health",
            "/metrics",
        ] {
            assert!(doc["paths"].get(path).is_some(), "{path} undocumented");
        }
    }
}
