//! Everything the checklist is judged from ([`CheckInput`]): the registry as resolved and
//! as written, the records beside it, the live facts when a target was given, and the
//! clock the records are aged against.

use std::path::Path;

use riffle_registry::raw::RawRegistry;
use riffle_registry::Registry;

use super::live::LiveFacts;
use super::record::Record;

/// Everything the checklist is judged from.
#[derive(Debug)]
pub struct CheckInput<'a> {
    pub registry: &'a Registry,
    /// The registry as written (which SLOs were declared rather than defaulted).
    pub raw: &'a RawRegistry,
    /// The registry path as given (`riffle … --config PATH`), for the commands suggested.
    pub config_path: &'a Path,
    pub drill: Record,
    pub loadtest: Record,
    pub cost: Record,
    pub live: Option<&'a LiveFacts>,
    pub now: chrono::DateTime<chrono::Utc>,
}

/// The clock records are aged against.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}
