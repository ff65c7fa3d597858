//! The input formats of a load ([`Format`]): CSV or NDJSON, named or told by the file's
//! extension.

use std::path::Path;
use std::str::FromStr;

use serde::Serialize;

use super::error::LoadError;

/// The input format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Ndjson,
}

impl Format {
    /// From the file extension: `.csv`, or `.ndjson` / `.jsonl` / `.json`.
    pub fn detect(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Some(Format::Csv),
            "ndjson" | "jsonl" | "json" => Some(Format::Ndjson),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Ndjson => "ndjson",
        }
    }
}

impl FromStr for Format {
    type Err = LoadError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "csv" => Ok(Format::Csv),
            "ndjson" | "jsonl" | "json" => Ok(Format::Ndjson),
            _ => Err(LoadError::UnknownFormat(s.to_owned())),
        }
    }
}
