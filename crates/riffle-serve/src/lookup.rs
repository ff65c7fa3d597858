//! The layered read path, in the order a request meets the layers:
//!
//! 1. **hot cache** ([`crate::cache`]) — rows (and "no row" answers) by (group, id);
//! 2. **circuit breaker** ([`crate::breaker`]) — when open, misses go straight to 5;
//! 3. **store** — ONE call for every cache miss of the batch, under the store's own
//!    per-call timeout and in-flight bound (inside `OnlineStore`);
//! 4. **typed decode** — `RowRead::{Found, Missing, Corrupt, Unavailable}`; corrupt rows
//!    are logged, counted and served as `unavailable`; an entity whose cluster node could
//!    not answer is served as `unavailable` (not cached), the rest of the batch as usual;
//! 5. **freshness** ([`crate::freshness`]) — fresh / stale / expired by the group's SLOs,
//!    aged from the source's published watermark for stream groups ([`crate::watermarks`]),
//!    plus the replication lag of the replica that answered (`riffle_store::replicas`);
//! 6. **fallback** — the training default with its status for every value not served;
//! 7. **unsafe policy** — a group with `on_unsafe = "fail"` whose values would be
//!    `unavailable` or `expired` fails the request (503, `critical`). A *missing* row is
//!    the store's answer that the entity has no data: it serves the default.
//!
//! Values served are also sampled into their features' distributions ([`crate::drift`]).
//!
//! [`Reader::read`] runs these top to bottom; the HTTP limits in front of it (body size,
//! batch size, concurrency) are composed in [`crate::router`].

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use riffle_core::{Degradation, EntityId, FeatureValue, Timestamp, ValueStatus};
use riffle_registry::{FeatureGroup, Registry, UnsafePolicy};
use riffle_store::{EntityRead, GroupRow, OnlineStore, ReadAnswer, ReadNode, RowRead, StoreError};

use crate::breaker::{Admission, Breaker, Outcome as CallOutcome};
use crate::cache::{CacheKey, Cached, HotCache};
use crate::drift::Drift;
use crate::error::ApiError;
use crate::freshness;
use crate::metrics::Metrics;
use crate::selection::Selection;
use crate::watermarks::{Basis, WatermarkBoard};

/// One read request in this many has its values sampled into the distributions.
pub const DEFAULT_SAMPLE_EVERY: u64 = 16;

/// What the read path made of one (entity, group).
#[derive(Debug, Clone)]
pub struct GroupOutcome {
    /// Group-level status: fresh, stale, expired, missing or unavailable.
    pub status: ValueStatus,
    /// The stored row, when there is one (fresh, stale or expired).
    pub row: Option<Arc<GroupRow>>,
    /// Age of the row at serve time, ms.
    pub age_ms: Option<u64>,
    /// What the age was measured from (a watermark, or the row's event time), when there
    /// is a row; for a group served `missing`, the watermark its answer was read at.
    pub basis: Option<Basis>,
}

impl GroupOutcome {
    const UNAVAILABLE: GroupOutcome = GroupOutcome {
        status: ValueStatus::Unavailable,
        row: None,
        age_ms: None,
        basis: None,
    };

    /// The value served for feature `feature` of `group`, and its status: the stored value
    /// when fresh or stale and not null, else the training default.
    pub fn value<'a>(
        &'a self,
        group: &'a FeatureGroup,
        feature: usize,
    ) -> (&'a FeatureValue, ValueStatus) {
        group.served_value(
            feature,
            self.row.as_deref().map(|r| r.values.as_slice()),
            self.status,
        )
    }

    /// Event time of the stored row, if any.
    pub fn event_ts(&self) -> Option<Timestamp> {
        self.row.as_ref().map(|r| r.event_ts)
    }
}

/// The answer of a read: one [`GroupOutcome`] per (entity, selected group), entity-major.
#[derive(Debug)]
pub struct Lookup {
    pub outcomes: Vec<GroupOutcome>,
    groups_per_entity: usize,
    /// Degradation level per entity, worst over its values.
    pub entity_levels: Vec<Degradation>,
    /// Worst over all entities.
    pub level: Degradation,
    /// The instant the values were judged at (ages and statuses are as of it).
    pub at: Timestamp,
}

impl Lookup {
    pub fn outcome(&self, entity: usize, slot: usize) -> &GroupOutcome {
        &self.outcomes[entity * self.groups_per_entity + slot]
    }
}

/// Last observed freshness of one group, for `/health`.
#[derive(Debug, Default)]
pub struct GroupObservation {
    /// Age of the last stored value served, ms (u64::MAX: none yet).
    pub last_age_ms: AtomicU64,
    /// When that value was served, ms since epoch (0: never).
    pub last_served_at_ms: AtomicI64,
}

