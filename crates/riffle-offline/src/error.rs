//! Why a training set could not be built ([`OfflineError`]). Every variant names what to fix:
//! the file, the row and the column, the feature, or the group. Nothing is written when one
//! is returned.

/// Why a training set could not be built.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    /// The request itself: an unknown feature or service, a spine without a needed column.
    #[error("{0}")]
    Request(String),
    /// A requested group has no history to recompute it from.
    #[error(
        "group {group:?} has no history: declare `offline` on {declare} in the registry, or pass {flag}"
    )]
    NoHistory {
        group: String,
        declare: String,
        flag: String,
    },
    /// A file or location could not be listed or read.
    #[error("cannot read {location}: {message}")]
    Read { location: String, message: String },
    /// A value in the spine that cannot be used (row numbers count data rows from 1).
    #[error("{file}: row {row}, column {column:?}: {message}")]
    SpineValue {
        file: String,
        row: usize,
        column: String,
        message: String,
    },
    /// History passed a limit of how it is held in memory (4 billion entities or blocks,
    /// 4 GiB of values in one block), or its packed form did not read back (a bug).
    #[error("the history cannot be held in memory: {0}")]
    Held(String),
    /// The training set could not be written.
    #[error("cannot write {path}: {message}")]
    Write { path: String, message: String },
}

impl OfflineError {
    pub(crate) fn read(location: impl Into<String>, message: impl ToString) -> Self {
        OfflineError::Read {
            location: location.into(),
            message: message.to_string(),
        }
    }

    /// Whether the user's input is at fault (exit 2) rather than the run (exit 1).
    pub fn is_usage(&self) -> bool {
        !matches!(self, OfflineError::Write { .. } | OfflineError::Held(_))
    }
}
