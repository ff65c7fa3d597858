//! One judged checklist item ([`Item`]) and how it came out ([`Outcome`]); the lesson's
//! section names; the constructors the section modules share: a plain item, a manual one,
//! and a files judgment with a live one on top ([`with_live`]).

/// How one item came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    Pass,
    Manual,
    Warn,
    Fail,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Warn => "warn",
            Outcome::Fail => "fail",
            Outcome::Manual => "manual",
        }
    }
}

/// One judged checklist item.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// Stable id (`store_timeout`), for scripts reading `--json`.
    pub id: &'static str,
    /// The lesson's section: reliability, performance, observability, operations.
    pub section: &'static str,
    /// The lesson's wording, shortened.
    pub title: &'static str,
    pub outcome: Outcome,
    /// Why, with the numbers.
    pub reason: String,
}

/// The lesson's sections, as [`Item::section`] names them.
pub(super) const RELIABILITY: &str = "reliability";
pub(super) const PERFORMANCE: &str = "performance";
pub(super) const OBSERVABILITY: &str = "observability";
pub(super) const OPERATIONS: &str = "operations";

/// An item as judged.
pub(super) fn item(
    id: &'static str,
    section: &'static str,
    title: &'static str,
    outcome: Outcome,
    reason: impl Into<String>,
) -> Item {
    Item {
        id,
        section,
        title,
        outcome,
        reason: reason.into(),
    }
}

/// Applies a live judgment on top of a files judgment: the worse outcome wins.
pub(super) fn with_live(mut base: Item, live: Option<(Outcome, String)>) -> Item {
    if let Some((outcome, reason)) = live {
        base.outcome = base.outcome.max(outcome);
        base.reason = format!("{} Live: {reason}", base.reason);
    }
    base
}

/// An item of the operations section that only a person can judge: `what` says what to
/// confirm.
pub(super) fn manual_item(id: &'static str, title: &'static str, what: &str) -> Item {
    item(id, OPERATIONS, title, Outcome::Manual, what)
}
