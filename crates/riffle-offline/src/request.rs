//! Which features a training set holds and what its columns are called: `--features G:F,…`
//! or `--service NAME`, named `feature` or, with full names, `group__feature` (Feast's
//! form), each optionally followed by its `feature__status` column.

use riffle_registry::{FeatureRef, Registry};

use crate::error::OfflineError;

/// The features asked for, in the order asked.
#[derive(Debug, Clone, PartialEq)]
pub enum Selection {
    /// `group:feature` references.
    Features(Vec<String>),
    /// A feature service's features.
    Service(String),
}

/// One output column of features.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureColumn {
    pub feature: FeatureRef,
    pub name: String,
}

/// Resolves `selection` against the registry into named columns. Unknown groups, features
/// or services, and two columns of one name, are errors that say what to write instead.
pub fn columns(
    registry: &Registry,
    selection: &Selection,
    full_feature_names: bool,
) -> Result<Vec<FeatureColumn>, OfflineError> {
    let refs: Vec<FeatureRef> = match selection {
        Selection::Service(name) => registry
            .service(name)
            .ok_or_else(|| {
                let known: Vec<_> = registry.services.iter().map(|s| s.name.as_str()).collect();
                OfflineError::Request(format!(
                    "no feature service {name:?} (services: {})",
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                ))
            })?
            .features
            .clone(),
        Selection::Features(names) => names
            .iter()
            .map(|name| feature_ref(registry, name))
            .collect::<Result<_, _>>()?,
    };
    if refs.is_empty() {
        return Err(OfflineError::Request(
            "no features asked for: pass --features GROUP:FEATURE,… or --service NAME".into(),
        ));
    }
    let mut out: Vec<FeatureColumn> = Vec::with_capacity(refs.len());
    for r in refs {
        let group = &registry.groups[r.group];
        let feature = &group.features[r.feature];
        let name = if full_feature_names {
            format!("{}__{}", group.name, feature.name)
        } else {
            feature.name.clone()
        };
        if out.iter().any(|c| c.name == name) {
            return Err(OfflineError::Request(format!(
                "two columns would be named {name:?}: pass --full-feature-names, or ask for it once"
            )));
        }
        out.push(FeatureColumn { feature: r, name });
    }
    Ok(out)
}

/// `group:feature` (also `group__feature`, Feast's full name).
fn feature_ref(registry: &Registry, name: &str) -> Result<FeatureRef, OfflineError> {
    let (group, feature) = name
        .split_once(':')
        .or_else(|| name.split_once("__"))
        .ok_or_else(|| {
            OfflineError::Request(format!("feature {name:?}: write it GROUP:FEATURE"))
        })?;
    let g = registry.group(group).ok_or_else(|| {
        let known: Vec<_> = registry.groups.iter().map(|g| g.name.as_str()).collect();
        OfflineError::Request(format!(
            "feature {name:?}: no group {group:?} (groups: {})",
            known.join(", ")
        ))
    })?;
    registry.feature_ref(group, feature).ok_or_else(|| {
        let known: Vec<_> = g.features.iter().map(|f| f.name.as_str()).collect();
        OfflineError::Request(format!(
            "feature {name:?}: group {group:?} has no feature {feature:?} (features: {})",
            known.join(", ")
        ))
    })
}
