//! Feast 0.67's feature-server API: `POST /get-online-features`, `POST /push`,
//! `POST /write-to-online-store`, with Feast's exact request and response shapes (see
//! `fixtures/feast-0.67/`). Feature views are Riffle feature groups; feature services are
//! the registry's `feature_services`.
//!
//! Responses are column-oriented: `metadata.feature_names` starts with the join key, then
//! the features (`feature` or, with `full_feature_names`, `view__feature`); `results[i]`
//! holds `values`, `statuses` and `event_timestamps` across all entities. The join-key
//! column is always `PRESENT` with a 1970 timestamp, as Feast answers it. Riffle keeps the
//! requested feature order (Feast 0.67 does not; clients look columns up by name).
//!
//! Status mapping: fresh / stale → `PRESENT`; missing → `NOT_FOUND`; expired →
//! `OUTSIDE_MAX_AGE`; null → `NULL_VALUE`; unavailable → `NOT_FOUND`. Values without a
//! stored row carry the 1970 timestamp; the others the row's event time.
//!
//! **Value decision: every non-`PRESENT` value is the training default, not `null`.**
//! Riffle's promise is that a model never sees a null it was not trained on. We checked
//! that Feast's own SDK copes: `RemoteOnlineStore._build_online_response_from_json`
//! (Feast 0.67's remote online store) converts every non-null value with
//! `python_values_to_proto_values` whatever its status and keeps the status beside it, so
//! `get_online_features(...).to_dict()` yields the default with `NOT_FOUND`; and
//! `RemoteOnlineStore.online_read` only reads a value whose status is `PRESENT` and
//! otherwise builds an empty `ValueProto`, so the default is ignored there — no path breaks
//! on a typed value beside a non-`PRESENT` status. A client that wants Feast's nulls keys
//! off the status, as Feast clients must anyway (Feast's own Redis store answers `PRESENT`
//! with `null`). The response header `x-riffle-degradation` carries the degradation level.
//!
//! `/push` answers 200 with an empty body and `/write-to-online-store` 200 with JSON
//! `null`, as Feast 0.67 does. Riffle has no offline store: `to: "offline"` is refused with
//! 400, and `online_and_offline` writes the online part only.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Extension, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use riffle_auth::Caller;
use riffle_core::{EntityId, ValueStatus};
use riffle_registry::{FeatureRef, KeyType, Registry};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::{ApiJson, SeqFn};
use crate::error::ApiError;
use crate::ids;
use crate::lookup::Lookup;
use crate::push;
use crate::selection::{resolve_ref, Selection};
use crate::state::AppState;

const EPOCH: &str = "1970-01-01T00:00:00Z";
const ENDPOINT: &str = "/get-online-features";

/// Header carrying the response's degradation level on Feast reads.
pub const DEGRADATION_HEADER: &str = "x-riffle-degradation";

/// Feast's `GetOnlineFeaturesRequest`.
#[derive(Debug, Deserialize)]
pub struct GetOnlineFeaturesRequest {
    pub entities: HashMap<String, Vec<Value>>,
    #[serde(default)]
    pub feature_service: Option<String>,
    #[serde(default)]
    pub features: Vec<String>,
    #[serde(default)]
    pub full_feature_names: bool,
    /// Accepted for compatibility; Riffle has no feature-view versions metadata to add.
    #[serde(default)]
    pub include_feature_view_version_metadata: bool,
}

/// Feast's status for a Riffle value status.
pub fn feast_status(status: ValueStatus) -> &'static str {
    match status {
        ValueStatus::Fresh | ValueStatus::Stale => "PRESENT",
        ValueStatus::Missing | ValueStatus::Unavailable => "NOT_FOUND",
        ValueStatus::Expired => "OUTSIDE_MAX_AGE",
        ValueStatus::Null => "NULL_VALUE",
    }
}

/// Resolves the request's features (or feature service) to a selection.
pub fn selection(
    registry: &Registry,
    req: &GetOnlineFeaturesRequest,
) -> Result<Selection, ApiError> {
    let refs: Vec<FeatureRef> = match &req.feature_service {
        Some(name) => registry
            .service(name)
            .ok_or_else(|| ApiError::UnknownService(name.clone()))?
            .features
            .clone(),
        None => req
            .features
            .iter()
            .map(|f| resolve_ref(registry, f))
            .collect::<Result<_, _>>()?,
    };
    Selection::from_refs(registry, refs)
}

