//! Freshness evaluation: how old a stored row is at serve time, and what that makes of its
//! values, by the group's own SLOs from the registry (never a hard-coded constant).
//!
//! age = now − basis; age ≤ `freshness_slo` → `fresh`; ≤ `staleness_limit` → `stale`
//! (value still served); beyond → `expired` (the training default is served). The basis is
//! the source's published watermark for groups fed by a source, else the row's event time
//! (chosen by [`crate::watermarks::WatermarkBoard::basis`]).

use riffle_core::{Timestamp, ValueStatus};
use riffle_registry::FeatureGroup;

/// Status of a stored row of `group` exact as of `event_ts`, seen at `now`, and its age in
/// milliseconds (the rule itself is the group's: [`FeatureGroup::status_at_age`]).
pub fn evaluate(group: &FeatureGroup, event_ts: Timestamp, now: Timestamp) -> (ValueStatus, u64) {
    let age = event_ts.age_at(now);
    (group.status_at_age(age), age)
}

#[cfg(test)]
mod tests {
    use super::*;
    use riffle_registry::Registry;

    fn group() -> FeatureGroup {
        let reg = Registry::from_toml(
            r#"
[[entities]]
name = "user"
[[feature_groups]]
name = "g"
entity = "user"
ttl = "1h"
freshness_slo = "30s"
staleness_limit = "10m"
[[feature_groups.features]]
name = "f"
type = "int64"
default = 0
"#,
        )
        .unwrap();
        reg.groups[0].clone()
    }

    #[test]
    fn a_row_is_aged_from_its_basis_by_the_groups_rule() {
        let g = group();
        let now = Timestamp::from_millis(1_000_000_000).unwrap();
        let at = |age_ms: i64| Timestamp::from_millis(now.millis() - age_ms).unwrap();
        assert_eq!(evaluate(&g, at(0), now), (ValueStatus::Fresh, 0));
        assert_eq!(
            evaluate(&g, at(600_001), now),
            (ValueStatus::Expired, 600_001)
        );
        // An event time in the future (clock skew) is age 0, fresh.
        let future = Timestamp::from_millis(now.millis() + 5000).unwrap();
        assert_eq!(evaluate(&g, future, now), (ValueStatus::Fresh, 0));
    }
}
