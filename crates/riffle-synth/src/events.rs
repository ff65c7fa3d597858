//! Synthetic events for any source's schema (`kind = "generator"`, or `riffle ingest
//! --generate RATE` over another source): NDJSON objects with the source's key field, its
//! time field (epoch milliseconds) and a plausible value for every declared field, driven by
//! the field's type (names such as `amount`, `merchant_id`, `country` or `device` only
//! sharpen the values).
//!
//! - **Entities** follow the population's power law ([`PowerLaw`]: top 1% ≈ 20% of events);
//!   the entity of rank `r` has the id [`super::Population`] gives entity `r − 1` (`u0` is
//!   the most active user), so generated events land on a bulk-loaded population.
//! - **Cold starts**: a share of events ([`EventPlan::cold_start_share`]) goes to entities
//!   never seen before, numbered on from the population's end (`u100000`, `u100001`, …).
//! - **Disorder**: event time is `now` minus up to [`EventPlan::disorder`].
//! - **Bursts** ([`Bursts`]): every `period` the rate jumps 5–10× for a few seconds.
//! - **Pacing** ([`Pacer`]): a token bucket that says how many events are due.
//!
//! Deterministic given the seed: the same seed gives the same entities, values, disorder
//! offsets and burst schedule; only the wall clock the times hang from differs.

use std::fmt::Write as _;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal};
use riffle_core::FeatureType;
use riffle_registry::{KeyType, Registry, Source};

use super::{GeneratorError, PowerLaw};

/// What to generate, besides the source's schema.
#[derive(Debug, Clone, PartialEq)]
pub struct EventPlan {
    /// Events per second outside bursts.
    pub rate: f64,
    /// Entities of the power law (ranks 1..=entities).
    pub entities: u64,
    pub seed: u64,
    /// Share of events that go to an entity never seen before.
    pub cold_start_share: f64,
    /// Event times fall in `[now − disorder, now]`.
    pub disorder: Duration,
    pub bursts: Bursts,
}

impl EventPlan {
    /// The defaults: 2% cold starts, up to 3 s of disorder, a 5–10× burst of 5 s every 60 s.
    pub fn new(rate: f64, entities: u64, seed: u64) -> Self {
        Self {
            rate,
            entities: entities.max(1),
            seed,
            cold_start_share: 0.02,
            disorder: Duration::from_secs(3),
            bursts: Bursts::new(seed),
        }
    }
}

/// Periodic rate spikes: burst `k` starts at a seeded point of period `k` and multiplies
/// the rate by a seeded factor in `[min_factor, max_factor]` for `length`.
#[derive(Debug, Clone, PartialEq)]
pub struct Bursts {
    pub period: Duration,
    pub length: Duration,
    pub min_factor: f64,
    pub max_factor: f64,
    seed: u64,
}

impl Bursts {
    pub fn new(seed: u64) -> Self {
        Self {
            period: Duration::from_secs(60),
            length: Duration::from_secs(5),
            min_factor: 5.0,
            max_factor: 10.0,
            seed,
        }
    }

    /// No bursts: a steady rate.
    pub fn none(seed: u64) -> Self {
        Self {
            min_factor: 1.0,
            max_factor: 1.0,
            ..Self::new(seed)
        }
    }

    /// The rate multiplier `elapsed` after the start (1 outside bursts).
    pub fn factor(&self, elapsed: Duration) -> f64 {
        let period = self.period.as_millis().max(1) as u64;
        let length = (self.length.as_millis() as u64).min(period);
        let t = elapsed.as_millis() as u64;
        let k = t / period;
        let mut rng = SmallRng::seed_from_u64(super::mix(self.seed, k, 0xB0B5));
        let start = rng.random_range(0..=period - length);
        let factor = if self.max_factor > self.min_factor {
            rng.random_range(self.min_factor..=self.max_factor)
        } else {
            self.min_factor
        };
        let at = t % period;
        if (start..start + length).contains(&at) {
            factor.max(0.0)
        } else {
            1.0
        }
    }
}

/// A token bucket: how many events are due after `elapsed`, at `rate × bursts.factor`, with
/// at most `max_backlog` seconds of events owed (time spent blocked on a full queue is not
/// made up beyond that).
#[derive(Debug, Clone)]
pub struct Pacer {
    rate: f64,
    bursts: Bursts,
    tokens: f64,
    last: Duration,
    max_backlog: f64,
}

