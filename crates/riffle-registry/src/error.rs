//! Registry errors: one problem names its path; a failed load lists them all.

use std::fmt;

/// One thing wrong with a registry, at a path such as `feature_groups[1].ttl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Why a registry could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot read registry {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// The file is not TOML of the registry's shape (unknown field, wrong TOML type...).
    #[error("registry is not valid: {0}")]
    Syntax(String),
    /// The file parsed but breaks rules; every broken rule is listed.
    #[error("registry has {} problem(s):\n{}", .0.len(), .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
}

impl RegistryError {
    /// The problems found, for callers that want them one by one.
    pub fn problems(&self) -> Vec<Problem> {
        match self {
            RegistryError::Invalid(problems) => problems.clone(),
            RegistryError::Syntax(message) => vec![Problem {
                path: "(file)".into(),
                message: message.clone(),
            }],
            RegistryError::Io { path, source } => vec![Problem {
                path: path.clone(),
                message: source.to_string(),
            }],
        }
    }
}