/// The read path with its cache, breaker and metrics.
pub struct Reader {
    registry: Arc<Registry>,
    store: Arc<OnlineStore>,
    pub cache: HotCache,
    pub breaker: Breaker,
    metrics: Arc<Metrics>,
    pub observed: Vec<GroupObservation>,
    /// The sources' watermarks, refreshed in the background.
    pub watermarks: Arc<WatermarkBoard>,
    /// Sampled distributions of the values served.
    pub drift: Drift,
}

impl Reader {
    pub fn new(
        registry: Arc<Registry>,
        store: Arc<OnlineStore>,
        cache_enabled: bool,
        metrics: Arc<Metrics>,
    ) -> Self {
        let observer_metrics = metrics.clone();
        let breaker = Breaker::new(registry.serve.breaker.clone(), move |from, to| {
            observer_metrics.breaker_state.set(to.gauge());
            observer_metrics
                .breaker_transitions
                .get_or_create(&crate::metrics::TransitionLabels {
                    from: from.as_str(),
                    to: to.as_str(),
                })
                .inc();
        });
        let observed = registry
            .groups
            .iter()
            .map(|_| GroupObservation {
                last_age_ms: AtomicU64::new(u64::MAX),
                last_served_at_ms: AtomicI64::new(0),
            })
            .collect();
        let watermarks = Arc::new(WatermarkBoard::new(registry.clone(), store.clone()));
        WatermarkBoard::spawn_refresher(&watermarks);
        Self {
            watermarks,
            drift: Drift::new(&registry, DEFAULT_SAMPLE_EVERY),
            cache: HotCache::new(&registry, cache_enabled),
            registry,
            store,
            breaker,
            metrics,
            observed,
        }
    }

    pub fn store(&self) -> &Arc<OnlineStore> {
        &self.store
    }

    /// Reads `sel` for every id, through every layer (see the module docs).
    pub async fn read(
        &self,
        sel: &Selection,
        ids: &[EntityId],
        endpoint: &'static str,
    ) -> Result<Lookup, ApiError> {
        let per = sel.groups.len();
        let mut outcomes: Vec<Option<GroupOutcome>> = vec![None; ids.len() * per];
        let now = Timestamp::now();

        // 1. Hot cache. Each id becomes one shared `Arc<str>` for all its groups' keys.
        let keys: Vec<Arc<str>> = ids.iter().map(|id| Arc::from(id.as_str())).collect();
        let mut misses: Vec<(usize, Vec<usize>)> = Vec::new();
        for (e, key) in keys.iter().enumerate() {
            let mut missed = Vec::new();
            for (slot, &group) in sel.groups.iter().enumerate() {
                match self.cache.get(&(group, key.clone())) {
                    Some(cached) => {
                        self.metrics.cache_hits.inc();
                        outcomes[e * per + slot] = Some(self.evaluate(group, Some(cached), now));
                    }
                    None => {
                        if self.cache.enabled() {
                            self.metrics.cache_misses.inc();
                        }
                        missed.push(slot);
                    }
                }
            }
            if !missed.is_empty() {
                misses.push((e, missed));
            }
        }

        // 2–4. Breaker, then one store call for every miss, then typed decode.
        if !misses.is_empty() {
            let groups: Vec<Vec<_>> = misses
                .iter()
                .map(|(_, slots)| slots.iter().map(|&s| sel.groups[s]).collect())
                .collect();
            let reads: Vec<EntityRead<'_>> = misses
                .iter()
                .zip(&groups)
                .map(|((e, _), g)| EntityRead {
                    entity: sel.entity,
                    id: ids[*e].as_str(),
                    groups: g,
                })
                .collect();
            // On a failed call every miss stays unavailable (5. fallback).
            if let Ok(answer) = self.call_store(&reads).await {
                // A replica's rows are as old as their basis plus its lag.
                let lag_ms = answer.replica_lag_ms.unwrap_or(0);
                for (((e, slots), row_reads), gids) in misses.iter().zip(answer.rows).zip(&groups) {
                    for ((&slot, read), &group) in slots.iter().zip(row_reads).zip(gids) {
                        let key: CacheKey = (group, keys[*e].clone());
                        let cached = match read {
                            RowRead::Found(row) => Cached::Found {
                                read_at: self.watermarks.basis(group, row.partition),
                                row: Arc::new(row),
                                lag_ms,
                            },
                            RowRead::Missing => Cached::Missing {
                                read_at: self.watermarks.basis(group, None),
                            },
                            // Its node could not answer (a cluster node down): like a
                            // failed call for this entity only, never cached.
                            RowRead::Unavailable => continue,
                            RowRead::Corrupt(err) => {
                                let g = &self.registry.groups[group];
                                tracing::error!(group = %g.name, error = %err, "corrupt row in the store; serving defaults");
                                self.metrics.groups[group].corrupt.inc();
                                continue;
                            }
                        };
                        self.cache.insert(key, cached.clone());
                        outcomes[*e * per + slot] = Some(self.evaluate(group, Some(cached), now));
                    }
                }
            }
        }

        // 5–6. Fallback: whatever is still unknown is unavailable, served as default.
        let outcomes: Vec<GroupOutcome> = outcomes
            .into_iter()
            .map(|o| o.unwrap_or(GroupOutcome::UNAVAILABLE))
            .collect();

        // 7. Unsafe policy.
        for (slot, &group) in sel.groups.iter().enumerate() {
            let g = &self.registry.groups[group];
            if g.on_unsafe != UnsafePolicy::Fail {
                continue;
            }
            let bad = (0..ids.len()).find_map(|e| match outcomes[e * per + slot].status {
                ValueStatus::Unavailable => Some("unavailable (store unreachable)"),
                ValueStatus::Expired => Some("expired (older than the staleness limit)"),
                _ => None,
            });
            if let Some(reason) = bad {
                self.metrics.response(endpoint, Degradation::Critical);
                tracing::warn!(group = %g.name, reason, "refusing to serve defaults for an unsafe group");
                return Err(ApiError::Unsafe {
                    group: g.name.clone(),
                    reason,
                });
            }
        }

        Ok(self.account(sel, ids.len(), outcomes, endpoint, now))
    }

