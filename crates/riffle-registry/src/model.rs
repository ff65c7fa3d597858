//! The resolved registry: validated, cross-referenced, ready to be read by every room.

use std::collections::HashMap;
use std::time::Duration;

use riffle_core::{FeatureType, FeatureValue};

use crate::auth::{AuthSettings, ReadScope, Scope};
use crate::settings::{ServeSettings, StoreSettings};
use crate::source::{Aggregation, IngestSettings, Source};

/// Index of a feature group in [`Registry::groups`].
pub type GroupId = usize;

/// The type of an entity's join key. Ids are kept as text either way; `Int64` keys must
/// parse as integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    String,
    Int64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    pub name: String,
    pub join_key: String,
    pub key_type: KeyType,
    /// Entities expected in production; `riffle cost` and `riffle check` read it.
    pub expected_count: Option<u64>,
    pub description: String,
}

/// What to do when a group could only be served with training defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsafePolicy {
    /// Serve the training defaults with a `degraded` status.
    ServeDefaults,
    /// Fail the request with a clear 503: the model must not run on defaults.
    Fail,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Feature {
    pub name: String,
    pub ty: FeatureType,
    /// The training default, served whenever a value cannot be (never `Null`).
    pub default: FeatureValue,
    pub description: String,
    /// How a stream group computes this feature from its source's events.
    pub aggregation: Option<Aggregation>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FeatureGroup {
    pub id: GroupId,
    pub name: String,
    /// Index into [`Registry::entities`].
    pub entity: usize,
    /// Schema version: bump it when features change; stored rows of another version are
    /// not read.
    pub version: u32,
    pub description: String,
    /// How long a stored row lives without being written again.
    pub ttl: Duration,
    /// Values older than this are served with status `stale`.
    pub freshness_slo: Duration,
    /// Values older than this are not served: the training default is, status `expired`.
    pub staleness_limit: Duration,
    pub p99_slo: Duration,
    /// Target availability as a fraction (0.999).
    pub availability_slo: f64,
    pub on_unsafe: UnsafePolicy,
    /// Hot-cache TTL for this group (defaults to the serve cache TTL).
    pub cache_ttl: Option<Duration>,
    pub push_source: Option<String>,
    /// Index into [`Registry::sources`] for a group computed by `riffle ingest`.
    pub source: Option<usize>,
    /// History of a group without a source (`riffle training-set`): rows with the join key,
    /// `event_timestamp` and the group's features, as a path or URL like a source's.
    pub offline: Option<String>,
    pub features: Vec<Feature>,
}

impl FeatureGroup {
    pub fn feature_index(&self, name: &str) -> Option<usize> {
        self.features.iter().position(|f| f.name == name)
    }
}

/// One feature of one group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FeatureRef {
    pub group: GroupId,
    pub feature: usize,
}

/// A named list of features (Feast's feature service).
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureService {
    pub name: String,
    pub features: Vec<FeatureRef>,
    pub description: String,
}

/// The whole validated registry.
#[derive(Debug, Clone, PartialEq)]
pub struct Registry {
    pub project: String,
    pub description: String,
    pub peak_rps: Option<u64>,
    pub serve: ServeSettings,
    pub store: StoreSettings,
    pub entities: Vec<Entity>,
    pub groups: Vec<FeatureGroup>,
    pub services: Vec<FeatureService>,
    pub sources: Vec<Source>,
    pub ingest: IngestSettings,
    pub auth: AuthSettings,
    pub(crate) group_index: HashMap<String, GroupId>,
}

impl Registry {
    pub fn group(&self, name: &str) -> Option<&FeatureGroup> {
        self.group_index.get(name).map(|&id| &self.groups[id])
    }

    pub fn entity(&self, name: &str) -> Option<&Entity> {
        self.entities.iter().find(|e| e.name == name)
    }

    pub fn entity_of(&self, group: &FeatureGroup) -> &Entity {
        &self.entities[group.entity]
    }

    /// The entity whose join key is `join_key`.
    pub fn entity_by_join_key(&self, join_key: &str) -> Option<(usize, &Entity)> {
        self.entities
            .iter()
            .enumerate()
            .find(|(_, e)| e.join_key == join_key)
    }

    pub fn source(&self, name: &str) -> Option<&Source> {
        self.sources.iter().find(|s| s.name == name)
    }

    /// Groups computed from source `source` (an index into [`Registry::sources`]).
    pub fn groups_of_source(&self, source: usize) -> impl Iterator<Item = &FeatureGroup> {
        self.groups.iter().filter(move |g| g.source == Some(source))
    }

    pub fn service(&self, name: &str) -> Option<&FeatureService> {
        self.services.iter().find(|s| s.name == name)
    }

    /// The group a Feast push source writes.
    pub fn group_by_push_source(&self, push_source: &str) -> Option<&FeatureGroup> {
        self.groups
            .iter()
            .find(|g| g.push_source.as_deref() == Some(push_source))
    }

    /// Groups of one entity.
    pub fn groups_of(&self, entity: usize) -> impl Iterator<Item = &FeatureGroup> {
        self.groups.iter().filter(move |g| g.entity == entity)
    }

    /// Longest row TTL among an entity's groups: the TTL of the entity's store key.
    pub fn entity_key_ttl(&self, entity: usize) -> Duration {
        self.groups_of(entity)
            .map(|g| g.ttl)
            .max()
            .unwrap_or(Duration::from_secs(86400))
    }

    pub fn feature(&self, r: FeatureRef) -> &Feature {
        &self.groups[r.group].features[r.feature]
    }

    /// A scope as written in the registry (`read:user_velocity`, `ingest:transactions`):
    /// what a 403 names.
    pub fn scope_text(&self, scope: &Scope) -> String {
        match scope {
            Scope::Read(ReadScope::All) => "read".into(),
            Scope::Read(ReadScope::Group(g)) => format!("read:{}", self.groups[*g].name),
            Scope::Read(ReadScope::Service(s)) => {
                format!("read:service:{}", self.services[*s].name)
            }
            Scope::Write(None) => "write".into(),
            Scope::Write(Some(g)) => format!("write:{}", self.groups[*g].name),
            Scope::Ingest(None) => "ingest".into(),
            Scope::Ingest(Some(s)) => format!("ingest:{}", self.sources[*s].name),
            Scope::Admin => "admin".into(),
            Scope::Metrics => "metrics".into(),
        }
    }

    /// Resolves `group:feature` (Feast's reference form).
    pub fn feature_ref(&self, group: &str, feature: &str) -> Option<FeatureRef> {
        let g = self.group(group)?;
        Some(FeatureRef {
            group: g.id,
            feature: g.feature_index(feature)?,
        })
    }
}
