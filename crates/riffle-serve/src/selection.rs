//! What a read asks for: one entity, the groups to fetch and the feature columns to return,
//! resolved against the registry once, before any I/O. Shared by the `/v1` and Feast APIs.

use std::sync::Arc;

use quick_cache::Equivalent;
use riffle_registry::{FeatureRef, GroupId, Registry};

use crate::error::ApiError;

/// One requested feature column.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// Index into [`Selection::groups`].
    pub slot: usize,
    pub feature: FeatureRef,
}

/// The resolved request: one entity, the distinct groups to read, and the columns.
#[derive(Debug, Clone)]
pub struct Selection {
    pub entity: usize,
    /// Distinct groups, in first-requested order.
    pub groups: Vec<GroupId>,
    pub columns: Vec<Column>,
}

/// Splits `group:feature`.
pub fn split_ref(text: &str) -> Result<(&str, &str), ApiError> {
    match text.split_once(':') {
        Some((g, f)) if !g.is_empty() && !f.is_empty() => Ok((g, f)),
        _ => Err(ApiError::BadFeatureRef(text.to_owned())),
    }
}

/// Resolves `group:feature` against the registry.
pub fn resolve_ref(registry: &Registry, text: &str) -> Result<FeatureRef, ApiError> {
    let (group, feature) = split_ref(text)?;
    let g = registry
        .group(group)
        .ok_or_else(|| ApiError::UnknownGroup(group.to_owned()))?;
    let feature_idx = g
        .feature_index(feature)
        .ok_or_else(|| ApiError::UnknownFeature {
            group: group.to_owned(),
            feature: feature.to_owned(),
        })?;
    Ok(FeatureRef {
        group: g.id,
        feature: feature_idx,
    })
}

impl Selection {
    /// Builds a selection from feature references; all must belong to one entity.
    pub fn from_refs(
        registry: &Registry,
        refs: impl IntoIterator<Item = FeatureRef>,
    ) -> Result<Self, ApiError> {
        let mut sel = Selection {
            entity: usize::MAX,
            groups: Vec::new(),
            columns: Vec::new(),
        };
        for r in refs {
            let entity = registry.groups[r.group].entity;
            if sel.entity == usize::MAX {
                sel.entity = entity;
            } else if sel.entity != entity {
                return Err(ApiError::Unsupported(format!(
                    "features of entities {:?} and {:?} in one request: ask for one entity at a time",
                    registry.entities[sel.entity].name, registry.entities[entity].name
                )));
            }
            let slot = match sel.groups.iter().position(|&g| g == r.group) {
                Some(slot) => slot,
                None => {
                    sel.groups.push(r.group);
                    sel.groups.len() - 1
                }
            };
            // The same feature asked twice is served once.
            if !sel.columns.iter().any(|c| c.feature == r) {
                sel.columns.push(Column { slot, feature: r });
            }
        }
        if sel.columns.is_empty() {
            return Err(ApiError::InvalidRequest(
                "no features requested: name features, groups or a feature service".into(),
            ));
        }
        Ok(sel)
    }

    /// Every feature of the given groups, in declared order.
    pub fn whole_groups(
        registry: &Registry,
        groups: impl IntoIterator<Item = GroupId>,
    ) -> Result<Self, ApiError> {
        let refs: Vec<FeatureRef> = groups
            .into_iter()
            .flat_map(|g| {
                (0..registry.groups[g].features.len())
                    .map(move |feature| FeatureRef { group: g, feature })
            })
            .collect();
        Self::from_refs(registry, refs)
    }
}

/// Resolved selections of `GET /v1/features/{entity}/{id}` by (entity, raw query string),
/// so a model asking the same question on every request skips parsing the query and
/// resolving names (together ~10% of a cached read's user time). Only successful
/// selections are kept; bounded by entries, and each key is bounded by hyper's header limit.
pub struct SelectionCache(quick_cache::sync::Cache<(String, String), Arc<Selection>>);

/// A borrowed lookup key, hashing exactly like `(String, String)`.
#[derive(Hash)]
struct BorrowedKey<'a>(&'a str, &'a str);

impl Equivalent<(String, String)> for BorrowedKey<'_> {
    fn equivalent(&self, key: &(String, String)) -> bool {
        self.0 == key.0 && self.1 == key.1
    }
}

impl SelectionCache {
    pub fn new(entries: usize) -> Self {
        Self(quick_cache::sync::Cache::new(entries.max(1)))
    }

    pub fn get(&self, entity: &str, query: &str) -> Option<Arc<Selection>> {
        self.0.get(&BorrowedKey(entity, query))
    }

    pub fn insert(&self, entity: &str, query: &str, selection: Arc<Selection>) {
        self.0
            .insert((entity.to_owned(), query.to_owned()), selection);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_cache_finds_by_borrowed_key() {
        let cache = SelectionCache::new(8);
        let sel = Arc::new(Selection {
            entity: 0,
            groups: vec![1],
            columns: Vec::new(),
        });
        cache.insert("user", "groups=a", sel.clone());
        assert!(Arc::ptr_eq(&cache.get("user", "groups=a").unwrap(), &sel));
        assert!(cache.get("user", "groups=b").is_none());
        assert!(cache.get("users", "groups=a").is_none());
        // The split between entity and query is part of the key.
        assert!(cache.get("userg", "roups=a").is_none());
    }

    #[test]
    fn refs_must_be_group_colon_feature() {
        assert!(split_ref("a:b").is_ok());
        for bad in ["ab", ":b", "a:", ""] {
            assert!(matches!(split_ref(bad), Err(ApiError::BadFeatureRef(_))));
        }
    }
}
