//! Per-value status and per-response degradation level.

use serde::{Deserialize, Serialize};

/// What happened to one served value. Every value Riffle serves carries one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueStatus {
    /// Read from the cache or store, within the group's freshness SLO.
    Fresh,
    /// Read from the cache or store, older than the freshness SLO but within the group's
    /// staleness limit: still served.
    Stale,
    /// Stored, but older than the group's staleness limit: the training default is served.
    Expired,
    /// The entity has no row for this group: the training default is served.
    Missing,
    /// Stored explicitly as null: the training default is served.
    Null,
    /// The store could not be asked (down, timed out, breaker open, overloaded): the
    /// training default is served.
    Unavailable,
}

impl ValueStatus {
    pub const ALL: [ValueStatus; 6] = [
        ValueStatus::Fresh,
        ValueStatus::Stale,
        ValueStatus::Expired,
        ValueStatus::Missing,
        ValueStatus::Null,
        ValueStatus::Unavailable,
    ];

    /// The degradation level a value with this status puts its response in.
    pub fn degradation(self) -> Degradation {
        match self {
            ValueStatus::Fresh => Degradation::Healthy,
            ValueStatus::Stale => Degradation::Stale,
            ValueStatus::Expired
            | ValueStatus::Missing
            | ValueStatus::Null
            | ValueStatus::Unavailable => Degradation::Degraded,
        }
    }

    /// True when the served value is the training default rather than a stored one.
    pub fn serves_default(self) -> bool {
        self.degradation() == Degradation::Degraded
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ValueStatus::Fresh => "fresh",
            ValueStatus::Stale => "stale",
            ValueStatus::Expired => "expired",
            ValueStatus::Missing => "missing",
            ValueStatus::Null => "null",
            ValueStatus::Unavailable => "unavailable",
        }
    }
}

/// How far a value or a response is from ideal. Ordered: a response takes the worst level of
/// its values.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum Degradation {
    /// Fresh values from cache or store.
    #[default]
    Healthy,
    /// Some values are older than their group's freshness SLO, still served.
    Stale,
    /// Some values are training defaults (store unavailable, key missing, too old).
    Degraded,
    /// A group that must not serve defaults would have had to: the request fails.
    Critical,
}

impl Degradation {
    pub const ALL: [Degradation; 4] = [
        Degradation::Healthy,
        Degradation::Stale,
        Degradation::Degraded,
        Degradation::Critical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Degradation::Healthy => "healthy",
            Degradation::Stale => "stale",
            Degradation::Degraded => "degraded",
            Degradation::Critical => "critical",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_level_wins() {
        let worst = [ValueStatus::Fresh, ValueStatus::Stale, ValueStatus::Missing]
            .iter()
            .map(|s| s.degradation())
            .max()
            .unwrap();
        assert_eq!(worst, Degradation::Degraded);
        assert!(Degradation::Critical > Degradation::Degraded);
        assert!(ValueStatus::Unavailable.serves_default());
        assert!(!ValueStatus::Stale.serves_default());
    }
}
