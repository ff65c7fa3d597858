//! What a drill is asked to do: the server and store it targets, how the store is broken
//! ([`BreakMethod`]), how long each phase lasts and at what rate traffic is sent.

use std::time::Duration;

/// How the store is made unavailable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BreakMethod {
    /// `CLIENT PAUSE <outage ms> ALL` on the Redis at `--store`; ends by itself.
    ClientPause,
    /// The operator's shell commands.
    Commands {
        break_cmd: String,
        restore_cmd: String,
    },
}

impl BreakMethod {
    /// The name the drill record gives it: `client_pause` or `commands`.
    pub fn as_str(&self) -> &'static str {
        match self {
            BreakMethod::ClientPause => "client_pause",
            BreakMethod::Commands { .. } => "commands",
        }
    }
}

#[derive(Debug, Clone)]
pub struct DrillConfig {
    pub target: String,
    pub token: Option<String>,
    /// PEM certificates to trust for an https target (`--cacert`).
    pub cacert: Option<std::path::PathBuf>,
    pub store: String,
    pub method: BreakMethod,
    pub baseline: Duration,
    pub outage: Duration,
    /// How long to wait after the restore for stored values to come back.
    pub recovery_timeout: Duration,
    /// Requests per second, open loop.
    pub rate: f64,
    pub entity: Option<String>,
    /// Ids to drive; sampled from the store when `None`.
    pub ids: Option<Vec<String>>,
    /// Per request and per store call.
    pub timeout: Duration,
    pub progress: bool,
}