impl Pacer {
    pub fn new(rate: f64, bursts: Bursts) -> Self {
        Self {
            rate: if rate.is_finite() { rate.max(0.0) } else { 0.0 },
            bursts,
            tokens: 0.0,
            last: Duration::ZERO,
            max_backlog: 0.2,
        }
    }

    /// Events due now, `elapsed` after the start; call it as often as convenient.
    pub fn due(&mut self, elapsed: Duration) -> u64 {
        let dt = elapsed.saturating_sub(self.last).as_secs_f64();
        self.last = self.last.max(elapsed);
        let rate = self.rate * self.bursts.factor(elapsed);
        let cap = (rate * self.max_backlog).max(1.0);
        self.tokens = (self.tokens + rate * dt).min(cap);
        let whole = self.tokens.floor();
        self.tokens -= whole;
        whole as u64
    }
}

/// How one field's values are drawn.
#[derive(Debug, Clone)]
enum FieldGen {
    Amount(LogNormal<f64>),
    /// One of `n` counterparts (merchants…), by a power law: `prefix` + number.
    Counterpart {
        prefix: String,
        law: PowerLaw,
    },
    Choice(&'static [&'static str]),
    /// A recent time, epoch milliseconds (names ending `_ts`, `_at`, `_time`): up to 30
    /// minutes before the event.
    RecentMillis,
    Float,
    Int,
    Bool,
    Text,
    Vector(u32),
}

const COUNTRIES: &[&str] = &["US", "GB", "DE", "FR", "BR", "IN", "NG", "JP", "CA", "ES"];
const DEVICES: &[&str] = &["ios", "android", "web"];
const CHANNELS: &[&str] = &["card_present", "online", "wallet"];

impl FieldGen {
    fn of(name: &str, ty: FeatureType) -> Self {
        let lower = name.to_ascii_lowercase();
        match ty {
            FeatureType::Float64 | FeatureType::Int64
                if ["amount", "price", "value", "total"]
                    .iter()
                    .any(|w| lower.contains(w)) =>
            {
                // Median ≈ 30, a long tail of large transactions.
                match LogNormal::new(3.4, 1.0) {
                    Ok(d) => Self::Amount(d),
                    Err(_) => Self::Float,
                }
            }
            FeatureType::Int64 | FeatureType::Float64
                if ["_ts", "_at", "_time"].iter().any(|w| lower.ends_with(w)) =>
            {
                Self::RecentMillis
            }
            FeatureType::Float64 => Self::Float,
            FeatureType::Int64 => Self::Int,
            FeatureType::Bool => Self::Bool,
            FeatureType::FloatVector { dim } => Self::Vector(dim),
            FeatureType::String if lower.contains("country") => Self::Choice(COUNTRIES),
            FeatureType::String if lower.contains("device") || lower.contains("platform") => {
                Self::Choice(DEVICES)
            }
            FeatureType::String if lower.contains("channel") => Self::Choice(CHANNELS),
            FeatureType::String if lower.ends_with("_id") || lower.ends_with("id") => {
                Self::Counterpart {
                    prefix: lower.chars().next().map(String::from).unwrap_or_default(),
                    law: PowerLaw::new(5_000, 0.01, 0.3),
                }
            }
            FeatureType::String => Self::Text,
        }
    }

    fn write(&self, rng: &mut SmallRng, ty: FeatureType, now_ms: i64, out: &mut String) {
        let _ = match self {
            Self::Amount(d) => {
                let v = (d.sample(rng) * 100.0).round() / 100.0;
                match ty {
                    FeatureType::Int64 => write!(out, "{}", v.round() as i64),
                    _ => write!(out, "{v}"),
                }
            }
            Self::Counterpart { prefix, law } => write!(out, "\"{prefix}{}\"", law.sample(rng)),
            Self::Choice(options) => {
                write!(out, "\"{}\"", options[rng.random_range(0..options.len())])
            }
            Self::RecentMillis => write!(out, "{}", now_ms - rng.random_range(0..1_800_000)),
            Self::Float => write!(out, "{}", (rng.random::<f64>() * 1e4).round() / 1e4),
            Self::Int => write!(out, "{}", rng.random_range(0..100)),
            Self::Bool => write!(out, "{}", rng.random_bool(0.1)),
            Self::Text => write!(out, "\"v{}\"", rng.random_range(0..50)),
            Self::Vector(dim) => {
                out.push('[');
                for i in 0..*dim {
                    if i > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "{:.4}", rng.random::<f32>() * 2.0 - 1.0);
                }
                out.push(']');
                Ok(())
            }
        };
    }
}

