//! What a read asks for: one entity, the groups to fetch and the feature columns to return,
//! resolved against the registry once, before any I/O. Shared by the `/v1` and Feast APIs.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_must_be_group_colon_feature() {
        assert!(split_ref("a:b").is_ok());
        for bad in ["ab", ":b", "a:", ""] {
            assert!(matches!(split_ref(bad), Err(ApiError::BadFeatureRef(_))));
        }
    }
}
