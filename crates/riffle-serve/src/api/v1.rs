//! Riffle's own API (described in `openapi.json`):
//!
//! - `GET /v1/features/{entity}/{id}?groups=a,b&features=g:f,…` — one entity;
//! - `POST /v1/features` `{"entity", "ids", "groups"?, "features"?}` — a batch;
//! - `POST /v1/push` `{"group", "rows": [{"id", "event_timestamp"?, "features"}]}`.
//!
//! With neither `groups` nor `features`, every group of the entity is read; with both,
//! their union. Every value carries its status; every group its status, event time and
//! age; every entity and the response as a whole their degradation level.

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::http::Uri;
use axum::response::Response;
use axum::Json;
use riffle_auth::Caller;
use riffle_core::EntityId;
use riffle_registry::{FeatureRef, Registry};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::json::JsonBuf;
use crate::api::ApiJson;
use crate::error::ApiError;
use crate::ids;
use crate::lookup::Lookup;
use crate::push;
use crate::selection::{resolve_ref, Selection};
use crate::state::AppState;

/// `POST /v1/features` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeaturesRequest {
    pub entity: String,
    pub ids: Vec<Value>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub features: Vec<String>,
}

/// `GET /v1/features/{entity}/{id}` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeaturesQuery {
    /// Comma-separated group names.
    pub groups: Option<String>,
    /// Comma-separated `group:feature` references.
    pub features: Option<String>,
}

/// Resolves the chosen groups and features of `entity` (all its groups when none chosen).
fn selection<'a>(
    registry: &Registry,
    entity_name: &str,
    groups: impl Iterator<Item = &'a str>,
    features: impl Iterator<Item = &'a str>,
) -> Result<Selection, ApiError> {
    let (entity, _) = registry
        .entities
        .iter()
        .enumerate()
        .find(|(_, e)| e.name == entity_name)
        .ok_or_else(|| ApiError::UnknownEntity(entity_name.to_owned()))?;
    let mut refs: Vec<FeatureRef> = Vec::new();
    for name in groups {
        let g = registry
            .group(name)
            .ok_or_else(|| ApiError::UnknownGroup(name.to_owned()))?;
        refs.extend((0..g.features.len()).map(|feature| FeatureRef {
            group: g.id,
            feature,
        }));
    }
    for text in features {
        refs.push(resolve_ref(registry, text)?);
    }
    if refs.is_empty() {
        let groups: Vec<_> = registry.groups_of(entity).map(|g| g.id).collect();
        if groups.is_empty() {
            return Err(ApiError::InvalidRequest(format!(
                "entity {entity_name:?} has no feature groups"
            )));
        }
        return Selection::whole_groups(registry, groups);
    }
    let sel = Selection::from_refs(registry, refs)?;
    if sel.entity != entity {
        return Err(ApiError::InvalidRequest(format!(
            "the features requested belong to entity {:?}, not {entity_name:?}",
            registry.entities[sel.entity].name
        )));
    }
    Ok(sel)
}

