//! Why a load could not start ([`LoadError`]): nothing has been written when one is
//! returned.

use std::path::PathBuf;

/// Why a load could not start. Nothing has been written when one of these is returned.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("no feature group {name:?} in the registry (groups: {known})")]
    UnknownGroup { name: String, known: String },
    #[error("format {0:?} is not known: use csv or ndjson")]
    UnknownFormat(String),
    #[error(
        "cannot tell the format of {0}: name it .csv, .ndjson, .jsonl or .json, or pass a format"
    )]
    UndetectedFormat(PathBuf),
    #[error("cannot read {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} does not fit group {group}:\n{}", .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Header {
        path: PathBuf,
        group: String,
        problems: Vec<String>,
    },
}