/// The ids of the request's one join key, checked against the entity's key type.
fn entity_ids(
    registry: &Registry,
    sel: &Selection,
    req: &GetOnlineFeaturesRequest,
    max_batch: usize,
) -> Result<Vec<EntityId>, ApiError> {
    let entity = &registry.entities[sel.entity];
    if let Some(other) = req.entities.keys().find(|k| **k != entity.join_key) {
        return Err(ApiError::InvalidRequest(format!(
            "entities has key {other:?}; the features requested belong to entity {:?} whose only join key is {:?}",
            entity.name, entity.join_key
        )));
    }
    let values = req.entities.get(&entity.join_key).ok_or_else(|| {
        ApiError::InvalidRequest(format!(
            "entities must hold the join key {:?} of entity {:?}",
            entity.join_key, entity.name
        ))
    })?;
    ids::batch(entity, values, max_batch)
}

/// `POST /get-online-features`.
pub async fn get_online_features(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<GetOnlineFeaturesRequest>,
) -> Result<Response, ApiError> {
    let registry = &state.registry;
    let sel = selection(registry, &req)?;
    crate::api::v1::may_read(&state, caller, &sel)?;
    let ids = entity_ids(registry, &sel, &req, state.max_batch())?;
    let lookup = state.reader.read(&sel, &ids, ENDPOINT).await?;
    if let Some(log) = &state.feature_log {
        log.record(
            &sel,
            &ids,
            &lookup,
            ENDPOINT,
            req.feature_service.as_deref(),
        );
    }
    let body = FeastResponse {
        registry,
        sel: &sel,
        ids: &ids,
        int_keys: registry.entities[sel.entity].key_type == KeyType::Int64,
        full_names: req.full_feature_names,
        lookup: &lookup,
    };
    let mut response = Json(body).into_response();
    response.headers_mut().insert(
        HeaderName::from_static(DEGRADATION_HEADER),
        HeaderValue::from_static(lookup.level.as_str()),
    );
    Ok(response)
}

/// The column-oriented response, serialised straight from the lookup.
struct FeastResponse<'a> {
    registry: &'a Registry,
    sel: &'a Selection,
    ids: &'a [EntityId],
    int_keys: bool,
    full_names: bool,
    lookup: &'a Lookup,
}

impl Serialize for FeastResponse<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let n = self.ids.len();
        let names = SeqFn(self.sel.columns.len() + 1, |i| {
            if i == 0 {
                return self.registry.entities[self.sel.entity].join_key.clone();
            }
            let col: crate::selection::Column = self.sel.columns[i - 1];
            let group = &self.registry.groups[col.feature.group];
            let feature = &group.features[col.feature.feature].name;
            if self.full_names {
                format!("{}__{}", group.name, feature)
            } else {
                feature.clone()
            }
        });
        let results = SeqFn(self.sel.columns.len() + 1, |i| Column {
            resp: self,
            index: i,
            n,
        });
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry(
            "metadata",
            &Metadata {
                feature_names: names,
            },
        )?;
        map.serialize_entry("results", &results)?;
        map.end()
    }
}

#[derive(Serialize)]
struct Metadata<N: Serialize> {
    feature_names: N,
}

/// One result column: index 0 is the join key, then one per requested feature.
struct Column<'a> {
    resp: &'a FeastResponse<'a>,
    index: usize,
    n: usize,
}

/// A join-key value: an integer for `int64` keys (as the client sent it), else a string.
struct KeyValue<'a>(&'a str, bool);

impl Serialize for KeyValue<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match (self.1, self.0.parse::<i64>()) {
            (true, Ok(i)) => s.serialize_i64(i),
            _ => s.serialize_str(self.0),
        }
    }
}

impl Serialize for Column<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.resp;
        let mut map = s.serialize_map(Some(3))?;
        if self.index == 0 {
            map.serialize_entry(
                "values",
                &SeqFn(self.n, |e: usize| KeyValue(r.ids[e].as_str(), r.int_keys)),
            )?;
            map.serialize_entry("statuses", &SeqFn(self.n, |_| "PRESENT"))?;
            map.serialize_entry("event_timestamps", &SeqFn(self.n, |_| EPOCH))?;
            return map.end();
        }
        let col = r.sel.columns[self.index - 1];
        let group = &r.registry.groups[col.feature.group];
        let value = |e: usize| {
            r.lookup
                .outcome(e, col.slot)
                .value(group, col.feature.feature)
        };
        map.serialize_entry("values", &SeqFn(self.n, |e| value(e).0))?;
        map.serialize_entry("statuses", &SeqFn(self.n, |e| feast_status(value(e).1)))?;
        map.serialize_entry(
            "event_timestamps",
            &SeqFn(self.n, |e| match r.lookup.outcome(e, col.slot).event_ts() {
                Some(ts) => ts.to_rfc3339(),
                None => EPOCH.to_owned(),
            }),
        )?;
        map.end()
    }
}

