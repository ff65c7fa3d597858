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

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use riffle_core::{EntityId, FeatureValue, ValueStatus};
use riffle_registry::{FeatureRef, Registry};
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

/// `GET /v1/features/{entity}/{id}`.
pub async fn get_features(
    State(state): State<Arc<AppState>>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<FeaturesQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path((entity, id)) = path?;
    let Query(query) = query?;
    let registry = &state.registry;
    let sel = selection(
        registry,
        &entity,
        split_list(&query.groups),
        split_list(&query.features),
    )?;
    let id = ids::from_text(&registry.entities[sel.entity], 0, &id)?;
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
    ApiJson(req): ApiJson<FeaturesRequest>,
) -> Result<Response, ApiError> {
    let registry = &state.registry;
    let sel = selection(
        registry,
        &req.entity,
        req.groups.iter().map(String::as_str),
        req.features.iter().map(String::as_str),
    )?;
    let ids = ids::batch(&registry.entities[sel.entity], &req.ids, state.max_batch())?;
    respond(&state, &sel, &ids, "/v1/features").await
}

async fn respond(
    state: &AppState,
    sel: &Selection,
    ids: &[EntityId],
    endpoint: &'static str,
) -> Result<Response, ApiError> {
    let lookup = state.reader.read(sel, ids, endpoint).await?;
    let body = FeaturesResponse {
        registry: &state.registry,
        sel,
        ids,
        lookup: &lookup,
    };
    Ok(Json(body).into_response())
}

/// The response, serialised straight from the lookup:
/// `{"entity", "degradation", "results": [{"id", "degradation", "groups": [{"group",
/// "status", "event_timestamp", "age_ms", "features": {name: {"value", "status"}}}]}]}`.
struct FeaturesResponse<'a> {
    registry: &'a Registry,
    sel: &'a Selection,
    ids: &'a [EntityId],
    lookup: &'a Lookup,
}

impl Serialize for FeaturesResponse<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(3))?;
        map.serialize_entry("entity", &self.registry.entities[self.sel.entity].name)?;
        map.serialize_entry("degradation", &self.lookup.level)?;
        map.serialize_entry(
            "results",
            &SeqFn(self.ids.len(), |e| EntityResult { resp: self, e }),
        )?;
        map.end()
    }
}

struct EntityResult<'a> {
    resp: &'a FeaturesResponse<'a>,
    e: usize,
}

impl Serialize for EntityResult<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.resp;
        let mut map = s.serialize_map(Some(3))?;
        map.serialize_entry("id", r.ids[self.e].as_str())?;
        map.serialize_entry("degradation", &r.lookup.entity_levels[self.e])?;
        map.serialize_entry(
            "groups",
            &SeqFn(r.sel.groups.len(), |slot| GroupResult {
                resp: r,
                e: self.e,
                slot,
            }),
        )?;
        map.end()
    }
}

struct GroupResult<'a> {
    resp: &'a FeaturesResponse<'a>,
    e: usize,
    slot: usize,
}

#[derive(Serialize)]
struct ValueResult<'a> {
    value: &'a FeatureValue,
    status: ValueStatus,
}

impl Serialize for GroupResult<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.resp;
        let group = &r.registry.groups[r.sel.groups[self.slot]];
        let out = r.lookup.outcome(self.e, self.slot);
        let mut map = s.serialize_map(Some(5))?;
        map.serialize_entry("group", &group.name)?;
        map.serialize_entry("status", &out.status)?;
        map.serialize_entry("event_timestamp", &out.event_ts().map(|t| t.to_rfc3339()))?;
        map.serialize_entry("age_ms", &out.age_ms)?;
        map.serialize_entry(
            "features",
            &Features {
                group,
                out,
                resp: r,
                slot: self.slot,
            },
        )?;
        map.end()
    }
}

struct Features<'a> {
    group: &'a riffle_registry::FeatureGroup,
    out: &'a crate::lookup::GroupOutcome,
    resp: &'a FeaturesResponse<'a>,
    slot: usize,
}

impl Serialize for Features<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        for col in self.resp.sel.columns.iter().filter(|c| c.slot == self.slot) {
            let (value, status) = self.out.value(self.group, col.feature.feature);
            map.serialize_entry(
                &self.group.features[col.feature.feature].name,
                &ValueResult { value, status },
            )?;
        }
        map.end()
    }
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
    ApiJson(req): ApiJson<PushRequest>,
) -> Result<Json<PushResponse>, ApiError> {
    let group = state
        .registry
        .group(&req.group)
        .ok_or_else(|| ApiError::UnknownGroup(req.group.clone()))?;
    if req.rows.is_empty() {
        return Err(ApiError::EmptyBatch);
    }
    let rows = push::rows_from_v1(&state.registry, group, &req.rows)?;
    let written = push::write(&state, rows).await?;
    Ok(Json(PushResponse { written }))
}
