//! Why a load test could not run ([`LoadtestError`]): bad flags, no client, a target that
//! does not answer or does not answer like `riffle serve`, no answer at all.

/// Why a load test could not run (a failed SLO is not an error: see
/// [`Report::passed`](super::report::Report::passed)).
#[derive(Debug, thiserror::Error)]
pub enum LoadtestError {
    /// Bad flags or flag values (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    /// Nothing answers at the target.
    #[error("cannot reach {target}: {reason}")]
    Unreachable { target: String, reason: String },
    /// Something answers, but not as `riffle serve` does.
    #[error("{target} does not answer like riffle serve: {reason}")]
    NotRiffle { target: String, reason: String },
    /// Every request failed: there is no latency to judge.
    #[error("no request got an answer ({0}); is the target up?")]
    NoAnswers(String),
}

impl LoadtestError {
    /// True for bad usage (exit 2); everything else is a runtime failure (exit 1).
    pub fn is_usage(&self) -> bool {
        matches!(self, LoadtestError::Usage(_))
    }
}
