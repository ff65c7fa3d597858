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

mod auth;
mod duration;
mod error;
mod model;
mod problems;
pub mod raw;
mod resolve;
mod resolve_auth;
mod resolve_group;
mod resolve_jwt;
mod resolve_listener;
mod resolve_logging;
mod resolve_source;
mod serving;
mod settings;
mod source;

use std::path::{Path, PathBuf};

pub use auth::{
    AuditSettings, AuthSettings, JwksSource, JwtRole, JwtSettings, Principal, ReadScope, Scope,
    TokenDigest,
};
pub use duration::{format_duration, parse_duration};
pub use error::{Problem, RegistryError};
pub use model::{
    Entity, Feature, FeatureGroup, FeatureRef, FeatureService, GroupId, KeyType, Registry,
    UnsafePolicy,
};
pub use settings::{
    BreakerSettings, CacheSettings, ListenerSettings, LoggingSettings, ReadFrom, RowEncoding,
    ServeSettings, StoreSettings,
};
pub use source::{Aggregation, AggregationKind, IngestSettings, Source, SourceField, SourceKind};

impl Registry {
    /// Reads and validates a registry file (and the file `auth.principals_file` names,
    /// relative to the registry's folder, as is a JWKS file of `auth.jwt.jwks`).
    pub fn load(path: &Path) -> Result<Registry, RegistryError> {
        let text = std::fs::read_to_string(path).map_err(|source| RegistryError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Registry::parse(&text, path.parent())
    }

    /// Parses and validates registry text (`auth.principals_file` relative to the working
    /// directory).
    pub fn from_toml(text: &str) -> Result<Registry, RegistryError> {
        Registry::parse(text, None)
    }

    fn parse(text: &str, folder: Option<&Path>) -> Result<Registry, RegistryError> {
        let raw: raw::RawRegistry =
            toml::from_str(text).map_err(|e| RegistryError::Syntax(e.to_string()))?;
        let filed = match &raw.auth.principals_file {
            Some(file) => read_principals(
                &folder
                    .map_or_else(PathBuf::new, Path::to_path_buf)
                    .join(file),
            )?,
            None => Vec::new(),
        };
        let mut registry = resolve::resolve(raw, &filed)?;
        if let (Some(folder), Some(jwt)) = (folder, registry.auth.jwt.as_mut()) {
            if let JwksSource::File(path) = &mut jwt.jwks {
                *path = folder.join(&*path);
            }
        }
        Ok(registry)
    }
}

/// The principals of an `auth.principals_file`.
fn read_principals(path: &Path) -> Result<Vec<raw::RawPrincipal>, RegistryError> {
    let text = std::fs::read_to_string(path).map_err(|source| RegistryError::Io {
        path: format!("auth.principals_file {}", path.display()),
        source,
    })?;
    let file: raw::RawPrincipalsFile = toml::from_str(&text).map_err(|e| {
        RegistryError::Syntax(format!("auth.principals_file {}: {e}", path.display()))
    })?;
    Ok(file.auth.principals)
}
