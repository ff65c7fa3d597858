//! Why a drill could not be run: bad flags, a target or store that does not answer, no ids
//! to drive, a break command that failed, a record that cannot be written.

use crate::loadtest::LoadtestError;
use crate::probe::keyspace::KeyspaceError;

/// Why a drill could not be run (a failed check is not an error: the report says
/// `passed: false`).
#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Target(#[from] LoadtestError),
    #[error(transparent)]
    Store(#[from] KeyspaceError),
    #[error("no entity ids to drive: {0}")]
    NoIds(String),
    #[error("the break command failed, the drill did not start: {0}")]
    BreakFailed(String),
    #[error("cannot write the drill record {path}: {reason}")]
    Record { path: String, reason: String },
}

impl DrillError {
    pub fn is_usage(&self) -> bool {
        match self {
            DrillError::Usage(_) => true,
            DrillError::Target(e) => e.is_usage(),
            DrillError::Store(KeyspaceError::BadUrl { .. }) => true,
            _ => false,
        }
    }
}