/// Feast's `PushFeaturesRequest`.
#[derive(Debug, Deserialize)]
pub struct PushRequest {
    pub push_source_name: String,
    pub df: HashMap<String, Vec<Value>>,
    #[serde(default = "default_to")]
    pub to: String,
    #[serde(default)]
    pub allow_registry_cache: bool,
    #[serde(default)]
    pub transform_on_write: bool,
}

fn default_to() -> String {
    "online".into()
}

/// `POST /push`: 200 with an empty body.
pub async fn push(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<PushRequest>,
) -> Result<StatusCode, ApiError> {
    match req.to.as_str() {
        "online" | "online_and_offline" => {}
        "offline" => {
            return Err(ApiError::Unsupported(
                "to: \"offline\": Riffle has no offline store; push \"online\"".into(),
            ))
        }
        other => {
            return Err(ApiError::BadValue(format!(
                "to: {other:?} is not one of \"online\", \"offline\", \"online_and_offline\""
            )))
        }
    }
    let group = state
        .registry
        .group_by_push_source(&req.push_source_name)
        .ok_or_else(|| ApiError::UnknownPushSource(req.push_source_name.clone()))?;
    push::may_write(&state, caller, group)?;
    let rows = push::rows_from_columns(&state.registry, group, &req.df)?;
    push::write(&state, caller, group, rows).await?;
    Ok(StatusCode::OK)
}

/// Feast's `WriteToFeatureStoreRequest`.
#[derive(Debug, Deserialize)]
pub struct WriteRequest {
    pub feature_view_name: String,
    pub df: HashMap<String, Vec<Value>>,
    #[serde(default)]
    pub allow_registry_cache: bool,
    #[serde(default)]
    pub transform_on_write: bool,
}

/// `POST /write-to-online-store`: 200 with JSON `null`, as FastAPI answers a `None`.
pub async fn write_to_online_store(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<WriteRequest>,
) -> Result<Json<()>, ApiError> {
    let group = state
        .registry
        .group(&req.feature_view_name)
        .ok_or_else(|| ApiError::UnknownGroup(req.feature_view_name.clone()))?;
    push::may_write(&state, caller, group)?;
    let rows = push::rows_from_columns(&state.registry, group, &req.df)?;
    push::write(&state, caller, group, rows).await?;
    Ok(Json(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_feast_requests() {
        let req: GetOnlineFeaturesRequest =
            serde_json::from_str(r#"{"features": ["v:f"], "entities": {"user_id": ["u1", "u2"]}}"#)
                .unwrap();
        assert_eq!(req.features, vec!["v:f"]);
        assert!(!req.full_feature_names);
        assert_eq!(req.entities["user_id"].len(), 2);
        let req: GetOnlineFeaturesRequest = serde_json::from_str(
            r#"{"feature_service": "svc", "entities": {"user_id": [1]}, "full_feature_names": true,
                "include_feature_view_version_metadata": false}"#,
        )
        .unwrap();
        assert_eq!(req.feature_service.as_deref(), Some("svc"));
        assert!(serde_json::from_str::<GetOnlineFeaturesRequest>(r#"{"features": []}"#).is_err());
        let push: PushRequest =
            serde_json::from_str(r#"{"push_source_name": "p", "df": {"user_id": ["u1"]}}"#)
                .unwrap();
        assert_eq!(push.to, "online");
    }

    #[test]
    fn statuses_map_to_feasts() {
        assert_eq!(feast_status(ValueStatus::Fresh), "PRESENT");
        assert_eq!(feast_status(ValueStatus::Stale), "PRESENT");
        assert_eq!(feast_status(ValueStatus::Missing), "NOT_FOUND");
        assert_eq!(feast_status(ValueStatus::Unavailable), "NOT_FOUND");
        assert_eq!(feast_status(ValueStatus::Expired), "OUTSIDE_MAX_AGE");
        assert_eq!(feast_status(ValueStatus::Null), "NULL_VALUE");
    }
}
