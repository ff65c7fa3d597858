//! Store errors, each saying whether it is the store's health at fault (and so counts against
//! the circuit breaker) or the caller's input.

/// Why a store call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The call did not answer within the per-call timeout. Never retried: the caller falls
    /// back at once.
    #[error("store call timed out after {0} ms")]
    Timeout(u64),
    /// The bound on calls in flight was reached: failed fast instead of queueing.
    #[error("store overloaded: {0} calls already in flight")]
    Overloaded(usize),
    /// The store could not be reached or answered with an error.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store URL or settings are wrong.
    #[error("store misconfigured: {0}")]
    Config(String),
    /// Local file or database failure of the embedded store.
    #[error("embedded store failed: {0}")]
    Embedded(String),
}

impl StoreError {
    /// True when the failure says the store is unhealthy, so the circuit breaker counts it.
    /// An overloaded in-flight bound is *our* limit, not the store's health: not counted.
    pub fn counts_against_store(&self) -> bool {
        matches!(
            self,
            StoreError::Timeout(_) | StoreError::Unavailable(_) | StoreError::Embedded(_)
        )
    }

    /// A short low-cardinality name for metrics labels.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::Timeout(_) => "timeout",
            StoreError::Overloaded(_) => "overloaded",
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Config(_) => "config",
            StoreError::Embedded(_) => "embedded",
        }
    }
}
