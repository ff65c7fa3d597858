//! Riffle's synthetic data, for the demo, the load tests and the benches.
//!
//! A synthetic population for any registry: `n` entities of one entity type with power-law
//! activity (top 1% ≈ 20% of activity, see [`PowerLaw`]), and a plausible row for every
//! feature group of that entity, driven by the features' declared types (names such as
//! `tx_count_1h` or `is_premium` only sharpen the values). Deterministic: the same seed gives
//! the same population.
//!
//! [`Ticker`] keeps it moving: each tick picks entities by the power law and produces new
//! rows of the fast groups (freshness SLO of five minutes or less), as if each had just made
//! a transaction: counts go up, sums grow, timestamps jump to now, and what fell out of a
//! window since the last update is aged out.
//!
//! [`EventGenerator`] ([`events`]) makes *events* instead of rows: any source's schema, the
//! same power law, bursts and cold starts, paced by a token bucket ([`Pacer`]).

pub mod events;
mod power_law;
mod values;

use std::collections::HashMap;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use riffle_core::{EntityId, FeatureValue, Timestamp};
use riffle_registry::{FeatureGroup, GroupId, KeyType, Registry};
use riffle_store::{GroupRow, RowWrite};

pub use events::{Bursts, EventGenerator, EventPlan, Pacer, Pick};
pub use power_law::{harmonic, PowerLaw};
use values::{Kind, Traits};

/// The rows of entities `first..=last` of a population (numbers, from 0), batch `index`.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityBatch {
    pub index: u64,
    pub first: u64,
    pub last: u64,
    pub rows: Vec<RowWrite>,
}

/// Groups whose freshness SLO is at most this are "fast": the ticker moves them.
pub const FAST_GROUP_SLO: Duration = Duration::from_secs(300);

/// Why a population cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GeneratorError {
    #[error("no entity {0:?} in the registry")]
    UnknownEntity(String),
    #[error("entity {0:?} has no feature groups to fill")]
    NoGroups(String),
    #[error("a population needs at least one entity")]
    Empty,
}

#[derive(Debug, Clone)]
struct GroupPlan {
    group: FeatureGroup,
    kinds: Vec<Kind>,
    fast: bool,
}

/// The synthetic population.
#[derive(Debug, Clone)]
pub struct Population {
    entities: u64,
    seed: u64,
    id_prefix: String,
    activity: PowerLaw,
    groups: Vec<GroupPlan>,
}

/// A stable, well-mixed seed for one (population seed, entity, stream) triple.
fn mix(seed: u64, entity: u64, stream: u64) -> u64 {
    let mut x = seed ^ entity.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ stream.rotate_left(32);
    // splitmix64 finaliser
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl Population {
    /// `entities` entities of `entity` (by name), numbered from 0. String ids are the
    /// entity name's first letter and the number (`u0`, `u1`, … for `user`); `int64` ids are
    /// the number.
    pub fn new(
        registry: &Registry,
        entity: &str,
        entities: u64,
        seed: u64,
    ) -> Result<Self, GeneratorError> {
        if entities == 0 {
            return Err(GeneratorError::Empty);
        }
        let (index, ent) = registry
            .entities
            .iter()
            .enumerate()
            .find(|(_, e)| e.name == entity)
            .ok_or_else(|| GeneratorError::UnknownEntity(entity.to_owned()))?;
        let groups: Vec<GroupPlan> = registry
            .groups_of(index)
            .map(|g| GroupPlan {
                kinds: g.features.iter().map(Kind::of).collect(),
                fast: g.freshness_slo <= FAST_GROUP_SLO,
                group: g.clone(),
            })
            .collect();
        if groups.is_empty() {
            return Err(GeneratorError::NoGroups(entity.to_owned()));
        }
        let id_prefix = match ent.key_type {
            KeyType::Int64 => String::new(),
            KeyType::String => ent
                .name
                .chars()
                .next()
                .map(String::from)
                .unwrap_or_default(),
        };
        Ok(Self {
            entities,
            seed,
            id_prefix,
            activity: PowerLaw::new(entities, 0.01, 0.2),
            groups,
        })
    }

    pub fn len(&self) -> u64 {
        self.entities
    }

    pub fn is_empty(&self) -> bool {
        self.entities == 0
    }

    pub fn activity(&self) -> &PowerLaw {
        &self.activity
    }

    /// The groups filled, in registry order.
    pub fn groups(&self) -> impl Iterator<Item = &FeatureGroup> {
        self.groups.iter().map(|p| &p.group)
    }

    /// The groups the ticker moves.
    pub fn fast_groups(&self) -> impl Iterator<Item = &FeatureGroup> {
        self.groups.iter().filter(|p| p.fast).map(|p| &p.group)
    }

    /// The id of entity number `n` (rank `n + 1`: entity 0 is the most active).
    pub fn id(&self, n: u64) -> EntityId {
        match EntityId::new(format!("{}{n}", self.id_prefix)) {
            Ok(id) => id,
            Err(_) => unreachable!("a letter and digits make a valid entity id"),
        }
    }

    fn traits(&self, n: u64) -> Traits {
        let mut rng = SmallRng::seed_from_u64(mix(self.seed, n, u64::MAX));
        Traits::draw(&mut rng, self.activity.relative_activity(n + 1))
    }

    /// Entity `n`'s row of every group, as of `now`. Event times fall within the first half
    /// of each group's freshness SLO, so a fresh load serves `fresh` values.
    pub fn rows(&self, n: u64, now: Timestamp) -> Vec<RowWrite> {
        let traits = self.traits(n);
        let id = self.id(n);
        self.groups
            .iter()
            .map(|plan| RowWrite {
                id: id.clone(),
                group: plan.group.id,
                row: self.row_of(n, &traits, plan, now),
            })
            .collect()
    }

    fn row_of(&self, n: u64, traits: &Traits, plan: &GroupPlan, now: Timestamp) -> GroupRow {
        let mut rng = SmallRng::seed_from_u64(mix(self.seed, n, plan.group.id as u64));
        let values = values::row_values(&mut rng, traits, &plan.kinds, &plan.group.features, now);
        let half_slo = (plan.group.freshness_slo.as_millis() as u64 / 2).max(1);
        let age = rng.random_range(0..half_slo) as i64;
        GroupRow {
            event_ts: Timestamp::from_millis(now.millis() - age).unwrap_or(now),
            computed_at: now,
            values,
            partition: None,
        }
    }

    /// The whole population as batches of `entities_per_batch` entities (all their groups).
    pub fn batches(
        &self,
        entities_per_batch: u64,
        now: Timestamp,
    ) -> impl Iterator<Item = EntityBatch> + '_ {
        let per = entities_per_batch.max(1);
        let count = self.entities.div_ceil(per);
        (0..count).map(move |b| {
            let first = b * per;
            let last = ((b + 1) * per).min(self.entities) - 1;
            EntityBatch {
                index: b,
                first,
                last,
                rows: (first..=last).flat_map(|n| self.rows(n, now)).collect(),
            }
        })
    }

    /// A ticker over this population, with its own seed.
    pub fn ticker(&self, seed: u64) -> Ticker {
        Ticker {
            rng: SmallRng::seed_from_u64(mix(self.seed, seed, 0x71C4)),
            state: HashMap::new(),
        }
    }
}

