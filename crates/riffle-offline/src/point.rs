//! What `riffle serve` would have read for one (entity, group) at one instant: a row with
//! its status, or none. [`Point::served`] turns it into each feature's value and status by
//! the group's own rules ([`riffle_registry::FeatureGroup::served_value`]), as serve does.

use riffle_core::{FeatureValue, ValueStatus};
use riffle_registry::FeatureGroup;

/// The row of one (entity, group) at one instant, as serve would have found it.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// `fresh`, `stale` or `expired` for a row; `missing` for none.
    pub status: ValueStatus,
    pub values: Option<Vec<FeatureValue>>,
}

impl Point {
    pub const MISSING: Point = Point {
        status: ValueStatus::Missing,
        values: None,
    };

    pub fn row(status: ValueStatus, values: Vec<FeatureValue>) -> Point {
        Point {
            status,
            values: Some(values),
        }
    }

    /// Feature `feature`'s served value and status.
    pub fn served<'a>(
        &'a self,
        group: &'a FeatureGroup,
        feature: usize,
    ) -> (&'a FeatureValue, ValueStatus) {
        group.served_value(feature, self.values.as_deref(), self.status)
    }
}
