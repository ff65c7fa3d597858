//! The registry: Riffle's declarative model of entities, feature groups, features, SLOs and
//! the serve/store settings, read from `riffle.toml`.
//!
//! Loading goes in two steps, as in every config reader we trust:
//! - [`raw`] deserialises the file into plain structs (unknown fields are errors);
//! - `resolve` checks every rule and builds the resolved [`Registry`], reporting *every*
//!   problem at once (collected by `problems.rs`), each with its path
//!   (`feature_groups[2].features[0].default: expected int64, got "abc"`).
//!
//! Everything else in Riffle reads a [`Registry`]; nothing else parses config.
#![forbid(unsafe_code)]

mod duration;
mod error;
mod model;
mod problems;
pub mod raw;
mod resolve;
mod resolve_group;
mod resolve_logging;
mod resolve_source;
mod serving;
mod settings;
mod source;

use std::path::Path;

pub use duration::{format_duration, parse_duration};
pub use error::{Problem, RegistryError};
pub use model::{
    Entity, Feature, FeatureGroup, FeatureRef, FeatureService, GroupId, KeyType, Registry,
    UnsafePolicy,
};
pub use settings::{
    BreakerSettings, CacheSettings, LoggingSettings, ReadFrom, RowEncoding, ServeSettings,
    StoreSettings,
};
pub use source::{Aggregation, AggregationKind, IngestSettings, Source, SourceField, SourceKind};

impl Registry {
    /// Reads and validates a registry file.
    pub fn load(path: &Path) -> Result<Registry, RegistryError> {
        let text = std::fs::read_to_string(path).map_err(|source| RegistryError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Registry::from_toml(&text)
    }

    /// Parses and validates registry text.
    pub fn from_toml(text: &str) -> Result<Registry, RegistryError> {
        let raw: raw::RawRegistry =
            toml::from_str(text).map_err(|e| RegistryError::Syntax(e.to_string()))?;
        resolve::resolve(raw)
    }
}