/// Most (entity, group) rows a ticker remembers; past it, it forgets and starts again from
/// the population's rows.
const TICKER_MEMORY: usize = 200_000;

/// Moves the fast groups of the most active entities.
pub struct Ticker {
    rng: SmallRng,
    state: HashMap<(u64, GroupId), GroupRow>,
}

impl Ticker {
    /// Picks `picks` entities by the power law (the active ones more often) and returns
    /// their new fast-group rows, event time `now`: one row per (entity, group), however
    /// many times an entity was picked.
    pub fn tick(&mut self, population: &Population, picks: usize, now: Timestamp) -> Vec<RowWrite> {
        if self.state.len() > TICKER_MEMORY {
            self.state.clear();
        }
        let mut touched: Vec<(u64, GroupId)> = Vec::new();
        for _ in 0..picks {
            let n = population.activity.sample(&mut self.rng) - 1;
            let traits = population.traits(n);
            for plan in population.groups.iter().filter(|p| p.fast) {
                let key = (n, plan.group.id);
                let row = match self.state.remove(&key) {
                    Some(row) => row,
                    None => population.row_of(n, &traits, plan, now),
                };
                let row = transact(&mut self.rng, &traits, plan, row, now);
                if !touched.contains(&key) {
                    touched.push(key);
                }
                self.state.insert(key, row);
            }
        }
        touched
            .into_iter()
            .filter_map(|key| {
                let row = self.state.get(&key)?.clone();
                Some(RowWrite {
                    id: population.id(key.0),
                    group: key.1,
                    row,
                })
            })
            .collect()
    }
}

/// One new transaction on a row: age out what left each window since the row's event time,
/// then count the transaction in.
fn transact(
    rng: &mut SmallRng,
    traits: &Traits,
    plan: &GroupPlan,
    mut row: GroupRow,
    now: Timestamp,
) -> GroupRow {
    let elapsed = row.event_ts.age_at(now) as f64;
    let amount = values::amount(rng, traits);
    for (value, kind) in row.values.iter_mut().zip(&plan.kinds) {
        let keep = kind
            .window_ms()
            .map_or(1.0, |w| (1.0 - elapsed / w).clamp(0.0, 1.0));
        *value = match (kind, &*value) {
            (Kind::Count { .. }, FeatureValue::Int64(c)) => {
                FeatureValue::Int64((*c as f64 * keep).round() as i64 + 1)
            }
            (Kind::Count { .. }, FeatureValue::Float64(c)) => {
                FeatureValue::Float64((c * keep).round() + 1.0)
            }
            (Kind::Sum { .. }, FeatureValue::Float64(s)) => {
                FeatureValue::Float64(((s * keep + amount) * 100.0).round() / 100.0)
            }
            (Kind::Sum { .. }, FeatureValue::Int64(s)) => {
                FeatureValue::Int64((*s as f64 * keep + amount).round() as i64)
            }
            (Kind::EpochMillis, FeatureValue::Int64(_)) => FeatureValue::Int64(now.millis()),
            (Kind::EpochMillis, FeatureValue::Float64(_)) => {
                FeatureValue::Float64(now.millis() as f64)
            }
            (Kind::Distinct { .. }, FeatureValue::Int64(d)) => {
                let d = (*d as f64 * keep).round() as i64;
                FeatureValue::Int64(if rng.random_bool(0.3) || d == 0 {
                    d + 1
                } else {
                    d
                })
            }
            _ => value.clone(),
        };
    }
    row.event_ts = now;
    row.computed_at = now;
    row
}

#[cfg(test)]
mod tests;