/// Who an event is for: the population's entity of a rank, or a cold start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// Rank 1 is the most active entity.
    Rank(u64),
    /// The `n`-th cold-start entity (never seen before) of this generator.
    Cold(u64),
}

/// Produces one source's events. Not a clock: the caller passes `now`.
#[derive(Debug, Clone)]
pub struct EventGenerator {
    rng: SmallRng,
    law: PowerLaw,
    entities: u64,
    id_prefix: String,
    int_keys: bool,
    key_field: String,
    time_field: String,
    fields: Vec<(String, FeatureType, FieldGen)>,
    cold_start_share: f64,
    cold_made: u64,
    disorder_ms: u64,
}

impl EventGenerator {
    /// A generator of `source`'s events by `plan`.
    pub fn new(
        registry: &Registry,
        source: &Source,
        plan: &EventPlan,
    ) -> Result<Self, GeneratorError> {
        let entity = registry
            .entities
            .get(source.entity)
            .ok_or_else(|| GeneratorError::UnknownEntity(format!("#{}", source.entity)))?;
        let int_keys = entity.key_type == KeyType::Int64;
        let id_prefix = if int_keys {
            String::new()
        } else {
            entity
                .name
                .chars()
                .next()
                .map(String::from)
                .unwrap_or_default()
        };
        let fields = source
            .fields
            .iter()
            .filter(|f| f.name != source.key_field && f.name != source.time_field)
            .map(|f| (f.name.clone(), f.ty, FieldGen::of(&f.name, f.ty)))
            .collect();
        Ok(Self {
            rng: SmallRng::seed_from_u64(super::mix(plan.seed, 0xE7E7, 1)),
            law: PowerLaw::new(plan.entities.max(1), 0.01, 0.2),
            entities: plan.entities.max(1),
            id_prefix,
            int_keys,
            key_field: source.key_field.clone(),
            time_field: source.time_field.clone(),
            fields,
            cold_start_share: plan.cold_start_share.clamp(0.0, 1.0),
            cold_made: 0,
            disorder_ms: plan.disorder.as_millis() as u64,
        })
    }

    /// The power law entities are drawn from.
    pub fn law(&self) -> &PowerLaw {
        &self.law
    }

    /// The next entity.
    pub fn pick(&mut self) -> Pick {
        if self.cold_start_share > 0.0 && self.rng.random_bool(self.cold_start_share) {
            self.cold_made += 1;
            Pick::Cold(self.cold_made - 1)
        } else {
            Pick::Rank(self.law.sample(&mut self.rng))
        }
    }

    /// The id of a pick: rank `r` → entity number `r − 1`; cold start `n` → number
    /// `entities + n`.
    pub fn id_of(&self, pick: Pick) -> String {
        let n = match pick {
            Pick::Rank(r) => r.saturating_sub(1),
            Pick::Cold(n) => self.entities.saturating_add(n),
        };
        format!("{}{n}", self.id_prefix)
    }

    /// The next event as one NDJSON object (no newline), event time within the disorder
    /// of `now_ms`.
    pub fn next_event(&mut self, now_ms: i64) -> Vec<u8> {
        let pick = self.pick();
        self.event_for(pick, now_ms)
    }

    /// An event of `pick`'s entity.
    pub fn event_for(&mut self, pick: Pick, now_ms: i64) -> Vec<u8> {
        let id = self.id_of(pick);
        let back = if self.disorder_ms > 0 {
            self.rng.random_range(0..=self.disorder_ms) as i64
        } else {
            0
        };
        let mut out = String::with_capacity(128);
        out.push('{');
        push_key(&mut out, &self.key_field);
        if self.int_keys {
            out.push_str(&id);
        } else {
            let _ = write!(out, "\"{id}\"");
        }
        out.push(',');
        push_key(&mut out, &self.time_field);
        let _ = write!(out, "{}", now_ms - back);
        for (name, ty, gen) in &self.fields {
            out.push(',');
            push_key(&mut out, name);
            gen.write(&mut self.rng, *ty, now_ms, &mut out);
        }
        out.push('}');
        out.into_bytes()
    }
}

