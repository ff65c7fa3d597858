//! `riffle check`: the seed lesson's 20-item production-readiness checklist and two items
//! of Riffle's own on the listeners' security (credentials and TLS wherever a listener faces
//! the network), each item
//! judged `pass` / `warn` / `fail` / `manual` with its reason, from the registry (serve,
//! store, ingest settings and SLOs), the records other commands leave beside it
//! (`.riffle/last-drill.json`, `.riffle/last-loadtest.json`, `.riffle/last-cost.json`) and,
//! when a live target is given, the running deployment ([`live`]: serve's `/health` and
//! `/metrics`, a sample of live store keys, the published ingest watermarks).
//!
//! - `checklist.rs` lists the items in the lesson's order; `reliability.rs`,
//!   `performance.rs`, `observability.rs` and `operations.rs` judge them by the lesson's
//!   sections (`security.rs` Riffle's own), from the item model (`item.rs`: [`Item`], [`Outcome`]), the input
//!   (`input.rs`: [`CheckInput`]), the records (`record.rs`: [`Record`]), the lesson's
//!   numbers ([`thresholds`]) and the wording of reasons (`wording.rs`).
//! - `report.rs` holds the judged [`Report`] and prints it ([`table`], [`to_json`]); this
//!   module reads the registry ([`load`]) and judges it ([`evaluate`]).
//! - Live facts that could not be gathered (a target that does not answer) make the items
//!   that needed them `fail`, saying why: an unreachable deployment is not ready.

mod checklist;
mod input;
mod item;
pub mod live;
mod observability;
mod operations;
mod performance;
mod record;
mod reliability;
mod report;
mod security;
pub mod thresholds;
mod wording;

use std::path::Path;

use riffle_registry::raw::RawRegistry;
use riffle_registry::Registry;

pub use input::{now, CheckInput};
pub use item::{Item, Outcome};
pub use live::{probe, LiveFacts, ProbeTargets};
pub use record::{records_dir, Record};
pub use report::{table, to_json, Report};

/// Why the checklist could not be judged at all.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("cannot read registry {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Registry(#[from] riffle_registry::RegistryError),
}

/// Reads the registry (valid, and as written) for a check.
pub fn load(path: &Path) -> Result<(Registry, RawRegistry), CheckError> {
    let text = std::fs::read_to_string(path).map_err(|source| CheckError::Read {
        path: path.display().to_string(),
        source,
    })?;
    // Loaded from its path, so `auth.principals_file` is found beside it.
    let registry = Registry::load(path)?;
    let raw = RawRegistry::from_toml(&text)?;
    Ok((registry, raw))
}

/// Judges all 22 items (the lesson's 20 and two on the listeners' security).
pub fn evaluate(input: &CheckInput<'_>) -> Report {
    Report {
        project: input.registry.project.clone(),
        live: input.live.map(|l| l.target.clone()),
        items: checklist::all(input),
    }
}
