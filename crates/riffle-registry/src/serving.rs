//! What a group's rules make of a stored row: whether it still exists (its TTL), how fresh it
//! is (its SLOs), and which value is served for each feature. One owner for the rules that
//! `riffle serve` applies to what it reads and `riffle training-set` to what it recomputes,
//! so the two cannot drift apart.

use riffle_core::{FeatureValue, ValueStatus};

use crate::model::FeatureGroup;

impl FeatureGroup {
    /// Whether a row computed `age_ms` ago still exists: the store treats a row older than
    /// the group's `ttl` as no row (its key may outlive it: the key's TTL is the longest of
    /// the entity's groups).
    pub fn row_alive(&self, age_ms: u64) -> bool {
        age_ms <= self.ttl.as_millis() as u64
    }

    /// The status of a row aged `age_ms` (from its basis: the source's watermark for groups
    /// fed by a source, else the row's event time): within `freshness_slo` → `fresh`, within
    /// `staleness_limit` → `stale` (still served), beyond → `expired` (the default is).
    pub fn status_at_age(&self, age_ms: u64) -> ValueStatus {
        if age_ms <= self.freshness_slo.as_millis() as u64 {
            ValueStatus::Fresh
        } else if age_ms <= self.staleness_limit.as_millis() as u64 {
            ValueStatus::Stale
        } else {
            ValueStatus::Expired
        }
    }

    /// The value served for feature `feature` from a row of status `status` (`values`: the
    /// row's values, when there is a row) and its status: the stored value when fresh or
    /// stale and not null, else the training default (a stored null has status `null`).
    pub fn served_value<'a>(
        &'a self,
        feature: usize,
        values: Option<&'a [FeatureValue]>,
        status: ValueStatus,
    ) -> (&'a FeatureValue, ValueStatus) {
        let default = &self.features[feature].default;
        match (values, status) {
            (Some(values), ValueStatus::Fresh | ValueStatus::Stale) => match values.get(feature) {
                Some(FeatureValue::Null) | None => (default, ValueStatus::Null),
                Some(v) => (v, status),
            },
            _ => (default, status),
        }
    }
}

#[cfg(test)]
mod tests {
    use riffle_core::{FeatureValue, ValueStatus};

    use crate::Registry;

    fn registry() -> Registry {
        Registry::from_toml(
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
default = -1
"#,
        )
        .unwrap()
    }

    #[test]
    fn fresh_stale_expired_by_the_groups_slos() {
        let reg = registry();
        let g = &reg.groups[0];
        assert_eq!(g.status_at_age(0), ValueStatus::Fresh);
        assert_eq!(g.status_at_age(30_000), ValueStatus::Fresh);
        assert_eq!(g.status_at_age(30_001), ValueStatus::Stale);
        assert_eq!(g.status_at_age(600_000), ValueStatus::Stale);
        assert_eq!(g.status_at_age(600_001), ValueStatus::Expired);
    }

    #[test]
    fn a_row_lives_as_long_as_the_groups_ttl() {
        let reg = registry();
        assert!(reg.groups[0].row_alive(3_600_000));
        assert!(!reg.groups[0].row_alive(3_600_001));
    }

    #[test]
    fn stored_values_are_served_only_fresh_or_stale_and_never_null() {
        let reg = registry();
        let g = &reg.groups[0];
        let row = [FeatureValue::Int64(7)];
        let null = [FeatureValue::Null];
        let served = |values: Option<&[FeatureValue]>, status| {
            let (v, s) = g.served_value(0, values, status);
            (v.clone(), s)
        };
        let seven = FeatureValue::Int64(7);
        let default = FeatureValue::Int64(-1);
        assert_eq!(
            served(Some(&row), ValueStatus::Fresh),
            (seven.clone(), ValueStatus::Fresh)
        );
        assert_eq!(
            served(Some(&row), ValueStatus::Stale),
            (seven, ValueStatus::Stale)
        );
        assert_eq!(
            served(Some(&row), ValueStatus::Expired),
            (default.clone(), ValueStatus::Expired)
        );
        assert_eq!(
            served(Some(&null), ValueStatus::Fresh),
            (default.clone(), ValueStatus::Null)
        );
        assert_eq!(
            served(None, ValueStatus::Missing),
            (default, ValueStatus::Missing)
        );
    }
}