/// `"name":`, the name JSON-escaped.
fn push_key(out: &mut String, name: &str) {
    match serde_json::to_string(name) {
        Ok(quoted) => out.push_str(&quoted),
        Err(_) => out.push_str("\"\""),
    }
    out.push(':');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Registry {
        riffle_testkit::fixtures::generator_registry()
    }

    #[test]
    fn same_seed_same_events() {
        let reg = registry();
        let plan = EventPlan::new(500.0, 10_000, 11);
        let mut a = EventGenerator::new(&reg, &reg.sources[0], &plan).unwrap();
        let mut b = EventGenerator::new(&reg, &reg.sources[0], &plan).unwrap();
        for _ in 0..500 {
            assert_eq!(a.next_event(1_000_000), b.next_event(1_000_000));
        }
        let other = EventPlan::new(500.0, 10_000, 12);
        let mut c = EventGenerator::new(&reg, &reg.sources[0], &other).unwrap();
        let same = (0..100)
            .filter(|_| a.next_event(1_000_000) == c.next_event(1_000_000))
            .count();
        assert!(same < 10, "different seeds give different events");
    }

    #[test]
    fn top_one_percent_get_a_fifth_and_cold_starts_are_new() {
        let reg = registry();
        let plan = EventPlan::new(500.0, 10_000, 3);
        let mut gen = EventGenerator::new(&reg, &reg.sources[0], &plan).unwrap();
        let draws = 100_000;
        let (mut top, mut cold) = (0u64, 0u64);
        let mut cold_ids = std::collections::HashSet::new();
        for _ in 0..draws {
            match gen.pick() {
                Pick::Rank(r) => {
                    assert!((1..=10_000).contains(&r));
                    if r <= 100 {
                        top += 1;
                    }
                }
                p @ Pick::Cold(_) => {
                    cold += 1;
                    let id = gen.id_of(p);
                    let n: u64 = id.trim_start_matches('u').parse().unwrap();
                    assert!(n >= 10_000, "cold start {id} is outside the population");
                    assert!(cold_ids.insert(id), "a cold start is never repeated");
                }
            }
        }
        let warm = (draws - cold) as f64;
        let share = top as f64 / warm;
        assert!((0.18..0.22).contains(&share), "top 1% share {share}");
        let cold_share = cold as f64 / draws as f64;
        assert!(
            (0.015..0.025).contains(&cold_share),
            "cold share {cold_share}"
        );
    }

    #[test]
    fn the_pacer_gives_the_declared_rate_and_bursts() {
        let steady = Bursts::none(1);
        let mut pacer = Pacer::new(2_000.0, steady);
        // 60 s in 10 ms steps: exactly the rate, whatever the step.
        let total: u64 = (1..=6_000)
            .map(|i| pacer.due(Duration::from_millis(10 * i)))
            .sum();
        assert!((119_990..=120_000).contains(&total), "{total}");

        let bursts = Bursts::new(5);
        let mut pacer = Pacer::new(1_000.0, bursts.clone());
        let total: u64 = (1..=60_000)
            .map(|i| pacer.due(Duration::from_millis(i)))
            .sum();
        // One 5 s burst per minute at 5–10×: 55 s × 1000 + 5 s × (5..10) × 1000.
        assert!((80_000..=105_000).contains(&total), "{total}");
        let in_burst = (0..60_000)
            .filter(|ms| bursts.factor(Duration::from_millis(*ms)) > 1.0)
            .count();
        assert_eq!(in_burst, 5_000, "one 5 s burst per 60 s period");
    }

    #[test]
    fn time_blocked_is_not_made_up_beyond_the_backlog() {
        let mut pacer = Pacer::new(1_000.0, Bursts::none(1));
        assert_eq!(pacer.due(Duration::from_millis(100)), 100);
        // Blocked for 10 s: at most 0.2 s of events are owed.
        assert_eq!(pacer.due(Duration::from_secs(10)), 200);
    }
}
