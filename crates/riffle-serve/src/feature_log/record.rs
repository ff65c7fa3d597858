//! What the feature log keeps of one answered read, per sampled entity: the [`Record`] the
//! request path hands to the writer. It copies what the response was written from — each
//! value and status by the same `GroupOutcome::value` the `/v1` and Feast renderers call,
//! the group's status, event time, age and freshness basis — never a recomputation.

use std::sync::Arc;

use riffle_core::{EntityId, FeatureValue, Timestamp, ValueStatus};
use riffle_registry::{GroupId, Registry};

use crate::lookup::Lookup;
use crate::selection::Selection;
use crate::watermarks::Basis;

/// One sampled entity of one answered request.
#[derive(Debug, Clone)]
pub struct Record {
    /// The instant the values were judged at ([`Lookup::at`]).
    pub at: Timestamp,
    /// The route template that answered (`/v1/features`, `/get-online-features`, …).
    pub endpoint: &'static str,
    /// The feature service the request named (Feast's `feature_service`), if any.
    pub service: Option<Arc<str>>,
    /// Index into the registry's entities.
    pub entity: usize,
    pub id: EntityId,
    pub groups: Vec<GroupServed>,
}

/// One group of a [`Record`] as it was answered.
#[derive(Debug, Clone)]
pub struct GroupServed {
    pub group: GroupId,
    pub status: ValueStatus,
    /// Event time of the stored row, if there was one.
    pub event_ts: Option<Timestamp>,
    /// Age the row was served at, ms (from its basis, plus a replica's lag).
    pub age_ms: Option<u64>,
    /// What the age was measured from.
    pub basis: Option<Basis>,
    pub features: Vec<FeatureServed>,
}

/// One value as answered.
#[derive(Debug, Clone)]
pub struct FeatureServed {
    /// Index into the group's features.
    pub feature: usize,
    pub value: FeatureValue,
    pub status: ValueStatus,
}

impl Record {
    /// What `lookup` answered for entity `e` (of `ids`) under `sel`.
    pub fn of(
        registry: &Registry,
        sel: &Selection,
        lookup: &Lookup,
        e: usize,
        id: &EntityId,
        endpoint: &'static str,
        service: Option<Arc<str>>,
    ) -> Self {
        let groups = sel
            .groups
            .iter()
            .enumerate()
            .map(|(slot, &gid)| {
                let group = &registry.groups[gid];
                let outcome = lookup.outcome(e, slot);
                let features = sel
                    .columns
                    .iter()
                    .filter(|c| c.slot == slot)
                    .map(|c| {
                        let (value, status) = outcome.value(group, c.feature.feature);
                        FeatureServed {
                            feature: c.feature.feature,
                            value: value.clone(),
                            status,
                        }
                    })
                    .collect();
                GroupServed {
                    group: gid,
                    status: outcome.status,
                    event_ts: outcome.event_ts(),
                    age_ms: outcome.age_ms,
                    basis: outcome.basis,
                    features,
                }
            })
            .collect();
        Record {
            at: lookup.at,
            endpoint,
            service,
            entity: sel.entity,
            id: id.clone(),
            groups,
        }
    }

    /// The rows this record becomes: one per value.
    pub fn rows(&self) -> u64 {
        self.groups.iter().map(|g| g.features.len() as u64).sum()
    }
}
