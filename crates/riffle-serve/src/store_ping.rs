//! The store ping `/health` runs ([`Probe`]): a ping under the store's timeout, timed into
//! the `ping` store-call metrics, and its answer reused for a second so a load balancer
//! scraping `/health` cannot hammer the store.
//!
//! It takes the store and the metrics, not the server's state, so the state can hold it
//! without the two modules naming each other.

use std::sync::Mutex;
use std::time::Duration;

use riffle_store::OnlineStore;
use tokio::time::Instant;

use crate::metrics::{Metrics, OpLabels};

/// How long a ping answer is reused.
const PING_CACHE: Duration = Duration::from_secs(1);

/// The cached result of the last store ping.
#[derive(Default)]
pub struct Probe {
    last: Mutex<Option<(Instant, Result<Duration, String>)>>,
}

impl Probe {
    /// The store's round trip (or why it failed), pinged at most once per [`PING_CACHE`].
    pub(crate) async fn ping(
        &self,
        store: &OnlineStore,
        metrics: &Metrics,
    ) -> Result<Duration, String> {
        if let Some((at, result)) = &*self.last.lock().unwrap_or_else(|p| p.into_inner()) {
            if at.elapsed() < PING_CACHE {
                return result.clone();
            }
        }
        let started = Instant::now();
        let result = store.ping().await;
        metrics
            .store_duration
            .get_or_create(&OpLabels { op: "ping" })
            .observe(started.elapsed().as_secs_f64());
        if let Err(e) = &result {
            metrics.store_error("ping", e);
        }
        let result = result.map_err(|e| e.to_string());
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((Instant::now(), result.clone()));
        result
    }
}
