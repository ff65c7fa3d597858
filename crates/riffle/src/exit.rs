//! Exit codes (the README's "Commands": 0, 1, 2, 3) and the error type commands return to
//! pick one.

/// A runtime failure: the store, the network, a failed write.
pub const RUNTIME: u8 = 1;
/// Bad usage: a wrong flag value, a missing file, an invalid registry.
pub const USAGE: u8 = 2;
/// A check or SLO that failed (`lag`, `check`, `loadtest`, `drill`).
pub const CHECK: u8 = 3;

/// Why a command failed, and the exit code that says so.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub error: anyhow::Error,
}

/// What every command returns.
pub type CmdResult = Result<(), Failure>;

impl From<anyhow::Error> for Failure {
    /// An error with no code chosen is a runtime failure.
    fn from(error: anyhow::Error) -> Self {
        Self {
            code: RUNTIME,
            error,
        }
    }
}

/// Marks an error as bad usage (exit 2).
pub fn usage(error: impl Into<anyhow::Error>) -> Failure {
    Failure {
        code: USAGE,
        error: error.into(),
    }
}

/// Marks an error as a runtime failure (exit 1).
pub fn runtime(error: impl Into<anyhow::Error>) -> Failure {
    Failure {
        code: RUNTIME,
        error: error.into(),
    }
}

/// Marks an error as a failed check (exit 3).
pub fn check_failed(error: impl Into<anyhow::Error>) -> Failure {
    Failure {
        code: CHECK,
        error: error.into(),
    }
}