fn split_list(list: &Option<String>) -> impl Iterator<Item = &str> {
    list.as_deref()
        .into_iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// `GET /v1/features/{entity}/{id}`. The resolved selection is remembered by (entity, raw
/// query) ([`crate::selection::SelectionCache`]); the query is parsed only the first time.
pub async fn get_features(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<(String, String)>, PathRejection>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let Path((entity, id)) = path?;
    let raw_query = uri.query().unwrap_or("");
    let sel = match state.selections.get(&entity, raw_query) {
        Some(sel) => sel,
        None => {
            let Query(query) = Query::<FeaturesQuery>::try_from_uri(&uri)?;
            let sel = Arc::new(selection(
                &state.registry,
                &entity,
                split_list(&query.groups),
                split_list(&query.features),
            )?);
            state.selections.insert(&entity, raw_query, sel.clone());
            sel
        }
    };
    may_read(&state, caller, &sel)?;
    let id = ids::from_text(&state.registry.entities[sel.entity], 0, &id)?;
    respond(
        &state,
        &sel,
        std::slice::from_ref(&id),
        "/v1/features/{entity}/{id}",
    )
    .await
}

/// `POST /v1/features`.
pub async fn post_features(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<FeaturesRequest>,
) -> Result<Response, ApiError> {
    let registry = &state.registry;
    let sel = selection(
        registry,
        &req.entity,
        req.groups.iter().map(String::as_str),
        req.features.iter().map(String::as_str),
    )?;
    may_read(&state, caller, &sel)?;
    let ids = ids::batch(&registry.entities[sel.entity], &req.ids, state.max_batch())?;
    respond(&state, &sel, &ids, "/v1/features").await
}

/// The caller may read every group of `sel`, or the request is refused whole (403).
pub(crate) fn may_read(state: &AppState, caller: Caller, sel: &Selection) -> Result<(), ApiError> {
    state
        .gate
        .may_read(caller, sel.groups.iter().copied())
        .map_err(ApiError::Denied)
}

async fn respond(
    state: &AppState,
    sel: &Selection,
    ids: &[EntityId],
    endpoint: &'static str,
) -> Result<Response, ApiError> {
    let lookup = state.reader.read(sel, ids, endpoint).await?;
    if let Some(log) = &state.feature_log {
        log.record(sel, ids, &lookup, endpoint, None);
    }
    Ok(render(state, sel, ids, &lookup).into_response())
}

/// The response, written straight from the lookup ([`crate::api::json`]):
/// `{"entity", "degradation", "results": [{"id", "degradation", "groups": [{"group",
/// "status", "event_timestamp", "age_ms", "features": {name: {"value", "status"}}}]}]}`.
fn render(state: &AppState, sel: &Selection, ids: &[EntityId], lookup: &Lookup) -> JsonBuf {
    let names = &state.json_names;
    let registry = &state.registry;
    // Sized from the selection so the buffer rarely grows (a realloc was ~4% of a cached
    // read): ~100 bytes per group and ~45 per value, with room to spare.
    let mut out = JsonBuf::with_capacity(
        128 + ids.len() * (96 + sel.groups.len() * 128 + sel.columns.len() * 56),
    );
    out.raw(b"{\"entity\":")
        .raw(&names.entities[sel.entity])
        .raw(b",\"degradation\":")
        .level(lookup.level)
        .raw(b",\"results\":[");
    for (e, id) in ids.iter().enumerate() {
        if e > 0 {
            out.raw(b",");
        }
        out.raw(b"{\"id\":")
            .string(id.as_str())
            .raw(b",\"degradation\":")
            .level(lookup.entity_levels[e])
            .raw(b",\"groups\":[");
        for (slot, &gid) in sel.groups.iter().enumerate() {
            if slot > 0 {
                out.raw(b",");
            }
            let group = &registry.groups[gid];
            let outcome = lookup.outcome(e, slot);
            out.raw(b"{\"group\":")
                .raw(&names.groups[gid])
                .raw(b",\"status\":")
                .status(outcome.status)
                .raw(b",\"event_timestamp\":");
            match outcome.event_ts() {
                Some(t) => out.timestamp(t),
                None => out.raw(b"null"),
            };
            out.raw(b",\"age_ms\":");
            match outcome.age_ms {
                Some(age) => out.u64(age),
                None => out.raw(b"null"),
            };
            out.raw(b",\"features\":{");
            let mut first = true;
            for col in sel.columns.iter().filter(|c| c.slot == slot) {
                if !first {
                    out.raw(b",");
                }
                first = false;
                let (value, status) = outcome.value(group, col.feature.feature);
                out.raw(&names.feature_keys[gid][col.feature.feature])
                    .value(value)
                    .raw(b",\"status\":")
                    .status(status)
                    .raw(b"}");
            }
            out.raw(b"}}");
        }
        out.raw(b"]}");
    }
    out.raw(b"]}");
    out
}

/// `POST /v1/push` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushRequest {
    pub group: String,
    pub rows: Vec<push::V1Row>,
}

#[derive(Serialize)]
pub struct PushResponse {
    pub written: usize,
}

/// `POST /v1/push`.
pub async fn push(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<PushRequest>,
) -> Result<Json<PushResponse>, ApiError> {
    let group = state
        .registry
        .group(&req.group)
        .ok_or_else(|| ApiError::UnknownGroup(req.group.clone()))?;
    push::may_write(&state, caller, group)?;
    if req.rows.is_empty() {
        return Err(ApiError::EmptyBatch);
    }
    let rows = push::rows_from_v1(&state.registry, group, &req.rows)?;
    let written = push::write(&state, caller, group, rows).await?;
    Ok(Json(PushResponse { written }))
}
