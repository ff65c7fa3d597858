//! Why a run of the pipeline stops ([`PipelineError`]), and which of those reasons are
//! worth retrying the run for. Bad events never stop a run: they are dead-lettered.

use riffle_store::StoreError;
use riffle_window::ConfigError;

/// Why a run stopped. Bad events never stop it: they are dead-lettered.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("no source #{0} in the registry")]
    NoSource(usize),
    #[error("source {0:?} feeds no feature group with aggregations")]
    NoFeatures(String),
    #[error(transparent)]
    Specs(#[from] ConfigError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("reading the input: {0}")]
    Read(std::io::Error),
    #[error("dead-letter sink {sink}: {error}")]
    DeadLetter { sink: String, error: std::io::Error },
    #[error("stored state of {entity} cannot be read ({error}); remove its field to rebuild it")]
    CorruptState { entity: String, error: String },
}

impl PipelineError {
    /// Worth retrying the run (the store or the disk was unhealthy); the others need a fix.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Store(_) | Self::Read(_) | Self::DeadLetter { .. }
        )
    }
}
