//! The limits every store call runs under ([`StoreLimits`]) and the one place they are
//! enforced on a call ([`CallGuard`]): a per-call timeout, and a bound on calls in flight
//! that fails fast instead of queueing.
//!
//! The guard is generic over the call's future: it adds no allocation and no dynamic
//! dispatch to a call, one `try_acquire` and one Tokio timer (Tokio's clock, so tests can
//! pause it).

use std::future::Future;
use std::time::Duration;

use riffle_registry::StoreSettings;
use tokio::sync::Semaphore;

use crate::error::StoreError;

/// The limits every store call runs under.
#[derive(Debug, Clone)]
pub struct StoreLimits {
    /// Per-call timeout for reads (the lesson's 50 ms).
    pub timeout: Duration,
    /// Per-call timeout for writes, which carry bigger batches.
    pub write_timeout: Duration,
    pub connect_timeout: Duration,
    /// Calls in flight at once; past it calls fail with [`StoreError::Overloaded`] at once.
    pub max_in_flight: usize,
    /// Fraction of the TTL added at random to each key's TTL.
    pub ttl_jitter: f64,
}

impl StoreLimits {
    pub fn from_settings(s: &StoreSettings) -> Self {
        Self {
            timeout: s.timeout,
            write_timeout: s.timeout.max(Duration::from_secs(10)),
            connect_timeout: s.connect_timeout,
            max_in_flight: s.max_in_flight,
            ttl_jitter: s.ttl_jitter,
        }
    }
}

/// Runs store calls under the bound on calls in flight and a per-call timeout.
pub(crate) struct CallGuard {
    in_flight: Semaphore,
    max_in_flight: usize,
}

impl CallGuard {
    pub(crate) fn new(max_in_flight: usize) -> Self {
        Self {
            in_flight: Semaphore::new(max_in_flight),
            max_in_flight,
        }
    }

    /// Calls in flight now.
    pub(crate) fn in_flight(&self) -> usize {
        self.max_in_flight - self.in_flight.available_permits()
    }

    /// Runs `call` under the in-flight bound and `timeout`: [`StoreError::Overloaded`] at
    /// once when the bound is reached, [`StoreError::Timeout`] when `call` takes longer.
    pub(crate) async fn run<T>(
        &self,
        timeout: Duration,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let _permit = self
            .in_flight
            .try_acquire()
            .map_err(|_| StoreError::Overloaded(self.max_in_flight))?;
        match tokio::time::timeout(timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Timeout(timeout.as_millis() as u64)),
        }
    }
}
