//! What a load test sends, decided before the first request: the pacing (open loop at a rate
//! with scheduled bursts, or closed loop at a concurrency), which entity ids (a power law over
//! a numbered population, or a replayed file of recorded ids, plus a share of cold-start ids
//! that exist nowhere) and which groups or features each request asks for.

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::Rng;
use riffle_registry::{KeyType, Registry, UnsafePolicy};
use riffle_synth::PowerLaw;

use super::error::LoadtestError;

/// How requests are paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// Open loop: requests start at fixed intended times, whatever the server does.
    Open { rate: f64 },
    /// Closed loop: `concurrency` workers, each sending its next request when the last ends.
    Closed { concurrency: usize },
}

/// A scheduled burst: `factor` × the base rate from `start` for `length` (open loop only).
/// Written `FACTORx@START+LENGTH`: `10x@30s+10s` is ten times the rate from 30 s into the
/// run for 10 s.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Burst {
    pub factor: f64,
    pub start: Duration,
    pub length: Duration,
}

impl FromStr for Burst {
    type Err = LoadtestError;

    fn from_str(text: &str) -> Result<Self, LoadtestError> {
        let bad = |why: &str| {
            LoadtestError::Usage(format!(
                "--burst {text:?}: {why} (expected FACTORx@START+LENGTH, e.g. 10x@30s+10s)"
            ))
        };
        let (factor, rest) = text.split_once("x@").ok_or_else(|| bad("no \"x@\""))?;
        let (start, length) = rest.split_once('+').ok_or_else(|| bad("no \"+LENGTH\""))?;
        let factor: f64 = factor
            .trim()
            .parse()
            .map_err(|_| bad("the factor is not a number"))?;
        if !(factor.is_finite() && factor > 0.0) {
            return Err(bad("the factor must be above 0"));
        }
        let start = humantime::parse_duration(start.trim()).map_err(|_| bad("bad START"))?;
        let length = humantime::parse_duration(length.trim()).map_err(|_| bad("bad LENGTH"))?;
        if length.is_zero() {
            return Err(bad("LENGTH must be above 0"));
        }
        Ok(Self {
            factor,
            start,
            length,
        })
    }
}

/// The open-loop rate over time: a base rate multiplied by whichever bursts are active.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub base_rate: f64,
    pub bursts: Vec<Burst>,
}

impl Schedule {
    /// Requests per second at `t` into the run.
    pub fn rate_at(&self, t: Duration) -> f64 {
        self.bursts
            .iter()
            .filter(|b| t >= b.start && t < b.start + b.length)
            .fold(self.base_rate, |rate, b| rate * b.factor)
    }

    /// The intended send time of request `i` (0-based), in seconds from the start: the
    /// time at which the integral of the rate reaches `i`. Computed from the index, not
    /// accumulated, so no rounding drift: 30 req/s for 1 s is exactly 30 requests.
    pub fn time_of(&self, i: u64) -> f64 {
        let mut cuts: Vec<f64> = vec![0.0];
        for b in &self.bursts {
            cuts.push(b.start.as_secs_f64());
            cuts.push((b.start + b.length).as_secs_f64());
        }
        cuts.sort_by(f64::total_cmp);
        cuts.dedup();
        let mut done = 0.0f64;
        for (k, &from) in cuts.iter().enumerate() {
            let rate = self.rate_at(Duration::from_secs_f64(from)).max(1e-9);
            let to = cuts.get(k + 1).copied().unwrap_or(f64::INFINITY);
            let here = (to - from) * rate;
            if (i as f64) < done + here {
                return from + (i as f64 - done) / rate;
            }
            done += here;
        }
        f64::INFINITY
    }

    /// Requests the schedule intends over `duration`.
    pub fn intended_count(&self, duration: Duration) -> u64 {
        let end = duration.as_secs_f64();
        let mut n = 0u64;
        while n < 100_000_000 && self.time_of(n) < end {
            n += 1;
        }
        n
    }
}

/// Where entity ids come from.
#[derive(Debug, Clone)]
pub enum IdSource {
    /// Entities numbered `0..count` (the demo population: `u0`, `u1`, … for a string key,
    /// `0`, `1`, … for an `int64` key), drawn by a power law where rank 1 is id 0.
    Population { count: u64, prefix: String },
    /// Recorded ids, replayed in order and from the start again (shadow traffic).
    Replay(Vec<String>),
}

/// Picks the id of each request.
#[derive(Debug)]
pub struct IdPicker {
    source: IdSource,
    law: Option<PowerLaw>,
    cold_share: f64,
    int_keys: bool,
    next_replay: AtomicU64,
    next_cold: AtomicU64,
}

