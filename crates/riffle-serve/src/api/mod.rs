//! The HTTP APIs: Riffle's own [`v1`] and the Feast-compatible [`feast`], plus what both
//! share: a JSON body extractor whose every failure is an [`ApiError`], and a helper that
//! serialises a sequence straight from an index function (no intermediate trees).

pub mod feast;
pub mod json;
pub mod v1;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;
use serde::ser::{Serialize, SerializeSeq, Serializer};

use crate::error::ApiError;
use crate::state::AppState;

/// A JSON body. Unlike `axum::Json` it ignores the content type (Feast clients and curl
/// users do not always set it) and maps every failure, including axum's own body-limit
/// rejection, to our error shape.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<Arc<AppState>> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|r| ApiError::from_body(r, state.max_body()))?;
        serde_json::from_slice(&bytes)
            .map(ApiJson)
            .map_err(ApiError::from_json)
    }
}

/// Serialises `len` elements produced by `item(i)` as a JSON array.
pub struct SeqFn<F>(pub usize, pub F);

impl<F, T> Serialize for SeqFn<F>
where
    F: Fn(usize) -> T,
    T: Serialize,
{
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0))?;
        for i in 0..self.0 {
            seq.serialize_element(&(self.1)(i))?;
        }
        seq.end()
    }
}
