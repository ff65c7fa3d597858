//! A load test as resolved from flags and the registry ([`LoadtestConfig`]).

use std::time::Duration;

use super::plan::{Burst, IdSource, Mode, Selection};

/// A load test, resolved from flags and the registry.
#[derive(Debug, Clone)]
pub struct LoadtestConfig {
    /// Base URL of the server (`http://127.0.0.1:6566`).
    pub target: String,
    pub token: Option<String>,
    /// PEM certificates to trust for an https target (`--cacert`).
    pub cacert: Option<std::path::PathBuf>,
    pub mode: Mode,
    /// The expected peak and factor the open-loop rate was derived from, if it was.
    pub peak: Option<f64>,
    pub factor: Option<f64>,
    pub bursts: Vec<Burst>,
    pub duration: Duration,
    /// Entities per request: 1 is `GET /v1/features/{entity}/{id}`, more a `POST` batch.
    pub batch: usize,
    pub selection: Selection,
    pub ids: IdSource,
    pub hot_fraction: f64,
    pub hot_share: f64,
    pub cold_share: f64,
    /// Per-request timeout (also the connect timeout).
    pub timeout: Duration,
    /// Open loop: the most requests in flight at once.
    pub max_in_flight: usize,
    /// Print a progress line to stderr every second.
    pub progress: bool,
}