impl IdPicker {
    /// `hot_fraction` of the population gets `hot_share` of the requests; `cold_share` of the
    /// requests ask for ids that exist nowhere.
    pub fn new(
        source: IdSource,
        key_type: KeyType,
        hot_fraction: f64,
        hot_share: f64,
        cold_share: f64,
    ) -> Result<Self, LoadtestError> {
        if !(0.0..=1.0).contains(&cold_share) {
            return Err(LoadtestError::Usage(format!(
                "--cold-share {cold_share} must be between 0 and 1"
            )));
        }
        if !(0.0..=1.0).contains(&hot_fraction) || !(0.0..=1.0).contains(&hot_share) {
            return Err(LoadtestError::Usage(
                "--hot-fraction and --hot-share must be between 0 and 1".into(),
            ));
        }
        let law = match &source {
            IdSource::Population { count: 0, .. } => {
                return Err(LoadtestError::Usage("--users must be at least 1".into()))
            }
            IdSource::Population { count, .. } => {
                Some(PowerLaw::new(*count, hot_fraction, hot_share))
            }
            IdSource::Replay(ids) if ids.is_empty() => {
                return Err(LoadtestError::Usage("the --ids file holds no ids".into()))
            }
            IdSource::Replay(_) => None,
        };
        Ok(Self {
            source,
            law,
            cold_share,
            int_keys: key_type == KeyType::Int64,
            next_replay: AtomicU64::new(0),
            next_cold: AtomicU64::new(0),
        })
    }

    /// The next id.
    pub fn pick<R: Rng + ?Sized>(&self, rng: &mut R) -> String {
        if self.cold_share > 0.0 && rng.random::<f64>() < self.cold_share {
            let n = self.next_cold.fetch_add(1, Ordering::Relaxed);
            let salt: u32 = rng.random();
            return if self.int_keys {
                // Far above any numbered population, below i64::MAX.
                (4_000_000_000_000_000_000u64 + (u64::from(salt) << 20) + (n & 0xF_FFFF))
                    .to_string()
            } else {
                format!("cold-{salt:08x}-{n}")
            };
        }
        match (&self.source, &self.law) {
            (IdSource::Population { prefix, .. }, Some(law)) => {
                let index = law.sample(rng) - 1;
                format!("{prefix}{index}")
            }
            (IdSource::Replay(ids), _) => {
                let i = self.next_replay.fetch_add(1, Ordering::Relaxed) as usize % ids.len();
                ids[i].clone()
            }
            (IdSource::Population { prefix, count }, None) => {
                format!("{prefix}{}", rng.random_range(0..*count))
            }
        }
    }
}

/// Reads a file of recorded ids: one per line; blank lines and `#` comments are skipped.
pub fn read_ids(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// The id prefix of the demo population of `entity`: its first letter for string keys.
pub fn population_prefix(registry: &Registry, entity: usize) -> String {
    let e = &registry.entities[entity];
    match e.key_type {
        KeyType::Int64 => String::new(),
        KeyType::String => e.name.chars().next().map(String::from).unwrap_or_default(),
    }
}

/// What one request asks for: whole groups and/or `group:feature` references of one entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// A short name for reports (`all`, `user_velocity`, `service fraud_v1`).
    pub label: String,
    pub entity: usize,
    pub groups: Vec<String>,
    pub features: Vec<String>,
    /// Every group the request touches (judged against each one's p99 SLO).
    pub touched: Vec<String>,
}

impl Selection {
    /// From `--groups` / `--service` / `--entity` (all groups of the entity when neither).
    pub fn resolve(
        registry: &Registry,
        entity: Option<&str>,
        groups: &[String],
        service: Option<&str>,
    ) -> Result<Self, LoadtestError> {
        let usage = LoadtestError::Usage;
        let mut features = Vec::new();
        let mut touched: Vec<String> = Vec::new();
        let mut entity_of = Vec::new();
        for name in groups {
            let g = registry
                .group(name)
                .ok_or_else(|| usage(format!("--groups: no group {name:?} in the registry")))?;
            entity_of.push(g.entity);
            touched.push(g.name.clone());
        }
        if let Some(name) = service {
            let s = registry
                .service(name)
                .ok_or_else(|| usage(format!("--service: no service {name:?} in the registry")))?;
            for r in &s.features {
                let g = &registry.groups[r.group];
                features.push(format!("{}:{}", g.name, g.features[r.feature].name));
                entity_of.push(g.entity);
                if !touched.contains(&g.name) {
                    touched.push(g.name.clone());
                }
            }
        }
        let entity = match entity {
            Some(name) => registry
                .entities
                .iter()
                .position(|e| e.name == name)
                .ok_or_else(|| usage(format!("--entity: no entity {name:?} in the registry")))?,
            None => match entity_of.first() {
                Some(&e) => e,
                None => (0..registry.entities.len())
                    .find(|&e| registry.groups_of(e).next().is_some())
                    .ok_or_else(|| usage("the registry has no feature groups".into()))?,
            },
        };
        if entity_of.iter().any(|&e| e != entity) {
            return Err(usage(
                "the groups and service asked for belong to more than one entity".into(),
            ));
        }
        let label = match (groups.is_empty(), service) {
            (true, None) => {
                touched = registry.groups_of(entity).map(|g| g.name.clone()).collect();
                "all".to_owned()
            }
            (false, None) => groups.join(","),
            (true, Some(s)) => format!("service {s}"),
            (false, Some(s)) => format!("{} + service {s}", groups.join(",")),
        };
        Ok(Self {
            label,
            entity,
            groups: groups.to_vec(),
            features,
            touched,
        })
    }

