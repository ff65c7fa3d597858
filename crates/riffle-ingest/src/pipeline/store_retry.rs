//! How the pipeline rides out an unhealthy store: [`retrying`] repeats a store call while it
//! fails for the store's health (unreachable, slow, at its in-flight bound), with a
//! back-off, instead of ending the run.

use std::future::Future;
use std::time::Duration;

use riffle_store::StoreError;

use super::error::PipelineError;

/// First and longest pause between attempts of a store call that failed for the store's
/// health.
const STORE_RETRY_MIN: Duration = Duration::from_millis(100);
const STORE_RETRY_MAX: Duration = Duration::from_secs(5);

/// Runs a store call until it succeeds, while it fails because the store is unreachable,
/// slow or at its in-flight bound: ingest waits out a store outage (logging each failure,
/// with a back-off of 100 ms doubling to 5 s) instead of ending. Meanwhile nothing new is
/// flushed, the bounded feed fills and the input pauses (backpressure); `/health` turns
/// unhealthy once no flush has completed for a while. Other errors end the run.
pub(super) async fn retrying<T, F, Fut>(what: &'static str, mut call: F) -> Result<T, PipelineError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut pause = STORE_RETRY_MIN;
    loop {
        match call().await {
            Ok(value) => return Ok(value),
            Err(
                error @ (StoreError::Timeout(_)
                | StoreError::Unavailable(_)
                | StoreError::Overloaded(_)),
            ) => {
                tracing::warn!(%error, what, retry_in_ms = pause.as_millis() as u64, "store call failed; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(STORE_RETRY_MAX);
            }
            Err(error) => return Err(error.into()),
        }
    }
}
