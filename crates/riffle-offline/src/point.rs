//! What `riffle serve` would have read for one (entity, group) at one instant: a row with
//! its status, or none. [`Point::served`] turns it into each feature's value and status by
//! the group's own rules ([`riffle_registry::FeatureGroup::served_value`]), as serve does.
//! [`Answers`] is a group's answer at every spine row, replayed or joined.

use riffle_core::{FeatureValue, ValueStatus};
use riffle_registry::FeatureGroup;

use crate::as_of::{GroupHistory, Joined};

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

/// One group's answer at every spine row.
pub enum Answers {
    /// Replayed from a source's events ([`crate::replay`]): a point per row.
    Points(Vec<Point>),
    /// Joined on the group's row history ([`crate::as_of`]): a history row per spine row,
    /// its values read from the history itself.
    Joined {
        history: GroupHistory,
        rows: Vec<Joined>,
    },
}

impl Answers {
    /// Feature `feature`'s served value and status at spine row `row`.
    pub fn served<'a>(
        &'a self,
        group: &'a FeatureGroup,
        row: usize,
        feature: usize,
    ) -> (&'a FeatureValue, ValueStatus) {
        match self {
            Answers::Points(points) => points[row].served(group, feature),
            Answers::Joined { history, rows } => {
                let joined = rows[row];
                group.served_value(
                    feature,
                    joined.row.map(|r| history.values(r)),
                    joined.status,
                )
            }
        }
    }
}