    /// One selection per group: the groups allowed to serve defaults together, and each
    /// group with `on_unsafe = "fail"` on its own (what `riffle drill` sends).
    pub fn by_policy(registry: &Registry, entity: usize) -> Vec<(Self, UnsafePolicy)> {
        let mut out = Vec::new();
        let safe: Vec<String> = registry
            .groups_of(entity)
            .filter(|g| g.on_unsafe == UnsafePolicy::ServeDefaults)
            .map(|g| g.name.clone())
            .collect();
        if !safe.is_empty() {
            out.push((
                Self {
                    label: "serve_defaults groups".into(),
                    entity,
                    groups: safe.clone(),
                    features: Vec::new(),
                    touched: safe,
                },
                UnsafePolicy::ServeDefaults,
            ));
        }
        for g in registry
            .groups_of(entity)
            .filter(|g| g.on_unsafe == UnsafePolicy::Fail)
        {
            out.push((
                Self {
                    label: g.name.clone(),
                    entity,
                    groups: vec![g.name.clone()],
                    features: Vec::new(),
                    touched: vec![g.name.clone()],
                },
                UnsafePolicy::Fail,
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    #[test]
    fn bursts_parse_and_multiply_the_rate() {
        let b: Burst = "10x@30s+10s".parse().unwrap();
        assert_eq!(b.factor, 10.0);
        assert_eq!(b.start, Duration::from_secs(30));
        assert_eq!(b.length, Duration::from_secs(10));
        for bad in [
            "10@30s+10s",
            "10x@30s",
            "x@1s+1s",
            "0x@1s+1s",
            "2x@1s+0s",
            "2x@soon+1s",
        ] {
            assert!(bad.parse::<Burst>().is_err(), "{bad}");
        }
        let s = Schedule {
            base_rate: 100.0,
            bursts: vec![b],
        };
        assert_eq!(s.rate_at(Duration::from_secs(29)), 100.0);
        assert_eq!(s.rate_at(Duration::from_secs(30)), 1000.0);
        assert_eq!(s.rate_at(Duration::from_secs(40)), 100.0);
        assert_eq!(s.intended_count(Duration::from_secs(60)), 15_000);
        assert_eq!(s.time_of(3000), 30.0);
        assert_eq!(s.time_of(3001), 30.001);
        let third = Schedule {
            base_rate: 30.0,
            bursts: vec![],
        };
        assert_eq!(third.intended_count(Duration::from_secs(1)), 30);
    }

    #[test]
    fn ids_follow_the_power_law_and_cold_ids_exist_nowhere() {
        let source = IdSource::Population {
            count: 10_000,
            prefix: "u".into(),
        };
        let picker = IdPicker::new(source, KeyType::String, 0.01, 0.2, 0.1).unwrap();
        let mut rng = SmallRng::seed_from_u64(1);
        let (mut hot, mut cold, n) = (0, 0, 50_000);
        for _ in 0..n {
            let id = picker.pick(&mut rng);
            if id.starts_with("cold-") {
                cold += 1;
            } else if id[1..].parse::<u64>().unwrap() < 100 {
                hot += 1;
            }
        }
        let cold_share = cold as f64 / n as f64;
        let hot_share = hot as f64 / (n - cold) as f64;
        assert!((0.09..0.11).contains(&cold_share), "{cold_share}");
        assert!((0.18..0.22).contains(&hot_share), "{hot_share}");
    }

    #[test]
    fn replayed_ids_come_back_in_order() {
        let ids = read_ids("# recorded\nu1\n\nu2\n u3 \n");
        let picker = IdPicker::new(IdSource::Replay(ids), KeyType::String, 0.01, 0.2, 0.0).unwrap();
        let mut rng = SmallRng::seed_from_u64(1);
        let got: Vec<String> = (0..4).map(|_| picker.pick(&mut rng)).collect();
        assert_eq!(got, ["u1", "u2", "u3", "u1"]);
        assert!(IdPicker::new(IdSource::Replay(vec![]), KeyType::String, 0.0, 0.0, 0.0).is_err());
    }
}