    /// Counts served values and ages, remembers per-group freshness, and computes levels.
    fn account(
        &self,
        sel: &Selection,
        entities: usize,
        outcomes: Vec<GroupOutcome>,
        endpoint: &'static str,
        at: Timestamp,
    ) -> Lookup {
        let per = sel.groups.len();
        let now_ms = Timestamp::now().millis();
        let sampled = self.drift.sample();
        let mut entity_levels = Vec::with_capacity(entities);
        // Counted per request, then added once per (group, status) and the last age stored
        // once per group: every atomic shared by the server's threads that is touched per
        // value bounces a cache line between cores.
        let mut served = vec![[0u64; ValueStatus::ALL.len()]; per];
        let mut last_age: Vec<Option<u64>> = vec![None; per];
        for e in 0..entities {
            let mut level = Degradation::Healthy;
            for col in &sel.columns {
                let out = &outcomes[e * per + col.slot];
                let group = &self.registry.groups[col.feature.group];
                let (value, status) = out.value(group, col.feature.feature);
                served[col.slot][crate::metrics::status_index(status)] += 1;
                if sampled {
                    self.drift
                        .observe(group.id, col.feature.feature, value, status);
                }
                level = level.max(status.degradation());
            }
            for (slot, &group) in sel.groups.iter().enumerate() {
                if let Some(age) = outcomes[e * per + slot].age_ms {
                    self.metrics.groups[group].age.observe(age as f64 / 1000.0);
                    last_age[slot] = Some(age);
                }
            }
            entity_levels.push(level);
        }
        for (slot, &group) in sel.groups.iter().enumerate() {
            for (status, &n) in ValueStatus::ALL.iter().zip(&served[slot]) {
                if n > 0 {
                    self.metrics.served_n(group, *status, n);
                }
            }
            if let Some(age) = last_age[slot] {
                let obs = &self.observed[group];
                obs.last_age_ms.store(age, Ordering::Relaxed);
                obs.last_served_at_ms.store(now_ms, Ordering::Relaxed);
            }
        }
        let level = entity_levels.iter().copied().max().unwrap_or_default();
        self.metrics.response(endpoint, level);
        Lookup {
            outcomes,
            groups_per_entity: per,
            entity_levels,
            level,
            at,
        }
    }

    /// Freshness of one cached or stored answer.
    fn evaluate(&self, group: usize, cached: Option<Cached>, now: Timestamp) -> GroupOutcome {
        match cached {
            Some(Cached::Found {
                row,
                lag_ms,
                read_at,
            }) => {
                let basis = self
                    .watermarks
                    .basis(group, row.partition)
                    .kept_since(read_at);
                // Read from a replica `lag_ms` behind: the row is that much older than it
                // looks, as if seen `lag_ms` later.
                let seen_at = Timestamp::from_millis(now.millis().saturating_add(lag_ms as i64))
                    .unwrap_or(now);
                let (status, age) = freshness::evaluate(
                    &self.registry.groups[group],
                    basis.time_for(row.event_ts),
                    seen_at,
                );
                GroupOutcome {
                    status,
                    row: Some(row),
                    age_ms: Some(age),
                    basis: Some(basis),
                }
            }
            // No row, no age; the basis still says how far the pipeline had got.
            Some(Cached::Missing { read_at }) => GroupOutcome {
                status: ValueStatus::Missing,
                row: None,
                age_ms: None,
                basis: Some(self.watermarks.basis(group, None).kept_since(read_at)),
            },
            None => GroupOutcome::UNAVAILABLE,
        }
    }

    /// One store round trip behind the breaker, timed and counted.
    async fn call_store(&self, reads: &[EntityRead<'_>]) -> Result<ReadAnswer, ()> {
        let admission = self.breaker.admit();
        if admission == Admission::Rejected {
            self.metrics.breaker_rejections.inc();
            return Err(());
        }
        let started = tokio::time::Instant::now();
        let result = self.store.read_routed(reads).await;
        self.metrics
            .store_duration
            .get_or_create(&crate::metrics::OpLabels { op: "read" })
            .observe(started.elapsed().as_secs_f64());
        match result {
            Ok(answer) => {
                self.breaker.record(admission, CallOutcome::Success);
                let target = match answer.node {
                    ReadNode::Primary => 0,
                    ReadNode::Replica(i) => i + 1,
                };
                if let Some(reads) = self.metrics.store_reads.get(target) {
                    reads.inc();
                }
                if let Some(i) = answer.failed_over_from {
                    if let Some(failovers) = self.metrics.replica_failovers.get(i) {
                        failovers.inc();
                    }
                }
                Ok(answer)
            }
            Err(e) => {
                self.note_store_error("read", &e);
                let outcome = if e.counts_against_store() {
                    CallOutcome::Failure
                } else {
                    CallOutcome::Neutral
                };
                self.breaker.record(admission, outcome);
                Err(())
            }
        }
    }

    fn note_store_error(&self, op: &'static str, e: &StoreError) {
        self.metrics.store_error(op, e);
        tracing::warn!(op, kind = e.kind(), error = %e, "store call failed; serving defaults");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGISTRY: &str = r#"
[[entities]]
name = "user"
[[feature_groups]]
name = "g"
entity = "user"
ttl = "1h"
freshness_slo = "30s"
staleness_limit = "10m"
features = [{ name = "n", type = "int64", default = 0 }]
"#;

    #[tokio::test]
    async fn a_replicas_lag_is_added_to_the_age_of_what_it_served() {
        let registry = Arc::new(Registry::from_toml(REGISTRY).unwrap());
        let dir = tempfile::tempdir().unwrap();
        let limits = riffle_store::StoreLimits::from_settings(&registry.store);
        let store = OnlineStore::open(
            &riffle_store::StoreUrl::Embedded(dir.path().into()),
            registry.clone(),
            limits,
        )
        .await
        .unwrap();
        let metrics = Arc::new(Metrics::new(&registry));
        let reader = Reader::new(registry, Arc::new(store), false, metrics);
        let now = Timestamp::now();
        let row = Arc::new(GroupRow {
            event_ts: Timestamp::from_millis(now.millis() - 20_000).unwrap(),
            computed_at: now,
            values: vec![FeatureValue::Int64(1)],
            partition: None,
        });
        // From the primary (or a replica that keeps up): 20 s old, fresh.
        let primary = reader.evaluate(
            0,
            Some(Cached::Found {
                row: row.clone(),
                lag_ms: 0,
                read_at: Basis::EventTime,
            }),
            now,
        );
        assert_eq!(
            (primary.status, primary.age_ms),
            (ValueStatus::Fresh, Some(20_000))
        );
        // From a replica 15 s behind: 35 s old, past the 30 s SLO.
        let lagging = reader.evaluate(
            0,
            Some(Cached::Found {
                row: row.clone(),
                lag_ms: 15_000,
                read_at: Basis::EventTime,
            }),
            now,
        );
        assert_eq!(
            (lagging.status, lagging.age_ms),
            (ValueStatus::Stale, Some(35_000))
        );
        // 10 minutes behind: past the staleness limit, the default is served.
        let far = reader.evaluate(
            0,
            Some(Cached::Found {
                row,
                lag_ms: 600_000,
                read_at: Basis::EventTime,
            }),
            now,
        );
        assert_eq!(far.status, ValueStatus::Expired);
    }
}
